// portmap chained after bridge, as a runtime runs it, with real traffic: from
// an outside namespace, from the lab host, from 127.0.0.1 and by hairpin,
// over TCP, UDP and IPv6, for both firewall backends.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN } from './dist.ts';
import { startPeerServer, tcpAsk, udpAsk, addOutside, UPLINK } from './net.ts';


let lab: Lab;
let outside: string;
const servers: ChildProcess[] = [];
const HOST4 = UPLINK.host4;
const HOST6 = UPLINK.host6;

beforeAll(() => {
  lab = Lab.create();
  outside = addOutside(lab);
});

afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

let nets = 0;
let ids = 0;

function setup(backend: 'iptables' | 'nftables') {
  const n = nets++;
  const name = `pnet${n}`;
  const stateDir = join(lab.dir, 'state');
  const bridgeConf = {
    cniVersion: '1.1.0',
    name,
    type: 'bridge',
    bridge: `pmbr${n}`,
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipMasqBackend: backend,
    dataDir: stateDir,
    ipam: { type: 'host-local', ranges: [[{ subnet: `10.70.${n}.0/24` }], [{ subnet: `fd00:70:${n}::/64` }]], dataDir: join(lab.dir, 'ipam') },
  };
  const portmapConf = (portMappings: object[], prevResult?: object) => ({
    cniVersion: '1.1.0',
    name,
    type: 'portmap',
    backend,
    dataDir: stateDir,
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings },
    ...(prevResult ? { prevResult } : {}),
  });
  const run = (plugin: string, command: string, id: string, netns: string | undefined, config: object) =>
    lab.plugin(bin(plugin), { command, containerId: id, netns, ifname: 'eth0', path: BIN, config });

  /** A container with a bridge attachment and its published ports. */
  const container = (portMappings: object[]) => {
    const netns = lab.container();
    const id = `pm${ids++}`;
    const b = run('bridge', 'ADD', id, netns, bridgeConf);
    expect(b.stdout).not.toContain('"code"');
    const prev = JSON.parse(b.stdout) as { ips: { address: string }[] };
    const p = run('portmap', 'ADD', id, netns, portmapConf(portMappings, prev));
    const v4 = prev.ips.find((ip) => ip.address.includes('.'))!.address.split('/')[0]!;
    const v6 = prev.ips.find((ip) => ip.address.includes(':'))!.address.split('/')[0]!;
    return { netns, id, prev, add: p, v4, v6, portMappings };
  };
  const remove = (c: { id: string; netns: string; prev: object; portMappings: object[] }, netns: string | undefined = c.netns) => {
    expect(run('portmap', 'DEL', c.id, netns, portmapConf(c.portMappings, c.prev)).status).toBe(0);
    expect(run('bridge', 'DEL', c.id, netns, bridgeConf).status).toBe(0);
  };
  const records = () => {
    const dir = join(lab.hostState(stateDir), 'portmap', name);
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  return { name, bridgeConf, portmapConf, run, container, remove, records, gateway: `10.70.${n}.1` };
}

const NFT_PORT_MAPS = ['ports4', 'ports6', 'ports4ip', 'ports6ip', 'portsnat4', 'portsnat6', 'portowner4', 'portowner6'];

/** Port-mapping rules and map elements (not the bridge's masquerade) that name this address. */
function portRulesMentioning(address: string): string[] {
  const ipt = (lab.exec('iptables-save', ['-t', 'nat']).stdout + lab.exec('ip6tables-save', ['-t', 'nat']).stdout)
    .split('\n')
    .filter((l) => /HOSTPORTS|DNAT|CNIK-P-/.test(l));
  const nft = NFT_PORT_MAPS.flatMap((m) => lab.exec('nft', ['list', 'map', 'inet', 'cnikit', m]).stdout.split('\n'));
  const re = new RegExp(`${address.replace(/[.]/g, '\\.')}(?![0-9a-f.:])`);
  return [...ipt, ...nft].filter((l) => re.test(l));
}

