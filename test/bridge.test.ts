// The bridge plugin as a runtime uses it, in a lab host namespace with real
// traffic: containers on one bridge, an "outside" namespace behind the lab
// host for masquerade, isolation between networks, and leak checks after DEL.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN, REFERENCE_BIN } from './dist.ts';
import { startPeerServer, tcpAsk, ping, addOutside } from './net.ts';
import { validateResult } from '../lib/spec/validators.gen.js';
import { hostVethName } from '../plugins/bridge/links.ts';

let lab: Lab;
let outside: string;
const servers: ChildProcess[] = [];

const BACKENDS = ['iptables', 'nftables'] as const;
type Backend = (typeof BACKENDS)[number];

beforeAll(async () => {
  lab = Lab.create();
  outside = addOutside(lab);
  await startPeerServer(outside, 'tcp', '203.0.113.2', 8080, servers);
});

afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

let nets = 0;
interface Net {
  name: string;
  bridge: string;
  conf: Record<string, unknown>;
  ipamDir: string;
  stateDir: string;
}

function network(opts: { subnet: string; subnet6?: string; backend?: Backend; extra?: Record<string, unknown>; rangeEnd?: string }): Net {
  const n = nets++;
  const name = `net${n}`;
  const bridge = `ckbr${n}`;
  const ipamDir = join(lab.dir, 'ipam');
  const stateDir = join(lab.dir, 'state');
  const ranges: object[][] = [[{ subnet: opts.subnet, ...(opts.rangeEnd ? { rangeEnd: opts.rangeEnd } : {}) }]];
  if (opts.subnet6) ranges.push([{ subnet: opts.subnet6 }]);
  const conf = {
    cniVersion: '1.1.0',
    name,
    type: 'bridge',
    bridge,
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    ipMasqBackend: opts.backend ?? 'iptables',
    dataDir: stateDir,
    ipam: { type: 'host-local', ranges, dataDir: ipamDir },
    ...opts.extra,
  };
  return { name, bridge, conf, ipamDir, stateDir };
}

interface Attached {
  netns: string;
  id: string;
  result: { interfaces: { name: string; mac: string; sandbox?: string }[]; ips: { address: string; gateway?: string; interface?: number }[] };
  v4: string;
  v6?: string;
}

let ids = 0;
function call(net: Net, command: string, netns: string | undefined, id: string, extra: Record<string, unknown> = {}, ifname = 'eth0') {
  return lab.plugin(bin('bridge'), { command, containerId: id, netns, ifname, path: BIN, config: { ...net.conf, ...extra } });
}

function attach(net: Net, extra: Record<string, unknown> = {}): Attached {
  const netns = lab.container();
  const id = `ctr${ids++}`;
  const r = call(net, 'ADD', netns, id, extra);
  expect(r.stdout + r.stderr).not.toContain('"code"');
  expect(r.status).toBe(0);
  const result = JSON.parse(r.stdout) as Attached['result'];
  expect(validateResult(result)).toBe(true);
  const addr = (f: 4 | 6) => result.ips.find((ip) => ip.address.includes(f === 4 ? '.' : ':'))?.address.split('/')[0];
  return { netns, id, result, v4: addr(4)!, v6: addr(6) };
}

function hostVeths(): string[] {
  const links = JSON.parse(lab.ip(['-j', '-d', 'link', 'show'])) as { ifname: string; linkinfo?: { info_kind?: string } }[];
  return links.filter((l) => l.linkinfo?.info_kind === 'veth' && l.ifname !== 'uplink0').map((l) => l.ifname);
}

/** Firewall lines of the lab host that name this address (10.0.0.2 does not match 10.0.0.20). */
function rulesMentioning(address: string): string[] {
  const ipt = lab.exec('iptables-save', []).stdout + lab.exec('ip6tables-save', []).stdout;
  const nft = lab.exec('nft', ['list', 'ruleset']).stdout;
  const re = new RegExp(`${address.replace(/[.]/g, '\\.')}(?![0-9a-f.:])`);
  return (ipt + nft).split('\n').filter((l) => re.test(l));
}

function leases(net: Net): string[] {
  const dir = join(net.ipamDir, net.name);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/.test(f) && (f.includes('.') || f.includes(':')));
}

