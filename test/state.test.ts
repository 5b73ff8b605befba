// State that cannot go stale: records per host network namespace (two lab
// hosts publish one port at once), holders that are provably gone reclaimed
// instead of refused, and the leftovers of plugins killed with SIGKILL at
// the points where they used to leak (strace fault injection) removed by
// DEL or GC.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, linkSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type Exec, type PluginCall } from './lab.ts';
import { bin, BIN } from './dist.ts';
import { startPeerServer, tcpAsk } from './net.ts';
import { hostVethName } from '../plugins/bridge/links.ts';

let lab: Lab;
const servers: ChildProcess[] = [];

beforeAll(() => {
  lab = Lab.create();
});

afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

function envOf(call: PluginCall): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  const set = (k: string, v: string | undefined) => {
    if (v !== undefined) env[k] = v;
  };
  set('CNI_COMMAND', call.command);
  set('CNI_CONTAINERID', call.containerId);
  set('CNI_NETNS', call.netns);
  set('CNI_IFNAME', call.ifname ?? 'eth0');
  set('CNI_PATH', call.path ?? BIN);
  for (const [k, v] of Object.entries(call.env ?? {})) if (v !== undefined) env[k] = v;
  return env;
}

/** A plugin exec'd from a given host namespace, without waiting (for calls that must run at once). */
function pluginAsync(host: string, binary: string, call: PluginCall): Promise<Exec> {
  const child = spawn('nsenter', [`--net=${host}`, '--', binary], { env: envOf(call), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(JSON.stringify(call.config));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

/** A plugin exec'd under strace, SIGKILLed at the `when`-th call of `syscall`. */
function pluginKilledAt(binary: string, syscall: string, when: number, call: PluginCall): Exec {
  return lab.exec('strace', ['-f', '-qq', '-o', '/dev/null', '-e', `trace=${syscall}`, '-e', `inject=${syscall}:signal=SIGKILL:when=${when}`, binary], {
    input: JSON.stringify(call.config),
    env: envOf(call),
  });
}

let nets = 0;
let ids = 0;

function network(opts: { ipam?: Record<string, unknown> } = {}) {
  const n = nets++;
  const name = `snet${n}`;
  const stateDir = join(lab.dir, 'state');
  const ipamDir = join(lab.dir, 'ipam');
  const logFile = join(lab.dir, `${name}.log`);
  const bridgeConf = {
    cniVersion: '1.1.0',
    name,
    type: 'bridge',
    bridge: `stbr${n}`,
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: 'nftables',
    dataDir: stateDir,
    logFile,
    ipam: { type: 'host-local', ranges: [[{ subnet: `10.74.${n}.0/24` }]], dataDir: ipamDir, ...opts.ipam },
  };
  const portmapConf = (portMappings: object[], prevResult?: object) => ({
    cniVersion: '1.1.0',
    name,
    type: 'portmap',
    backend: 'nftables',
    dataDir: stateDir,
    logFile,
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings },
    ...(prevResult ? { prevResult } : {}),
  });
  const leaseDir = join(ipamDir, name);
  /** Lease files, index entries and empty buckets of the owner index. */
  const ipamLeft = () => {
    const leases = existsSync(leaseDir) ? readdirSync(leaseDir).filter((f) => /^[0-9.]+$/.test(f)) : [];
    const index = join(leaseDir, '.cnikit-owners');
    const buckets = existsSync(index) ? readdirSync(index).filter((b) => b.length === 2) : [];
    const entries = buckets.flatMap((b) => readdirSync(join(index, b)));
    const emptyBuckets = buckets.filter((b) => readdirSync(join(index, b)).length === 0);
    return { leases, entries, emptyBuckets };
  };
  const records = (plugin: 'bridge' | 'portmap', host = lab.hostPath) => {
    const dir = join(lab.hostState(stateDir, host), plugin, name);
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const gcConf = (valid: string[]) => ({ ...bridgeConf, 'cni.dev/valid-attachments': valid.map((containerID) => ({ containerID, ifname: 'eth0' })) });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  return { name, bridgeConf, portmapConf, ipamLeft, records, gcConf, log, gateway: `10.74.${n}.1`, leaseDir, stateDir };
}

function rulesMentioning(address: string, host = lab.hostPath): string[] {
  const re = new RegExp(`${address.replace(/[.]/g, '\\.')}(?![0-9a-f.:])`);
  return lab.exec('nft', ['list', 'ruleset'], { netns: host }).stdout.split('\n').filter((l) => re.test(l));
}

/** Elements of the nftables port maps (not the bridge's masquerade) that name this address. */
function portRulesMentioning(address: string): string[] {
  const re = new RegExp(`${address.replace(/[.]/g, '\\.')}(?![0-9a-f.:])`);
  return ['ports4', 'ports4ip', 'portsnat4', 'portowner4']
    .flatMap((m) => lab.exec('nft', ['list', 'map', 'inet', 'cnikit', m]).stdout.split('\n'))
    .filter((l) => re.test(l));
}

/** portmap's FORWARD accepts (iptables filter table of the lab host) that name this address. */
function forwardAcceptsOf(address: string): string[] {
  return lab.exec('iptables-save', ['-t', 'filter']).stdout.split('\n').filter((l) => l.startsWith('-A CNI-FORWARD') && l.includes(`${address}/32`));
}

/** Every file of that name under dir. */
function filesNamed(dir: string, name: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith(`/${name}`)).map((f) => join(dir, f));
}

function hostVeths(host = lab.hostPath): string[] {
  const links = JSON.parse(lab.ip(['-j', '-d', 'link', 'show'], host)) as { ifname: string; linkinfo?: { info_kind?: string } }[];
  return links.filter((l) => l.linkinfo?.info_kind === 'veth').map((l) => l.ifname);
}

type Net = ReturnType<typeof network>;
interface Attached {
  id: string;
  netns: string;
  prev: { ips: { address: string }[] };
  v4: string;
}

function attach(net: Net, extra: Record<string, unknown> = {}): Attached {
  const netns = lab.container();
  const id = `st${ids++}`;
  const r = lab.plugin(bin('bridge'), { command: 'ADD', containerId: id, netns, ifname: 'eth0', path: BIN, config: { ...net.bridgeConf, ...extra } });
  expect(r.stdout).not.toContain('"code"');
  const prev = JSON.parse(r.stdout) as Attached['prev'];
  return { id, netns, prev, v4: prev.ips[0]!.address.split('/')[0]! };
}

function run(net: Net, plugin: 'bridge' | 'portmap', command: string, id: string, netns: string | undefined, config: object): Exec {
  return lab.plugin(bin(plugin), { command, containerId: id, netns, ifname: 'eth0', path: BIN, config });
}

/** Deletes a container's netns as a runtime does, and waits for the kernel to drop its veth pair. */
async function killContainer(a: Attached, net: Net): Promise<void> {
  lab.deleteNetns(a.netns);
  const veth = hostVethName(net.name, a.id, 'eth0');
  for (let i = 0; i < 100 && hostVeths().includes(veth); i++) await new Promise((r) => setTimeout(r, 50));
  expect(hostVeths()).not.toContain(veth);
}

describe('state per host network namespace', () => {
  it('two lab hosts publish the same host port at once: both succeed, both answer', async () => {
    const hostB = `/run/netns/${lab.addNetns('host')}`;
    lab.ip(['link', 'set', 'lo', 'up'], hostB);
    const net = network();
    const hosts = [lab.hostPath, hostB];
    const cs = hosts.map((host, i) => {
      const netns = lab.container();
      const id = `two${i}`;
      const r = lab.exec(bin('bridge'), [], { netns: host, input: JSON.stringify(net.bridgeConf), env: envOf({ command: 'ADD', containerId: id, netns }) });
      expect(r.stdout).not.toContain('"code"');
      return { host, netns, id, prev: JSON.parse(r.stdout) as object, port: 80 + i };
    });
    // Each host maps 8080 to its own container port, so an answer proves whose rule took the packet.
    const adds = await Promise.all(cs.map((c) =>
      pluginAsync(c.host, bin('portmap'), { command: 'ADD', containerId: c.id, netns: c.netns, config: net.portmapConf([{ hostPort: 8080, containerPort: c.port }], c.prev) })));
    for (const a of adds) expect(a.stdout).not.toContain('"code"');
    for (const a of adds) expect(a.status).toBe(0);
    for (const c of cs) await startPeerServer(c.netns, 'tcp', '0.0.0.0', c.port, servers);
    for (const c of cs) expect(tcpAsk(lab, c.host, net.gateway, 8080)).toBe(net.gateway);
    // Each host holds only its own records.
    for (const c of cs) expect(net.records('portmap', c.host)).toEqual([`${c.id}@eth0.json`]);
    for (const c of cs) {
      for (const plugin of ['portmap', 'bridge'] as const) {
        const config = plugin === 'portmap' ? net.portmapConf([], c.prev) : net.bridgeConf;
        expect(lab.exec(bin(plugin), [], { netns: c.host, input: JSON.stringify(config), env: envOf({ command: 'DEL', containerId: c.id, netns: c.netns }) }).status).toBe(0);
      }
      expect(net.records('portmap', c.host)).toEqual([]);
      expect(net.records('bridge', c.host)).toEqual([]);
      expect(tcpAsk(lab, c.host, net.gateway, 8080, 1)).toBeUndefined();
    }
  });
});

describe('conflicts heal themselves', () => {
  it('a dead holder of 8080 (record left, netns gone) does not block a new ADD: it is reclaimed and logged', async () => {
    const net = network();
    const a = attach(net);
    expect(run(net, 'portmap', 'ADD', a.id, a.netns, net.portmapConf([{ hostPort: 8080, containerPort: 80 }], a.prev)).status).toBe(0);
    expect(forwardAcceptsOf(a.v4).length).toBeGreaterThan(0);
    // The runtime removes the netns without a DEL (as Podman does when its DEL chain stops early).
    await killContainer(a, net);
    const b = attach(net);
    const p = run(net, 'portmap', 'ADD', b.id, b.netns, net.portmapConf([{ hostPort: 8080, containerPort: 80 }], b.prev));
    expect(p.stdout).not.toContain('"code"');
    await startPeerServer(b.netns, 'tcp', '0.0.0.0', 80, servers);
    expect(tcpAsk(lab, lab.hostPath, net.gateway, 8080)).toBe(net.gateway);
    expect(net.log()).toMatch(new RegExp(`reclaimed 8080/tcp .*container ${a.id} .*netns ${a.netns} is gone`));
    // Its rules and record went as its DEL would have removed them.
    expect(portRulesMentioning(a.v4)).toEqual([]);
    expect(forwardAcceptsOf(a.v4)).toEqual([]);
    expect(net.records('portmap')).toEqual([`${b.id}@eth0.json`]);
    // A live holder still blocks.
    const c = attach(net);
    const refused = run(net, 'portmap', 'ADD', c.id, c.netns, net.portmapConf([{ hostPort: 8080, containerPort: 80 }], c.prev));
    expect(JSON.parse(refused.stdout).code).toBe(102);
    for (const x of [b, c]) {
      expect(run(net, 'portmap', 'DEL', x.id, x.netns, net.portmapConf([])).status).toBe(0);
      expect(run(net, 'bridge', 'DEL', x.id, x.netns, net.bridgeConf).status).toBe(0);
    }
    expect(run(net, 'bridge', 'GC', 'gc', undefined, net.gcConf([])).status).toBe(0);
    expect(net.records('bridge')).toEqual([]);
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
  });

  it('a requested address whose holder is gone (netns and veth) is reclaimed; a live holder still gets 103', async () => {
    const net = network();
    const wanted = net.gateway.replace(/\.1$/, '.8');
    const req = { runtimeConfig: { ips: [`${wanted}/24`] }, capabilities: { ips: true } };
    const a = attach(net, req);
    expect(a.v4).toBe(wanted);
    const masqLines = rulesMentioning(wanted).length;
    expect(masqLines).toBeGreaterThan(0);
    expect(run(net, 'portmap', 'ADD', a.id, a.netns, net.portmapConf([{ hostPort: 8095, containerPort: 80 }], a.prev)).status).toBe(0);
    expect(portRulesMentioning(wanted).length).toBeGreaterThan(0);
    expect(forwardAcceptsOf(wanted).length).toBeGreaterThan(0);
    // Alive: refused.
    const live = run(net, 'bridge', 'ADD', 'live', lab.container(), { ...net.bridgeConf, ...req });
    expect(JSON.parse(live.stdout).code).toBe(103);
    await killContainer(a, net);
    const b = attach(net, req);
    expect(b.v4).toBe(wanted);
    expect(net.log()).toMatch(new RegExp(`reclaimed the address of container ${a.id} .*netns ${a.netns} is gone and its host veth`));
    expect(net.records('bridge')).toEqual([`${b.id}@eth0.json`]);
    // a's published port would have forwarded to b: its rules and record went too.
    expect(portRulesMentioning(wanted)).toEqual([]);
    expect(forwardAcceptsOf(wanted)).toEqual([]);
    expect(net.records('portmap')).toEqual([]);
    expect(net.log()).toMatch(new RegExp(`reclaimed the published ports of container ${a.id}`));
    // The masquerade of the address once: b's (a's went with its reclaim).
    expect(rulesMentioning(wanted)).toHaveLength(masqLines);
    expect(run(net, 'bridge', 'DEL', b.id, b.netns, net.bridgeConf).status).toBe(0);
    expect(rulesMentioning(wanted)).toEqual([]);
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
  });
});

describe('kills and GC', () => {
  it('a bridge DEL killed at its second unlink leaves nothing after GC, and DEL again succeeds', () => {
    const net = network();
    const a = attach(net);
    const killed = pluginKilledAt(bin('bridge'), 'unlink', 2, { command: 'DEL', containerId: a.id, netns: a.netns, config: net.bridgeConf });
    expect(killed.status).not.toBe(0);
    // Where it died: the lease was unlinked, its index entry not.
    expect(net.ipamLeft().leases).toEqual([]);
    expect(net.ipamLeft().entries).toEqual([expect.stringMatching(new RegExp(`@${a.v4.replace(/\./g, '\\.')}$`))]);
    expect(run(net, 'bridge', 'GC', 'gc', undefined, net.gcConf([])).status).toBe(0);
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
    expect(net.records('bridge')).toEqual([]);
    expect(hostVeths()).toEqual([]);
    expect(rulesMentioning(a.v4)).toEqual([]);
    expect(run(net, 'bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
  });

  it('a repeated DEL alone also removes the index entry a killed DEL left', () => {
    const net = network();
    const a = attach(net);
    expect(pluginKilledAt(bin('bridge'), 'unlink', 2, { command: 'DEL', containerId: a.id, netns: a.netns, config: net.bridgeConf }).status).not.toBe(0);
    expect(net.ipamLeft().entries).toHaveLength(1);
    expect(run(net, 'bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
    expect(net.records('bridge')).toEqual([]);
  });

  it('a portmap ADD killed at its first write leaves nothing after its DEL', () => {
    const net = network();
    const a = attach(net);
    // No log file: its first write would come before the record's.
    const { logFile: _log, ...conf } = net.portmapConf([{ hostPort: 8090, containerPort: 80 }], a.prev);
    expect(pluginKilledAt(bin('portmap'), 'write', 1, { command: 'ADD', containerId: a.id, netns: a.netns, config: conf }).status).not.toBe(0);
    // Where it died: the record created, still empty (looked for in any layout of the state dir).
    const recs = () => filesNamed(net.stateDir, `${a.id}@eth0.json`).filter((f) => f.includes('/portmap/'));
    expect(recs().map((f) => statSync(f).size)).toEqual([0]);
    expect(run(net, 'portmap', 'DEL', a.id, a.netns, conf).status).toBe(0);
    expect(recs()).toEqual([]);
    expect(run(net, 'bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
    expect(rulesMentioning(a.v4)).toEqual([]);
    const index = join(lab.hostState(net.stateDir), 'portmap-ports', 'tcp', '8090');
    expect(existsSync(index)).toBe(false);
  });

  it('two failed bridge ADDs (a route that cannot be added) leave no empty bucket in the owner index', () => {
    const net = network({ ipam: { routes: [{ dst: '10.99.0.0/24', gw: '192.0.2.1' }] } });
    for (const id of ['badroute1', 'badroute2']) {
      const r = run(net, 'bridge', 'ADD', id, lab.container(), net.bridgeConf);
      expect(r.status).not.toBe(0);
    }
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
    expect(net.records('bridge')).toEqual([]);
  });

  it('GC sweeps the owner index both ways: entries without a lease go, leases without an entry are linked in', () => {
    const net = network();
    const a = attach(net);
    const index = join(net.leaseDir, '.cnikit-owners');
    const bucketOf = () => readdirSync(index).filter((b) => b.length === 2).find((b) => readdirSync(join(index, b)).some((e) => e.endsWith(`@${a.v4}`)))!;
    const bucket = bucketOf();
    const entry = readdirSync(join(index, bucket)).find((e) => e.endsWith(`@${a.v4}`))!;
    // a's entry lost; an entry for an address with no lease (links a stray file).
    rmSync(join(index, bucket, entry));
    writeFileSync(join(net.leaseDir, 'stray'), 'ghost\r\neth0');
    linkSync(join(net.leaseDir, 'stray'), join(index, bucket, `${'0'.repeat(32)}@10.74.99.99`));
    rmSync(join(net.leaseDir, 'stray'));
    expect(run(net, 'bridge', 'GC', 'gc', undefined, net.gcConf([a.id])).status).toBe(0);
    expect(net.ipamLeft().entries).toEqual([entry]);
    expect(statSync(join(net.leaseDir, a.v4)).nlink).toBe(2);
    expect(net.log()).toMatch(/owner index entries without a lease dropped/);
    expect(run(net, 'bridge', 'DEL', a.id, a.netns, net.bridgeConf).status).toBe(0);
    expect(net.ipamLeft()).toEqual({ leases: [], entries: [], emptyBuckets: [] });
  });
});