describe.each(['nftables', 'iptables'] as const)('portmap with %s', (backend) => {
  it('publishes TCP and UDP ports reachable from outside, the host, 127.0.0.1 and by hairpin', async () => {
    const net = setup(backend);
    const a = net.container([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp' },
    ]);
    expect(a.add.status).toBe(0);
    await startPeerServer(a.netns, 'tcp', '::', 80, servers);
    await startPeerServer(a.netns, 'udp', '0.0.0.0', 53, servers);
    const b = net.container([]);
    expect(b.add.status).toBe(0);

    // From another host: the container sees the real client.
    expect(tcpAsk(lab, outside, HOST4, 8080)).toBe('203.0.113.2');
    expect(udpAsk(lab, outside, HOST4, 5353)).toBe('203.0.113.2');
    // IPv6, on the host's IPv6 address.
    expect(tcpAsk(lab, outside, HOST6, 8080)).toBe('fd00:ff::2');
    // From the host itself, to its own address and to localhost.
    expect(tcpAsk(lab, lab.hostPath, HOST4, 8080)).toBeDefined();
    expect(tcpAsk(lab, lab.hostPath, '127.0.0.1', 8080)).toBeDefined();
    // Hairpin: the container itself and a neighbour, through the host's address.
    expect(tcpAsk(lab, a.netns, HOST4, 8080)).toBeDefined();
    expect(tcpAsk(lab, b.netns, HOST4, 8080)).toBeDefined();
    // An unmapped port stays closed.
    expect(tcpAsk(lab, outside, HOST4, 8081, 1)).toBeUndefined();

    expect(net.run('portmap', 'CHECK', a.id, a.netns, net.portmapConf(a.portMappings, a.prev)).status).toBe(0);
    net.remove(a);
    net.remove(b);
    expect(tcpAsk(lab, outside, HOST4, 8080, 1)).toBeUndefined();
    expect(portRulesMentioning(a.v4)).toEqual([]);
    expect(net.records()).toEqual([]);
  });

  it('binds a mapping to one host address, maps ranges, and picks a free ephemeral port for hostPort 0', async () => {
    const net = setup(backend);
    const a = net.container([
      { hostPort: 8180, containerPort: 80, protocol: 'tcp', hostIP: HOST4 },
      { hostPort: 9000, containerPort: 90, protocol: 'tcp', range: 3 },
      { hostPort: 0, containerPort: 80, protocol: 'tcp' },
    ]);
    expect(a.add.stdout).not.toContain('"code"');
    for (const port of [80, 90, 91, 92]) await startPeerServer(a.netns, 'tcp', '0.0.0.0', port, servers);
    expect(tcpAsk(lab, outside, HOST4, 8180)).toBe('203.0.113.2');
    // The bridge's gateway is a host address too, but not the one the mapping is bound to.
    const b = net.container([]);
    expect(tcpAsk(lab, b.netns, net.gateway, 8180, 1)).toBeUndefined();
    for (const port of [9000, 9001, 9002]) expect(tcpAsk(lab, outside, HOST4, port)).toBe('203.0.113.2');
    expect(tcpAsk(lab, outside, HOST4, 9003, 1)).toBeUndefined();

    const chosen = (JSON.parse(a.add.stdout) as { portMappings: { hostPort: number; containerPort: number }[] }).portMappings.find((m) => m.containerPort === 80 && m.hostPort !== 8180)!;
    const [low, high] = lab.exec('sysctl', ['-n', 'net.ipv4.ip_local_port_range']).stdout.trim().split(/\s+/).map(Number);
    expect(chosen.hostPort).toBeGreaterThanOrEqual(low!);
    expect(chosen.hostPort).toBeLessThanOrEqual(high!);
    expect(tcpAsk(lab, outside, HOST4, chosen.hostPort)).toBe('203.0.113.2');
    net.remove(a);
    net.remove(b);
  });

  it('refuses a host port another container publishes, naming it, and leaves nothing of the second ADD', () => {
    const net = setup(backend);
    const a = net.container([{ hostPort: 8280, containerPort: 80, protocol: 'tcp' }]);
    expect(a.add.status).toBe(0);
    const b = net.container([{ hostPort: 8280, containerPort: 80, protocol: 'tcp' }]);
    expect(b.add.status).not.toBe(0);
    expect(JSON.parse(b.add.stdout)).toMatchObject({ code: 102, msg: expect.stringMatching(new RegExp(`8280/tcp.*${a.id}`)) });
    expect(portRulesMentioning(b.v4)).toEqual([]);
    expect(net.records()).toHaveLength(1);
    // The same port over UDP is another port.
    const c = net.container([{ hostPort: 8280, containerPort: 80, protocol: 'udp' }]);
    expect(c.add.status).toBe(0);
    net.remove(a);
    net.remove(b);
    net.remove(c);
    expect(net.records()).toEqual([]);
    // The port index holds nothing for them any more.
    expect(existsSync(join(lab.hostState(join(lab.dir, 'state')), 'portmap-ports', 'tcp', '8280'))).toBe(false);
    expect(existsSync(join(lab.hostState(join(lab.dir, 'state')), 'portmap-ports', 'udp', '8280'))).toBe(false);
  });

  it('flushes a stale UDP conntrack entry, so a port published after traffic to it answers at once', async () => {
    const net = setup(backend);
    const a = net.container([]);
    await startPeerServer(a.netns, 'udp', '0.0.0.0', 53, servers);
    // A client tries the port before it is published: the lab host tracks that flow un-NATed.
    expect(udpAsk(lab, outside, HOST4, 5454, 1, 40000)).toBeUndefined();
    expect(lab.exec('conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '5454']).stdout).toContain('sport=40000');
    const p = net.run('portmap', 'ADD', a.id, a.netns, net.portmapConf([{ hostPort: 5454, containerPort: 53, protocol: 'udp' }], a.prev));
    expect(p.status).toBe(0);
    // The same flow again (same source port): without the flush it would stay blackholed for 30 s.
    expect(udpAsk(lab, outside, HOST4, 5454, 2, 40000)).toBe(UPLINK.outside4);
    expect(net.run('portmap', 'DEL', a.id, a.netns, net.portmapConf([{ hostPort: 5454, containerPort: 53, protocol: 'udp' }], a.prev)).status).toBe(0);
    expect(net.run('bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
  });

  it('an address that moved to another container before the old one\'s DEL leaves none of the old host ports after both DELs', () => {
    const net = setup(backend);
    const a = net.container([{ hostPort: 8390, containerPort: 80 }]);
    // A's portmap DEL was killed; its bridge DEL freed the address, and B got it.
    expect(net.run('bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
    const bId = `pm${ids++}`;
    const b = net.run('portmap', 'ADD', bId, a.netns, net.portmapConf([{ hostPort: 8391, containerPort: 80 }], a.prev));
    expect(b.status).toBe(0);
    expect(net.run('portmap', 'DEL', a.id, undefined, net.portmapConf(a.portMappings, a.prev)).status).toBe(0);
    expect(portRulesMentioning(a.v4).length).toBeGreaterThan(0);
    expect(net.run('portmap', 'DEL', bId, undefined, net.portmapConf([{ hostPort: 8391, containerPort: 80 }], a.prev)).status).toBe(0);
    expect(portRulesMentioning(a.v4)).toEqual([]);
    expect(portRulesMentioning(a.v6)).toEqual([]);
    expect(net.records()).toEqual([]);
  });

  it('DEL works twice and without the netns; GC removes exactly the stale attachments', () => {
    const net = setup(backend);
    const a = net.container([{ hostPort: 8380, containerPort: 80 }]);
    const b = net.container([{ hostPort: 8381, containerPort: 80 }]);
    lab.deleteNetns(a.netns);
    expect(net.run('portmap', 'DEL', a.id, a.netns, net.portmapConf(a.portMappings)).status).toBe(0);
    expect(net.run('portmap', 'DEL', a.id, undefined, net.portmapConf(a.portMappings)).status).toBe(0);
    expect(portRulesMentioning(a.v4)).toEqual([]);
    const c = net.container([{ hostPort: 8382, containerPort: 80 }]);
    const gc = net.run('portmap', 'GC', 'x', undefined, {
      ...net.portmapConf([]),
      cniVersion: '1.1.0',
      'cni.dev/valid-attachments': [{ containerID: c.id, ifname: 'eth0' }],
    });
    expect(gc.status).toBe(0);
    expect(portRulesMentioning(b.v4)).toEqual([]);
    expect(portRulesMentioning(c.v4).length).toBeGreaterThan(0);
    expect(net.records()).toEqual([`${c.id}@eth0.json`]);
    net.remove(b);
    net.remove(c);
  });
});

describe('portmap port index', () => {
  it('drops an index entry whose record is gone instead of refusing the port forever', () => {
    const net = setup('iptables');
    const a = net.container([{ hostPort: 8580, containerPort: 80 }]);
    expect(a.add.status).toBe(0);
    // The record vanishes (wiped by hand) but the index still names the port's holder.
    rmSync(join(lab.hostState(join(lab.dir, 'state')), 'portmap', net.name, `${a.id}@eth0.json`));
    expect(net.run('portmap', 'DEL', a.id, a.netns, net.portmapConf([])).status).toBe(0);
    const b = net.container([{ hostPort: 8580, containerPort: 80 }]);
    expect(b.add.stdout).not.toContain('"code"');
    net.remove(b);
    net.remove(a);
  });
});

describe('portmap conditions', () => {
  it('conditionsV4 narrow the DNAT rules and choose the iptables backend; nftables refuses them with code 2', async () => {
    const net = setup('iptables');
    const a = net.container([]);
    await startPeerServer(a.netns, 'tcp', '0.0.0.0', 80, servers);
    const mappings = [{ hostPort: 8480, containerPort: 80, protocol: 'tcp' }];
    const conf = { ...net.portmapConf(mappings, a.prev), backend: undefined, conditionsV4: ['-s', UPLINK.outside4] };
    expect(net.run('portmap', 'ADD', a.id, a.netns, conf).status).toBe(0);
    expect(lab.exec('iptables-save', ['-t', 'nat']).stdout).toMatch(/CNIK-HOSTPORTS -s 203\.0\.113\.2\/32 .*--dport 8480/);
    expect(tcpAsk(lab, outside, HOST4, 8480)).toBe(UPLINK.outside4);
    // The lab host itself is not 203.0.113.2: no DNAT for it.
    expect(tcpAsk(lab, lab.hostPath, HOST4, 8480, 1)).toBeUndefined();
    expect(net.run('portmap', 'DEL', a.id, a.netns, conf).status).toBe(0);
    expect(portRulesMentioning(a.v4)).toEqual([]);
    const nft = net.run('portmap', 'ADD', a.id, a.netns, { ...conf, backend: 'nftables' });
    expect(JSON.parse(nft.stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('conditionsV4') });
    // A condition may only narrow the match: no target, no rule syntax of its own.
    for (const bad of [['-j', 'ACCEPT'], ['-s 1.2.3.4']]) {
      const r = net.run('portmap', 'ADD', a.id, a.netns, { ...conf, conditionsV4: bad });
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining(bad[0]!) });
    }
    expect(net.records()).toEqual([]);
    net.remove(a);
  });
});

describe('portmap without mappings or prevResult', () => {
  it('ADD with no mappings passes the prevResult through and creates nothing', () => {
    const net = setup('nftables');
    const a = net.container([]);
    expect(a.add.status).toBe(0);
    expect(JSON.parse(a.add.stdout).ips).toEqual(a.prev.ips);
    expect(net.records()).toEqual([]);
    net.remove(a);
  });

  it('ADD without a prevResult is a config error', () => {
    const net = setup('nftables');
    const r = net.run('portmap', 'ADD', 'np', lab.container(), net.portmapConf([{ hostPort: 1, containerPort: 1 }]));
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('prevResult') });
  });
});