function records(net: Net): string[] {
  const dir = join(lab.hostState(net.stateDir), 'bridge', net.name);
  return existsSync(dir) ? readdirSync(dir) : [];
}

function expectNothingLeft(net: Net, a: { v4: string; v6?: string; id: string }): void {
  expect(hostVeths()).toEqual([]);
  expect(rulesMentioning(a.v4)).toEqual([]);
  if (a.v6) expect(rulesMentioning(a.v6)).toEqual([]);
  expect(leases(net)).toEqual([]);
  expect(records(net)).toEqual([]);
}

describe.each(BACKENDS)('bridge with %s masquerade', (backend) => {
  const base = backend === 'iptables' ? 40 : 50;

  it('connects two containers to each other and to the gateway, IPv4 and IPv6', () => {
    const net = network({ subnet: `10.${base}.1.0/24`, subnet6: `fd00:${base}:1::/64`, backend });
    const a = attach(net);
    const b = attach(net);
    expect(a.result.interfaces.map((i) => i.name)).toEqual([net.bridge, expect.stringMatching(/^veth/), 'eth0']);
    expect(a.result.interfaces[2]!.sandbox).toBe(a.netns);
    expect(a.result.ips).toContainEqual({ address: `${a.v4}/24`, gateway: `10.${base}.1.1`, interface: 2 });
    expect(ping(lab, a.netns, b.v4)).toBe(true);
    expect(ping(lab, a.netns, `10.${base}.1.1`)).toBe(true);
    expect(ping(lab, a.netns, b.v6!)).toBe(true);
    expect(ping(lab, b.netns, `fd00:${base}:1::1`)).toBe(true);
    // The gateway lives on the bridge, in the lab host only.
    const br = JSON.parse(lab.ip(['-j', 'addr', 'show', 'dev', net.bridge])) as { addr_info: { local: string }[] }[];
    expect(br[0]!.addr_info.map((x) => x.local)).toEqual(expect.arrayContaining([`10.${base}.1.1`, `fd00:${base}:1::1`]));
    for (const x of [a, b]) {
      expect(call(net, 'CHECK', x.netns, x.id, { prevResult: x.result }).status).toBe(0);
      expect(call(net, 'DEL', x.netns, x.id).status).toBe(0);
    }
    expectNothingLeft(net, a);
  });

  it('masquerades traffic leaving the subnet, but not traffic within it', async () => {
    const net = network({ subnet: `10.${base}.2.0/24`, backend });
    const a = attach(net);
    const b = attach(net);
    // Outside sees the lab host's address on its link, not the container's.
    expect(tcpAsk(lab, a.netns, '203.0.113.2', 8080)).toBe('203.0.113.1');
    await startPeerServer(b.netns, 'tcp', '0.0.0.0', 9090, servers);
    expect(tcpAsk(lab, a.netns, b.v4, 9090)).toBe(a.v4);
    expect(rulesMentioning(a.v4).length).toBeGreaterThan(0);
    for (const x of [a, b]) expect(call(net, 'DEL', x.netns, x.id).status).toBe(0);
    expectNothingLeft(net, a);
  });

  it('nonMasqueradeCIDRs: destinations in them see the container\'s address, others still the host\'s; CHECK and DEL follow it', async () => {
    const subnet = `10.${base}.9.0/24`;
    const net = network({ subnet, backend, extra: { nonMasqueradeCIDRs: ['203.0.113.2/32', `10.${base}.8.0/24`, 'fd00:99::/64'] } });
    // The outside host routes the subnet back to the lab host (as a cloud route table would), and has a second address.
    lab.ip(['route', 'replace', subnet, 'via', '203.0.113.1'], outside);
    lab.ip(['addr', 'replace', '203.0.113.3/24', 'dev', 'eth0'], outside);
    await startPeerServer(outside, 'tcp', '203.0.113.3', 8000 + base, servers);
    const a = attach(net);
    expect(tcpAsk(lab, a.netns, '203.0.113.2', 8080)).toBe(a.v4);
    expect(tcpAsk(lab, a.netns, '203.0.113.3', 8000 + base)).toBe('203.0.113.1');
    expect(call(net, 'CHECK', a.netns, a.id, { prevResult: a.result }).status).toBe(0);
    // DEL works from the record: a config that lost the option removes the same rules.
    const { nonMasqueradeCIDRs: _dropped, ...without } = net.conf;
    expect(call({ ...net, conf: without }, 'DEL', a.netns, a.id).status).toBe(0);
    expectNothingLeft(net, a);
    lab.ip(['route', 'del', subnet], outside);
  });

  it('isolates networks that ask for it, as Docker does for user networks', async () => {
    const n1 = network({ subnet: `10.${base}.3.0/24`, backend, extra: { isolate: true } });
    const n2 = network({ subnet: `10.${base}.4.0/24`, backend, extra: { isolate: true } });
    const a = attach(n1);
    const b = attach(n2);
    await startPeerServer(b.netns, 'tcp', '0.0.0.0', 9091, servers);
    expect(tcpAsk(lab, a.netns, b.v4, 9091, 1)).toBeUndefined();
    expect(ping(lab, a.netns, b.v4)).toBe(false);
    // The outside stays reachable.
    expect(tcpAsk(lab, a.netns, '203.0.113.2', 8080)).toBe('203.0.113.1');
    expect(call(n1, 'DEL', a.netns, a.id).status).toBe(0);
    expect(call(n2, 'DEL', b.netns, b.id).status).toBe(0);
  });

  it('with icc false, containers of one bridge cannot talk to each other, but reach the gateway', () => {
    const net = network({ subnet: `10.${base}.5.0/24`, backend, extra: { icc: false } });
    const a = attach(net);
    const b = attach(net);
    expect(ping(lab, a.netns, b.v4)).toBe(false);
    expect(ping(lab, a.netns, `10.${base}.5.1`)).toBe(true);
    for (const x of [a, b]) expect(call(net, 'DEL', x.netns, x.id).status).toBe(0);
  });

  if (backend === 'nftables') {
    it("a subnet's first container after its last one left: the masquerade chain comes back with its elements, no nft exec", async () => {
      const net = network({ subnet: `10.${base}.31.0/24`, backend });
      const a = attach(net);
      expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
      const comment = `masquerade 10.${base}.31.0/24`;
      expect(lab.exec('nft', ['list', 'ruleset']).stdout).not.toContain(comment);
      // nft on PATH first, logging each call.
      const fake = join(lab.dir, 'fakebin');
      const log = join(lab.dir, 'nft-calls');
      mkdirSync(fake, { recursive: true });
      writeFileSync(join(fake, 'nft'), `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/sbin/nft "$@"\n`, { mode: 0o755 });
      const netns = lab.container();
      const r = lab.plugin(bin('bridge'), { command: 'ADD', containerId: 'again', netns, ifname: 'eth0', path: BIN, config: net.conf, env: { PATH: `${fake}:${process.env.PATH}` } });
      expect(r.stdout + r.stderr).not.toContain('"code"');
      expect(existsSync(log) ? readFileSync(log, 'utf8') : '').toBe('');
      expect(lab.exec('nft', ['list', 'ruleset']).stdout).toContain(comment);
      const result = JSON.parse(r.stdout) as Attached['result'];
      const v4 = result.ips[0]!.address.split('/')[0]!;
      expect(tcpAsk(lab, netns, '203.0.113.2', 8080)).toBe('203.0.113.1');
      expect(call(net, 'CHECK', netns, 'again', { prevResult: result }).status).toBe(0);
      expect(call(net, 'DEL', netns, 'again').status).toBe(0);
      expectNothingLeft(net, { v4, id: 'again' });
      expect(lab.exec('nft', ['list', 'ruleset']).stdout).not.toContain(comment);
    });
  }

  it('DEL cleans up after the netns was deleted, and after the address was removed; DEL twice succeeds', () => {
    const net = network({ subnet: `10.${base}.6.0/24`, backend });
    const a = attach(net);
    lab.deleteNetns(a.netns);
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
    expectNothingLeft(net, a);
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);

    const b = attach(net);
    lab.ip(['addr', 'flush', 'dev', 'eth0'], b.netns);
    expect(call(net, 'DEL', b.netns, b.id).status).toBe(0);
    expectNothingLeft(net, b);
    expect(call(net, 'DEL', undefined, b.id).status).toBe(0);
  });
});

describe('bridge after an upgrade from the reference plugins', () => {
  it("DEL removes an attachment the reference bridge made: its veth pair (another host name) and its lease", () => {
    const net = network({ subnet: '10.119.0.0/24' });
    const conf = { ...net.conf, cniVersion: '1.0.0', ipMasq: false };
    const netns = lab.container();
    const ref = lab.plugin(join(REFERENCE_BIN, 'bridge'), { command: 'ADD', containerId: 'upg1', netns, ifname: 'eth0', path: REFERENCE_BIN, config: conf });
    expect(ref.status).toBe(0);
    expect(hostVeths()).toHaveLength(1);
    expect(leases(net)).toHaveLength(1);
    const del = lab.plugin(bin('bridge'), { command: 'DEL', containerId: 'upg1', netns, ifname: 'eth0', path: BIN, config: conf });
    expect(del.status).toBe(0);
    expect(hostVeths()).toEqual([]);
    expect(lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status).not.toBe(0);
    expect(leases(net)).toEqual([]);
    lab.ip(['link', 'del', net.bridge]);
  });
});

describe('bridge failures leave nothing behind', () => {
  it('an exhausted range: error, no link, lease, rule or record', () => {
    const net = network({ subnet: '10.60.1.0/24', rangeEnd: '10.60.1.2' });
    const a = attach(net);
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-full');
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout).code).toBeGreaterThanOrEqual(100);
    expect(lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status).not.toBe(0);
    expect(hostVeths()).toHaveLength(1);
    expect(records(net)).toHaveLength(1);
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
    expectNothingLeft(net, a);
  });

  it('an ifname that exists in the netns: error 7 naming it, nothing made', () => {
    const net = network({ subnet: '10.60.2.0/24' });
    const netns = lab.container();
    lab.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1'], netns);
    const r = call(net, 'ADD', netns, 'ctr-dup');
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('eth0') });
    expectNothingLeft(net, { v4: '10.60.2.2', id: 'ctr-dup' });
  });

  it('a host end left by an ADD that crashed is replaced: the ADD succeeds, DEL leaves nothing', () => {
    const net = network({ subnet: '10.60.8.0/24' });
    const stale = hostVethName(net.name, 'ctr-stale', 'eth0');
    lab.ip(['link', 'add', stale, 'type', 'veth', 'peer', 'name', 'stalepeer0']);
    const before = JSON.parse(lab.exec('ip', ['-j', 'link', 'show', 'dev', stale]).stdout) as { ifindex: number }[];
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-stale');
    expect(r.status).toBe(0);
    const after = JSON.parse(lab.exec('ip', ['-j', 'link', 'show', 'dev', stale]).stdout) as { ifindex: number; master?: string }[];
    expect(after[0]!.ifindex).not.toBe(before[0]!.ifindex);
    expect(after[0]!.master).toBe(net.bridge);
    expect(lab.exec('ip', ['link', 'show', 'dev', 'stalepeer0']).status).not.toBe(0);
    expect(lab.exec('ip', ['link', 'show', 'dev', 'eth0'], { netns }).status).toBe(0);
    expect(call(net, 'DEL', netns, 'ctr-stale').status).toBe(0);
    expectNothingLeft(net, { v4: '10.60.8.2', id: 'ctr-stale' });
  });

  it('a non-bridge link with the bridge name: error 7, nothing made', () => {
    const net = network({ subnet: '10.60.3.0/24' });
    lab.ip(['link', 'add', net.bridge, 'type', 'veth', 'peer', 'name', 'notabr1']);
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-nb');
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('not a bridge') });
    lab.ip(['link', 'del', net.bridge]);
    expectNothingLeft(net, { v4: '10.60.3.2', id: 'ctr-nb' });
  });

  it('a bridge holding another address of the subnet: error 7 naming both, nothing made; forceAddress replaces it', () => {
    const net = network({ subnet: '10.60.5.0/24' });
    lab.ip(['link', 'add', net.bridge, 'type', 'bridge']);
    lab.ip(['addr', 'add', '10.60.5.9/24', 'dev', net.bridge]);
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-gw');
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/10\.60\.5\.9\/24.*10\.60\.5\.1\/24.*forceAddress/) });
    const addrs = () => lab.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', net.bridge]).stdout;
    expect(addrs()).toContain('10.60.5.9/24');
    expect(addrs()).not.toContain('10.60.5.1/');
    expectNothingLeft(net, { v4: '10.60.5.2', id: 'ctr-gw' });
    const forced = call(net, 'ADD', netns, 'ctr-gw2', { forceAddress: true });
    expect(forced.status).toBe(0);
    expect(addrs()).toContain('10.60.5.1/24');
    expect(addrs()).not.toContain('10.60.5.9/');
    expect(call(net, 'DEL', netns, 'ctr-gw2', { forceAddress: true }).status).toBe(0);
    lab.ip(['link', 'del', net.bridge]);
  });

  it('a nonMasqueradeCIDRs entry that is not a CIDR: error 7 naming it, nothing made; DEL with it succeeds', () => {
    const net = network({ subnet: '10.99.7.0/24', extra: { nonMasqueradeCIDRs: ['10.244.0.0/16', '10.244.0.0/33'] } });
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'badexempt');
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('nonMasqueradeCIDRs.1') });
    expect(hostVeths()).toEqual([]);
    expect(leases(net)).toEqual([]);
    expect(records(net)).toEqual([]);
    expect(call(net, 'DEL', netns, 'badexempt').status).toBe(0);
  });

  it('a malformed MAC: error 7 naming it, nothing made', () => {
    const net = network({ subnet: '10.60.4.0/24' });
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-mac', { runtimeConfig: { mac: 'zz:00:00:00:00:01' } });
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('zz:00:00:00:00:01') });
    expectNothingLeft(net, { v4: '10.60.4.2', id: 'ctr-mac' });
  });

  it('macspoofchk drops frames whose source MAC is not the container\'s; CHECK and DEL follow it', () => {
    const net = network({ subnet: '10.60.6.0/24', extra: { macspoofchk: true } });
    const a = attach(net, { runtimeConfig: { mac: '02:42:0a:3c:06:02' } });
    expect(ping(lab, a.netns, '10.60.6.1')).toBe(true);
    // The container forges another MAC: its frames no longer enter the bridge.
    lab.ip(['link', 'set', 'eth0', 'address', '02:42:0a:3c:06:99'], a.netns);
    lab.ip(['neigh', 'flush', 'all']);
    expect(ping(lab, a.netns, '10.60.6.1')).toBe(false);
    lab.ip(['link', 'set', 'eth0', 'address', '02:42:0a:3c:06:02'], a.netns);
    expect(ping(lab, a.netns, '10.60.6.1')).toBe(true);
    expect(call(net, 'CHECK', a.netns, a.id, { prevResult: a.result }).status).toBe(0);
    lab.exec('nft', ['flush', 'set', 'bridge', 'cnikit', 'allowed']);
    expect(JSON.parse(call(net, 'CHECK', a.netns, a.id, { prevResult: a.result }).stdout)).toMatchObject({ code: 100, msg: expect.stringContaining('spoof') });
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
    expect(lab.exec('nft', ['list', 'set', 'bridge', 'cnikit', 'checked']).stdout).not.toContain(a.result.interfaces[1]!.name);
  });

  it('refuses vlan with code 2 (it needs bridge VLAN filtering), nothing made', () => {
    const net = network({ subnet: '10.60.7.0/24', extra: { vlan: 10 } });
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-vlan');
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('vlan') });
    expect(lab.exec('ip', ['link', 'show', net.bridge]).status).not.toBe(0);
    expectNothingLeft(net, { v4: '10.60.7.2', id: 'ctr-vlan' });
  });

  it('honours a requested MAC, hairpin mode and port isolation', () => {
    const net = network({ subnet: '10.60.9.0/24', extra: { hairpinMode: true, portIsolation: true } });
    const a = attach(net, { runtimeConfig: { mac: '02:42:0a:3c:09:09' } });
    expect(a.result.interfaces[2]!.mac).toBe('02:42:0a:3c:09:09');
    const port = (JSON.parse(lab.ip(['-j', '-d', 'link', 'show', a.result.interfaces[1]!.name])) as { linkinfo: { info_slave_data: { hairpin: boolean; isolated: boolean } } }[])[0]!;
    expect(port.linkinfo.info_slave_data).toMatchObject({ hairpin: true, isolated: true });
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
  });
});

/** The kernel's addr_assign_type of a lab-host link (3: NET_ADDR_SET); `ip netns exec` mounts the namespace's own sysfs. */
function addrAssignType(link: string): number {
  const r = spawnSync('ip', ['netns', 'exec', lab.host, 'cat', `/sys/class/net/${link}/addr_assign_type`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

function linkInfo(name: string, netns?: string): { address: string; flags: string[] } {
  return (JSON.parse(lab.ip(['-j', 'link', 'show', 'dev', name], netns)) as { address: string; flags: string[] }[])[0]!;
}

function gatewayNeighbour(netns: string, gw: string): string | undefined {
  const n = JSON.parse(lab.ip(['-j', 'neigh', 'show', gw], netns)) as { lladdr?: string }[];
  return n[0]?.lladdr;
}

describe('bridge MAC', () => {
  it('is set at creation and kept while ports come and go: the port with the lowest MAC leaves, the gateway MAC stays', () => {
    const net = network({ subnet: '10.62.1.0/24' });
    // Low MACs, lower than the bridge's: a bridge that follows its ports would take one of them.
    const a = attach(net, { runtimeConfig: { mac: '02:00:00:00:00:0a' } });
    const b = attach(net, { runtimeConfig: { mac: '02:00:00:00:00:0b' } });
    expect(addrAssignType(net.bridge)).toBe(3);
    const mac = linkInfo(net.bridge).address;
    expect(a.result.interfaces[0]).toEqual({ name: net.bridge, mac });
    for (const x of [a, b]) {
      expect(ping(lab, x.netns, '10.62.1.1')).toBe(true);
      expect(gatewayNeighbour(x.netns, '10.62.1.1')).toBe(mac);
    }
    // The host ends: the one with the lowest MAC goes.
    const hostMacs = [a, b].map((x) => ({ x, mac: linkInfo(x.result.interfaces[1]!.name).address })).sort((p, q) => p.mac.localeCompare(q.mac));
    const [low, high] = [hostMacs[0]!.x, hostMacs[1]!.x];
    expect(call(net, 'DEL', low.netns, low.id).status).toBe(0);
    expect(linkInfo(net.bridge).address).toBe(mac);
    // The remaining container's cached gateway MAC is still the bridge's: traffic flows at once.
    expect(gatewayNeighbour(high.netns, '10.62.1.1')).toBe(mac);
    expect(ping(lab, high.netns, '10.62.1.1')).toBe(true);
    expect(call(net, 'CHECK', high.netns, high.id, { prevResult: high.result }).status).toBe(0);
    expect(call(net, 'DEL', high.netns, high.id).status).toBe(0);
  });

  it('an existing bridge whose MAC follows its ports is fixed at its current MAC on the next ADD', () => {
    const net = network({ subnet: '10.62.2.0/24' });
    lab.ip(['link', 'add', net.bridge, 'type', 'bridge']);
    lab.ip(['link', 'add', 'lowport0', 'address', '02:00:00:00:00:01', 'type', 'veth', 'peer', 'name', 'lowpeer0']);
    lab.ip(['link', 'set', 'lowport0', 'master', net.bridge]);
    expect(addrAssignType(net.bridge)).not.toBe(3);
    expect(linkInfo(net.bridge).address).toBe('02:00:00:00:00:01');
    const a = attach(net);
    expect(addrAssignType(net.bridge)).toBe(3);
    expect(linkInfo(net.bridge).address).toBe('02:00:00:00:00:01');
    lab.ip(['link', 'del', 'lowport0']);
    expect(linkInfo(net.bridge).address).toBe('02:00:00:00:00:01');
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
    lab.ip(['link', 'del', net.bridge]);
  });

  it('CHECK reports a bridge whose MAC was changed under it (code 100)', () => {
    const net = network({ subnet: '10.62.3.0/24' });
    const a = attach(net);
    expect(call(net, 'CHECK', a.netns, a.id, { prevResult: a.result }).status).toBe(0);
    lab.ip(['link', 'set', 'dev', net.bridge, 'address', '02:11:22:33:44:55']);
    const r = call(net, 'CHECK', a.netns, a.id, { prevResult: a.result });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 100, msg: expect.stringContaining('02:11:22:33:44:55') });
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
  });
});

describe('what ADD changes on the bridge', () => {
  it('promiscMode is turned off again by the DEL (or GC) of the bridge\'s last container', () => {
    const net = network({ subnet: '10.62.4.0/24', extra: { promiscMode: true } });
    const a = attach(net);
    const b = attach(net);
    expect(linkInfo(net.bridge).flags).toContain('PROMISC');
    expect(call(net, 'DEL', a.netns, a.id).status).toBe(0);
    expect(linkInfo(net.bridge).flags).toContain('PROMISC');
    expect(call(net, 'DEL', b.netns, b.id).status).toBe(0);
    expect(linkInfo(net.bridge).flags).not.toContain('PROMISC');
    expectNothingLeft(net, a);
    // Also when GC removes the last one.
    const c = attach(net);
    expect(linkInfo(net.bridge).flags).toContain('PROMISC');
    const gc = lab.plugin(bin('bridge'), { command: 'GC', path: BIN, config: { ...net.conf, 'cni.dev/valid-attachments': [] } });
    expect(gc.stdout + gc.stderr).toBe('');
    expect(linkInfo(net.bridge).flags).not.toContain('PROMISC');
    expectNothingLeft(net, c);
  });

  it('hairpinMode with promiscMode is refused with 7 (as the reference), nothing made', () => {
    const net = network({ subnet: '10.62.5.0/24', extra: { hairpinMode: true, promiscMode: true } });
    const netns = lab.container();
    const r = call(net, 'ADD', netns, 'ctr-hp');
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/hairpinMode.*promiscMode/) });
    expect(lab.exec('ip', ['link', 'show', 'dev', net.bridge]).status).not.toBe(0);
    expectNothingLeft(net, { v4: '10.62.5.2', id: 'ctr-hp' });
    // DEL of the same config still succeeds (a runtime cleans up after the failed ADD).
    expect(call(net, 'DEL', netns, 'ctr-hp').status).toBe(0);
  });

  it.each([
    [{ dst: '10.0.0.0/33' }, 'ipam.routes[0].dst'],
    [{ dst: '10.0.0.0/8', gw: 'garbage' }, 'ipam.routes[0].gw'],
  ])('an IPAM route %j is refused with 7 naming %s; nothing made, and an existing bridge keeps its promiscuous mode off', (route, field) => {
    const net = network({ subnet: '10.62.6.0/24', extra: { promiscMode: true } });
    lab.ip(['link', 'add', net.bridge, 'type', 'bridge']);
    const netns = lab.container();
    const ipam = { ...(net.conf.ipam as object), routes: [route] };
    const r = call(net, 'ADD', netns, 'ctr-rt', { ipam });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining(field) });
    expect(linkInfo(net.bridge).flags).not.toContain('PROMISC');
    expect(lab.exec('ip', ['link', 'show', 'dev', 'eth0'], { netns }).status).not.toBe(0);
    expectNothingLeft(net, { v4: '10.62.6.2', id: 'ctr-rt' });
    lab.ip(['link', 'del', net.bridge]);
  });
});

describe('bridge at scale', () => {
  it('20 parallel ADDs then 20 parallel DELs: all succeed, unique addresses, nothing left', async () => {
    const net = network({ subnet: '10.61.0.0/24', backend: 'nftables' });
    const { spawn } = await import('node:child_process');
    const run = (command: string, netns: string, id: string) =>
      new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: BIN };
        const p = spawn('nsenter', [`--net=${lab.hostPath}`, '--', bin('bridge')], { env });
        let stdout = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.on('close', (status) => resolve({ status, stdout }));
        p.stdin.end(JSON.stringify(net.conf));
      });
    const ctrs = Array.from({ length: 20 }, (_, i) => ({ netns: lab.container(), id: `par${i}` }));
    const added = await Promise.all(ctrs.map((c) => run('ADD', c.netns, c.id)));
    for (const r of added) expect(r.stdout).not.toContain('"code"');
    const addrs = added.map((r) => (JSON.parse(r.stdout) as Attached['result']).ips[0]!.address);
    expect(new Set(addrs).size).toBe(20);
    expect(hostVeths()).toHaveLength(20);
    const deleted = await Promise.all(ctrs.map((c) => run('DEL', c.netns, c.id)));
    for (const r of deleted) expect(r.status).toBe(0);
    expect(hostVeths()).toEqual([]);
    expect(leases(net)).toEqual([]);
    expect(records(net)).toEqual([]);
    // Per-network rules (the subnet's masquerade chain) stay with the bridge; no container's rule does.
    for (const a of addrs) expect(rulesMentioning(a.split('/')[0]!)).toEqual([]);
  });
});
