// `npm run stress`: the plugins under load and under crashes, in a lab host
// namespace of its own (bench/harness.ts BenchLab), bounded in size and time.
//
// (a) N whole chains (bridge + host-local + portmap with a port each, and
//     loopback) ADDed at once, then DELeted at once: errors, duplicate
//     addresses and whatever is left, with the reference plugins
//     (/usr/lib/cni) doing the same side by side, and both batches' times.
// (b) churn: ADD/DEL of random containers on 3 networks (two nftables, one
//     iptables) by concurrent workers, with ~1 in 5 plugin processes killed
//     (SIGKILL at a random moment of their run); every failed ADD or DEL is
//     followed by the DEL a runtime would send (no prevResult), then one GC
//     per network; leaked links, leases, records, index entries and firewall
//     elements are counted against what the survivors should hold, and every
//     survivor must still pass traffic (a published port from another host,
//     masquerade out to it).
// (c) in the middle of the churn: `nft flush ruleset`, then `cnikit firewall
//     reload`: every live container's published port and masquerade work again.
//
// Sizes: STRESS_BATCH (100), STRESS_CYCLES (1000 ADDs), STRESS_WORKERS (4),
// STRESS_KILL (0.2), STRESS_REFERENCE (1). Results go to bench/STRESS.md
// (STRESS_OUT to change, '' for none).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchLab, benchDirectory, machine } from './harness.ts';
import { withNetns } from '../lib/netns/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OURS = join(root, 'dist/bin');
const CNIKIT = join(root, 'dist/cnikit');
const REF = '/usr/lib/cni';
const OUTSIDE4 = '203.0.113.2';
const HOST4 = '203.0.113.1';

export interface StressOptions {
  batch: number;
  cycles: number;
  workers: number;
  killRate: number;
  reference: boolean;
  /** Live containers the churn keeps at most. */
  maxLive: number;
  log?: (line: string) => void;
}

export interface Leaks {
  links: number;
  leases: number;
  records: number;
  indexEntries: number;
  /** Empty bucket directories of host-local's owner index. */
  emptyIndexDirs: number;
  temporaries: number;
  firewallElements: number;
  firewallChains: number;
}

export interface BatchResult {
  name: string;
  addMs: number;
  delMs: number;
  addErrors: number;
  delErrors: number;
  duplicates: number;
  left: { links: number; leases: number; firewall: number; records: number };
}

export interface StressResult {
  options: StressOptions;
  batches: BatchResult[];
  churn: {
    adds: number;
    dels: number;
    execs: number;
    killed: number;
    failedAdds: number;
    runtimeDels: number;
    runtimeDelErrors: number;
    gcErrors: number;
    survivors: number;
    leaksAfterGc: Leaks;
    traffic: { checked: number; ports: number; masquerade: number };
    leftAfterCleanup: Leaks;
    /** The firewall elements/rules left after everything was DELeted, so a leak names its network and backend. */
    leftovers: string[];
    ms: number;
  };
  reload: { live: number; beforeFlush: number; afterFlush: number; afterReload: number; reloadMs: number; output: string };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Stress {
  readonly lab = new BenchLab();
  readonly dir = benchDirectory();
  readonly hostPath = `/run/netns/${this.lab.host}`;
  outside = '';
  execs = 0;
  killed = 0;

  constructor(readonly o: StressOptions) {}

  log(line: string): void {
    this.o.log?.(line);
  }

  /** A command in the lab host namespace (or another of the lab's), synchronously. */
  sh(cmd: string, args: string[], netns = this.hostPath, input?: string): Run {
    const r = spawnSync('nsenter', [`--net=${netns}`, '--', cmd, ...args], { encoding: 'utf8', input, timeout: 120_000 });
    return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** A plugin exec from the lab host, as a runtime does it; SIGKILLed after killAfter ms when given. */
  exec(binary: string, env: Record<string, string>, stdin: string, killAfter?: number): Promise<Run> {
    this.execs++;
    return new Promise((resolve) => {
      // The child is forked during spawn(): it starts in the lab host namespace.
      const child: ChildProcess = withNetns(this.hostPath, () =>
        spawn(binary, [], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] }));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdin!.on('error', () => {});
      const timer = killAfter === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfter);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        if (signal === 'SIGKILL') this.killed++;
        resolve({ code, signal, stdout, stderr });
      });
      child.stdin!.end(stdin);
    });
  }

  /** "Another host" behind an uplink; it has no route to any container subnet, so only masquerade brings replies back. */
  addOutside(): void {
    this.outside = this.lab.container();
    const out = this.outside.replace('/run/netns/', '');
    const ip = (args: string[], ns = this.hostPath) => {
      const r = this.sh('ip', args, ns);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    };
    ip(['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
    ip(['addr', 'add', `${HOST4}/24`, 'dev', 'uplink0']);
    ip(['link', 'set', 'uplink0', 'up']);
    ip(['addr', 'add', `${OUTSIDE4}/24`, 'dev', 'eth0'], this.outside);
    ip(['link', 'set', 'eth0', 'up'], this.outside);
    ip(['link', 'set', 'lo', 'up'], this.outside);
  }

  close(): void {
    this.lab.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Net {
  name: string;
  bridge: string;
  subnet: string;
  backend?: 'iptables' | 'nftables';
  dir: string;
  dataDir: string;
  ipamDir: string;
}

function makeNet(s: Stress, name: string, bridge: string, subnet: string, backend: Net['backend'], dir = OURS): Net {
  return { name, bridge, subnet, backend, dir, dataDir: join(s.dir, 'data'), ipamDir: join(s.dir, 'ipam') };
}

function bridgeConf(n: Net, cniVersion = '1.0.0', extra: object = {}): string {
  return JSON.stringify({
    cniVersion, name: n.name, type: 'bridge', bridge: n.bridge, isGateway: true, isDefaultGateway: true, ipMasq: true,
    ...(n.backend ? { ipMasqBackend: n.backend } : {}),
    ...(n.dir === OURS ? { dataDir: n.dataDir } : {}),
    ipam: { type: 'host-local', ranges: [[{ subnet: n.subnet }]], dataDir: n.ipamDir },
    ...extra,
  });
}

function portmapConf(n: Net, hostPort: number, prevResult?: unknown, cniVersion = '1.0.0', extra: object = {}): string {
  return JSON.stringify({
    cniVersion, name: n.name, type: 'portmap',
    ...(n.backend ? { backend: n.backend } : {}),
    ...(n.dir === OURS ? { dataDir: n.dataDir } : {}),
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
    ...(prevResult ? { prevResult } : {}),
    ...extra,
  });
}

const LO = JSON.stringify({ cniVersion: '1.0.0', name: 'stress-lo', type: 'loopback' });

interface Container {
  id: string;
  netns: string;
  net: Net;
  port: number;
  address?: string;
  prev?: unknown;
}

type Kill = () => number | undefined;

function env(c: Container, command: string, ifname: string): Record<string, string> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns, CNI_IFNAME: ifname, CNI_PATH: c.net.dir };
}

function failed(r: Run): boolean {
  return r.code !== 0 || r.signal !== null;
}

/** ADD bridge, portmap, loopback, each exec maybe killed; stops at the first failure. */
async function chainAdd(s: Stress, c: Container, kill: Kill): Promise<string | undefined> {
  const b = await s.exec(join(c.net.dir, 'bridge'), env(c, 'ADD', 'eth0'), bridgeConf(c.net), kill());
  if (failed(b)) return `bridge ADD: ${b.signal ?? b.stdout + b.stderr}`;
  c.prev = JSON.parse(b.stdout) as unknown;
  c.address = (c.prev as { ips?: { address: string }[] }).ips?.[0]?.address;
  const p = await s.exec(join(c.net.dir, 'portmap'), env(c, 'ADD', 'eth0'), portmapConf(c.net, c.port, c.prev), kill());
  if (failed(p)) return `portmap ADD: ${p.signal ?? p.stdout + p.stderr}`;
  const l = await s.exec(join(c.net.dir, 'loopback'), env(c, 'ADD', 'lo'), LO, kill());
  if (failed(l)) return `loopback ADD: ${l.signal ?? l.stdout + l.stderr}`;
  return undefined;
}

/** DEL in reverse, every plugin even after one failed (a runtime retries the whole round later). */
async function chainDel(s: Stress, c: Container, kill: Kill, withPrev: boolean): Promise<string | undefined> {
  const errs: string[] = [];
  const l = await s.exec(join(c.net.dir, 'loopback'), env(c, 'DEL', 'lo'), LO, kill());
  if (failed(l)) errs.push(`loopback DEL: ${l.signal ?? l.stdout + l.stderr}`);
  const p = await s.exec(join(c.net.dir, 'portmap'), env(c, 'DEL', 'eth0'), portmapConf(c.net, c.port, withPrev ? c.prev : undefined), kill());
  if (failed(p)) errs.push(`portmap DEL: ${p.signal ?? p.stdout + p.stderr}`);
  const b = await s.exec(join(c.net.dir, 'bridge'), env(c, 'DEL', 'eth0'), bridgeConf(c.net), kill());
  if (failed(b)) errs.push(`bridge DEL: ${b.signal ?? b.stdout + b.stderr}`);
  return errs.length ? errs.join('; ') : undefined;
}

const never: Kill = () => undefined;

// ---- counting what is there ----------------------------------------------

function files(dir: string, pred: (name: string) => boolean = () => true): string[] {
  return existsSync(dir) ? readdirSync(dir).filter(pred) : [];
}

const isAddress = (n: string) => /^[0-9a-f.:]+$/.test(n) && /[.:]/.test(n);

interface Counts {
  veths: number;
  leases: Map<string, number>;
  ownerEntries: Map<string, number>;
  emptyBuckets: number;
  temporaries: number;
  bridgeRecords: Map<string, number>;
  portRecords: Map<string, number>;
  portIndex: number;
  nftElements: Map<string, number>;
  nftSubnetChains: number;
  iptChains: number;
  iptRules: number;
  iptLinesNaming: (subnet: string) => number;
  nftLinesNaming: (subnet: string) => number;
}

function count(s: Stress, nets: Net[]): Counts {
  const veths = (JSON.parse(s.sh('ip', ['-j', 'link', 'show', 'type', 'veth']).stdout || '[]') as { ifname: string }[]).filter((l) => l.ifname !== 'uplink0').length;
  const leases = new Map<string, number>();
  const ownerEntries = new Map<string, number>();
  let emptyBuckets = 0;
  let temporaries = 0;
  const bridgeRecords = new Map<string, number>();
  const portRecords = new Map<string, number>();
  // Records live in the lab host's own directory (lib/state: ns-<inode of its netns>).
  const hostDir = (dataDir: string) => join(dataDir, `ns-${statSync(s.hostPath).ino}`);
  for (const n of nets) {
    const d = join(n.ipamDir, n.name);
    leases.set(n.name, files(d, isAddress).length);
    let entries = 0;
    for (const b of files(join(d, '.cnikit-owners'), (x) => x.length === 2)) {
      const inBucket = files(join(d, '.cnikit-owners', b)).length;
      entries += inBucket;
      if (inBucket === 0) emptyBuckets++;
    }
    ownerEntries.set(n.name, entries);
    temporaries += files(join(d, '.cnikit-tmp')).length + files(d, (x) => x.startsWith('.tmp-')).length;
    bridgeRecords.set(n.name, files(join(hostDir(n.dataDir), 'bridge', n.name)).length);
    portRecords.set(n.name, files(join(hostDir(n.dataDir), 'portmap', n.name)).length);
    temporaries += files(join(hostDir(n.dataDir), 'bridge', n.name), (x) => x.startsWith('.tmp-')).length;
  }
  let portIndex = 0;
  const pdir = join(hostDir(nets[0]!.dataDir), 'portmap-ports');
  for (const proto of files(pdir)) portIndex += files(join(pdir, proto)).length;
  const nftElements = new Map<string, number>();
  let nftSubnetChains = 0;
  const nftText = s.sh('nft', ['list', 'ruleset']).stdout;
  const table = s.sh('nft', ['-j', 'list', 'table', 'inet', 'cnikit']);
  if (table.code === 0) {
    for (const item of (JSON.parse(table.stdout) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] }).nftables) {
      const m = item.map ?? item.set;
      if (m?.name) nftElements.set(m.name, m.elem?.length ?? 0);
      if (item.chain?.name && /^(masq|psnat)-/.test(item.chain.name)) nftSubnetChains++;
    }
  }
  const ipt = s.sh('iptables-save', []).stdout;
  const iptChains = (ipt.match(/^:CNIK-[AP]-/gm) ?? []).length;
  // One dispatch per container in each: its masquerade, its port's DNAT, its port's SNAT.
  const iptRules = (ipt.match(/^-A CNIK-(POSTROUTING|HOSTPORTS|HOSTPORTS-SNAT) /gm) ?? []).length;
  const naming = (text: string) => (subnet: string) => text.split('\n').filter((l) => l.includes(subnet.replace(/\.0\/\d+$/, '.'))).length;
  return {
    veths, leases, ownerEntries, emptyBuckets, temporaries, bridgeRecords, portRecords, portIndex, nftElements, nftSubnetChains, iptChains, iptRules,
    iptLinesNaming: naming(ipt), nftLinesNaming: naming(nftText),
  };
}

/**
 * Every cnikit map/set element and per-container iptables rule still there, each named with the
 * network whose subnet it mentions (or "?"), so a count above 0 can be traced to a network and backend.
 */
function firewallLeftovers(s: Stress, nets: Net[]): string[] {
  const netOf = (text: string) => nets.find((n) => text.includes(n.subnet.replace(/\.0\/\d+$/, '.')))?.name ?? '?';
  const out: string[] = [];
  const table = s.sh('nft', ['-j', 'list', 'table', 'inet', 'cnikit']);
  if (table.code === 0) {
    for (const item of (JSON.parse(table.stdout) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] }).nftables) {
      const m = item.map ?? item.set;
      // bridges/isolated/net are per network (they stay while the network does); the rest are per container.
      if (!m?.name || ['bridges', 'isolated', 'net'].includes(m.name)) continue;
      for (const e of m.elem ?? []) {
        const text = JSON.stringify(e);
        out.push(`nftables ${netOf(text)} ${m.name}: ${text}`);
      }
    }
  }
  for (const line of s.sh('iptables-save', []).stdout.split('\n')) {
    if (/^-A CNIK-(POSTROUTING|HOSTPORTS|HOSTPORTS-SNAT) /.test(line)) out.push(`iptables ${netOf(line)}: ${line}`);
  }
  return out;
}

/** What is there beyond what the survivors should hold. */
function leaks(c: Counts, nets: Net[], survivors: Container[]): Leaks {
  const on = (n: Net) => survivors.filter((x) => x.net === n).length;
  const nft = survivors.filter((x) => x.net.backend !== 'iptables').length;
  const ipt = survivors.length - nft;
  let leases = 0;
  let records = 0;
  let index = 0;
  for (const n of nets) {
    leases += (c.leases.get(n.name) ?? 0) - on(n);
    records += (c.bridgeRecords.get(n.name) ?? 0) - on(n) + (c.portRecords.get(n.name) ?? 0) - on(n);
    index += (c.ownerEntries.get(n.name) ?? 0) - on(n);
  }
  index += c.portIndex - survivors.length;
  let elements = 0;
  for (const m of ['masq4', 'masqowner4', 'ports4', 'portowner4', 'portsnat4']) elements += (c.nftElements.get(m) ?? 0) - nft;
  elements += c.iptRules - 3 * ipt;
  const usedSubnets = new Set(survivors.filter((x) => x.net.backend !== 'iptables').map((x) => x.net.subnet)).size;
  return {
    links: c.veths - survivors.length,
    leases,
    records,
    indexEntries: index,
    emptyIndexDirs: c.emptyBuckets,
    temporaries: c.temporaries,
    firewallElements: elements,
    // masq-/psnat- per subnet still used; CNIK-A-/CNIK-P- per iptables survivor.
    firewallChains: c.nftSubnetChains - 2 * usedSubnets + c.iptChains - 2 * ipt,
  };
}

// ---- (a) N chains at once --------------------------------------------------

async function batch(s: Stress, name: string, dir: string, subnet: string, backend: Net['backend']): Promise<BatchResult> {
  const net = makeNet(s, `stress-${dir === OURS ? 'ck' : 'ref'}`, dir === OURS ? 'sbr-ck' : 'sbr-ref', subnet, backend, dir);
  if (dir !== OURS) net.ipamDir = join(s.dir, 'ref-ipam');
  const cs: Container[] = [];
  for (let i = 0; i < s.o.batch; i++) cs.push({ id: `batch-${dir === OURS ? 'ck' : 'ref'}-${i}`, netns: s.lab.container(), net, port: 30000 + i });
  let t0 = performance.now();
  const adds = await Promise.all(cs.map((c) => chainAdd(s, c, never)));
  const addMs = performance.now() - t0;
  const addresses = cs.map((c) => c.address).filter((a): a is string => a !== undefined);
  const duplicates = addresses.length - new Set(addresses).size;
  for (const e of adds) if (e) s.log(`${name} ADD error: ${e.slice(0, 300)}`);
  t0 = performance.now();
  const dels = await Promise.all(cs.map((c) => chainDel(s, c, never, true)));
  const delMs = performance.now() - t0;
  for (const e of dels) if (e) s.log(`${name} DEL error: ${e.slice(0, 300)}`);
  for (const c of cs) s.lab.remove(c.netns);
  const k = count(s, [net]);
  const left = {
    links: k.veths,
    leases: k.leases.get(net.name) ?? 0,
    firewall: k.iptLinesNaming(subnet) + k.nftLinesNaming(subnet),
    records: dir === OURS ? (k.bridgeRecords.get(net.name) ?? 0) + (k.portRecords.get(net.name) ?? 0) + k.portIndex + (k.ownerEntries.get(net.name) ?? 0) : 0,
  };
  return { name, addMs, delMs, addErrors: adds.filter(Boolean).length, delErrors: dels.filter(Boolean).length, duplicates, left };
}

// ---- (b) churn, (c) flush and reload ---------------------------------------

interface Live {
  c: Container;
  server?: ChildProcess;
}

function startServer(s: Stress, c: Container): ChildProcess {
  const www = join(s.dir, 'www', c.id);
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'index.html'), `${c.id}\n`);
  return spawn('nsenter', [`--net=${c.netns}`, '--', 'busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' });
}

/** A published port from the outside host, and masquerade from the container to it. */
function traffic(s: Stress, c: Container): { port: boolean; masq: boolean } {
  const get = `exec 3<>/dev/tcp/${HOST4}/${c.port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`;
  const port = s.sh('timeout', ['3', 'bash', '-c', get], s.outside).stdout.includes(`${c.id}\n`);
  const masq = s.sh('ping', ['-c1', '-W2', OUTSIDE4], c.netns).code === 0;
  return { port, masq };
}

async function trafficAll(s: Stress, cs: Container[]): Promise<{ ports: number; masq: number; both: number }> {
  const servers = cs.map((c) => startServer(s, c));
  try {
    await sleep(300);
    let ports = 0;
    let masq = 0;
    let both = 0;
    for (const c of cs) {
      let t = traffic(s, c);
      // A server slow to start under load gets a second chance.
      if (!t.port) {
        await sleep(500);
        t = traffic(s, c);
      }
      if (!t.port || !t.masq) s.log(`traffic ${c.id} (${c.net.name} ${c.address} :${c.port}): port ${t.port} masquerade ${t.masq}`);
      if (t.port) ports++;
      if (t.masq) masq++;
      if (t.port && t.masq) both++;
    }
    return { ports, masq, both };
  } finally {
    for (const srv of servers) srv.kill('SIGKILL');
  }
}

async function churn(s: Stress, nets: Net[], result: StressResult): Promise<Container[]> {
  const live = new Set<Container>();
  const needDel = new Set<Container>();
  let n = 0;
  let adds = 0;
  let dels = 0;
  let failedAdds = 0;
  const kill: Kill = () => (Math.random() < s.o.killRate ? Math.random() * 40 : undefined);
  const nextPort = () => 31000 + (n % 30000);

  const t0 = performance.now();
  const worker = async (quota: () => boolean) => {
    while (quota()) {
      // About half the ADDs fail (a kill in one of three execs): ADD more often than DEL, so containers pile up to maxLive.
      if (live.size === 0 || (live.size < s.o.maxLive && Math.random() < 0.75)) {
        adds++;
        if (adds % 50 === 0) s.log(`(b) ${adds} ADDs, ${dels} DELs, ${live.size} live, ${s.killed} killed, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        const net = nets[Math.floor(Math.random() * nets.length)]!;
        const c: Container = { id: `churn-${n}`, netns: s.lab.container(), net, port: nextPort() };
        n++;
        const err = await chainAdd(s, c, kill);
        if (err) {
          failedAdds++;
          // What a runtime does after a failed ADD: DEL of the chain, without prevResult (may be killed too).
          if (await chainDel(s, c, kill, false)) needDel.add(c);
          else s.lab.remove(c.netns);
        } else live.add(c);
      } else {
        const all = [...live];
        const c = all[Math.floor(Math.random() * all.length)]!;
        live.delete(c);
        dels++;
        if (await chainDel(s, c, kill, true)) needDel.add(c);
        else s.lab.remove(c.netns);
      }
    }
  };
  const half = Math.floor(s.o.cycles / 2);
  await Promise.all(Array.from({ length: s.o.workers }, () => worker(() => adds < half)));

  // (c) in the middle: every live container serves its port, the firewall is flushed, then reloaded.
  {
    const cs = [...live];
    const before = (await trafficAll(s, cs)).both;
    s.sh('nft', ['flush', 'ruleset']);
    const afterFlush = (await trafficAll(s, cs)).both;
    const r0 = performance.now();
    const rl = s.sh(CNIKIT, ['firewall', 'reload', '--data-dir', nets[0]!.dataDir, '--config-dir', join(s.dir, 'net.d')]);
    const reloadMs = performance.now() - r0;
    if (rl.code !== 0) s.log(`reload failed: ${rl.stderr}`);
    const afterReload = (await trafficAll(s, cs)).both;
    result.reload = { live: cs.length, beforeFlush: before, afterFlush, afterReload, reloadMs, output: (rl.stdout + rl.stderr).trim() };
    s.log(`(c) ${cs.length} live: ${before} working, ${afterFlush} after nft flush ruleset, ${afterReload} after cnikit firewall reload (${reloadMs.toFixed(0)} ms)`);
  }

  await Promise.all(Array.from({ length: s.o.workers }, () => worker(() => adds < s.o.cycles)));
  const ms = performance.now() - t0;

  // The DEL a runtime sends again for every attachment whose DEL (or failed ADD's DEL) did not finish.
  let runtimeDelErrors = 0;
  for (const c of needDel) {
    const err = await chainDel(s, c, never, false);
    if (err) {
      runtimeDelErrors++;
      s.log(`runtime DEL ${c.id}: ${err.slice(0, 300)}`);
    }
    s.lab.remove(c.netns);
  }
  // One GC per network with the survivors as the valid attachments.
  let gcErrors = 0;
  const survivors = [...live];
  for (const net of nets) {
    const valid = survivors.filter((c) => c.net === net).map((c) => ({ containerID: c.id, ifname: 'eth0' }));
    const extra = { 'cni.dev/valid-attachments': valid };
    const genv = { CNI_COMMAND: 'GC', CNI_PATH: net.dir };
    for (const [plugin, conf] of [['bridge', bridgeConf(net, '1.1.0', extra)], ['portmap', portmapConf(net, 0, undefined, '1.1.0', extra)]] as const) {
      const r = await s.exec(join(net.dir, plugin), genv, conf);
      if (failed(r)) {
        gcErrors++;
        s.log(`GC ${plugin} ${net.name}: ${r.stdout}${r.stderr}`);
      }
    }
  }
  const leaksAfterGc = leaks(count(s, nets), nets, survivors);
  const t = await trafficAll(s, survivors);
  // Everything goes: nothing at all may be left.
  for (const c of survivors) {
    if (await chainDel(s, c, never, true)) runtimeDelErrors++;
    s.lab.remove(c.netns);
  }
  const leftAfterCleanup = leaks(count(s, nets), nets, []);
  const leftovers = firewallLeftovers(s, nets);
  for (const l of leftovers) s.log(`left: ${l}`);
  result.churn = {
    adds, dels, execs: 0, killed: 0, failedAdds, runtimeDels: needDel.size, runtimeDelErrors, gcErrors, survivors: survivors.length,
    leaksAfterGc, traffic: { checked: survivors.length, ports: t.ports, masquerade: t.masq }, leftAfterCleanup, leftovers, ms,
  };
  return survivors;
}

export async function runStress(o: StressOptions): Promise<StressResult> {
  for (const p of [join(OURS, 'bridge'), CNIKIT]) if (!existsSync(p)) throw new Error(`${p} is missing: npm run build`);
  const s = new Stress(o);
  const result = { options: o, batches: [] } as unknown as StressResult;
  try {
    s.addOutside();
    // (a)
    result.batches.push(await batch(s, 'cnikit (nftables)', OURS, '10.210.0.0/16', undefined));
    s.log(`(a) ${JSON.stringify(result.batches.at(-1))}`);
    if (o.reference && existsSync(join(REF, 'bridge'))) {
      result.batches.push(await batch(s, 'reference (iptables)', REF, '10.211.0.0/16', undefined));
      s.log(`(a) ${JSON.stringify(result.batches.at(-1))}`);
    }
    // (b) and (c)
    const nets = [
      makeNet(s, 'stress-n1', 'sbr-n1', '10.212.0.0/24', undefined),
      makeNet(s, 'stress-n2', 'sbr-n2', '10.213.0.0/24', 'nftables'),
      makeNet(s, 'stress-n3', 'sbr-n3', '10.214.0.0/24', 'iptables'),
    ];
    const execs0 = s.execs;
    const killed0 = s.killed;
    await churn(s, nets, result);
    result.churn.execs = s.execs - execs0;
    result.churn.killed = s.killed - killed0;
    s.log(`(b) ${JSON.stringify(result.churn)}`);
    return result;
  } finally {
    s.close();
  }
}

/** Whether every count the issue asks to be zero is. */
export function clean(r: StressResult): boolean {
  const zero = (l: Leaks) => Object.values(l).every((v) => v === 0);
  return r.batches.filter((b) => b.name.startsWith('cnikit')).every((b) => b.addErrors + b.delErrors + b.duplicates + b.left.links + b.left.leases + b.left.firewall + b.left.records === 0) &&
    r.churn.runtimeDelErrors === 0 && r.churn.gcErrors === 0 && zero(r.churn.leaksAfterGc) && zero(r.churn.leftAfterCleanup) &&
    r.churn.traffic.ports === r.churn.traffic.checked && r.churn.traffic.masquerade === r.churn.traffic.checked &&
    r.reload.afterReload === r.reload.live;
}

export function report(r: StressResult): string {
  const o = r.options;
  const lines = [
    '# Stress and chaos (`npm run stress`)',
    '',
    `Machine: ${machine()}. ${new Date().toISOString().slice(0, 10)}. Timings are wall times on a shared 2-vCPU machine under load from other work; compare the contenders within one run.`,
    '',
    `## (a) ${o.batch} whole chains at once (bridge + host-local + portmap with one port each, + loopback), then DEL of all at once`,
    '',
    '| contender | ADD batch ms | DEL batch ms | ADD errors | DEL errors | duplicate addresses | links left | leases left | firewall lines naming the subnet left | records/index entries left |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.batches.map((b) => `| ${b.name} | ${b.addMs.toFixed(0)} | ${b.delMs.toFixed(0)} | ${b.addErrors} | ${b.delErrors} | ${b.duplicates} | ${b.left.links} | ${b.left.leases} | ${b.left.firewall} | ${b.name.startsWith('cnikit') ? b.left.records : '— (keeps none)'} |`),
    ...(r.batches.length === 2 ? ['', `Batch time ratio to the reference: ADD ${(r.batches[0]!.addMs / r.batches[1]!.addMs).toFixed(2)}x, DEL ${(r.batches[0]!.delMs / r.batches[1]!.delMs).toFixed(2)}x (one batch each; the plugins run from ${o.batch} concurrent runtimes).`] : []),
    '',
    `## (b) churn: ${r.churn.adds} ADDs and ${r.churn.dels} DELs of random containers on 3 networks (two nftables, one iptables), ${o.workers} at a time, ~${Math.round(o.killRate * 100)}% of plugin execs SIGKILLed`,
    '',
    `${r.churn.execs} plugin execs, ${r.churn.killed} killed (SIGKILL at a random moment in their first 40 ms); ${r.churn.failedAdds} ADDs failed and got the runtime's DEL; ${r.churn.runtimeDels} attachments got the DEL again after the churn (${r.churn.runtimeDelErrors} of those DELs failed); one GC per network (${r.churn.gcErrors} failed). ${(r.churn.ms / 1000).toFixed(0)} s.`,
    '',
    `Left beyond what the ${r.churn.survivors} survivors hold, after that DEL and GC:`,
    '',
    '| links | leases | records | index entries | empty index dirs | temporaries | firewall elements (nft map elements, iptables rules) | per-subnet/per-attachment chains |',
    '|---|---|---|---|---|---|---|---|',
    `| ${Object.values(r.churn.leaksAfterGc).join(' | ')} |`,
    '',
    `Survivors passing traffic: ${r.churn.traffic.ports}/${r.churn.traffic.checked} published ports from another host, ${r.churn.traffic.masquerade}/${r.churn.traffic.checked} masquerade out to it.`,
    '',
    'Left after every survivor was DELeted too:',
    '',
    '| links | leases | records | index entries | empty index dirs | temporaries | firewall elements (nft map elements, iptables rules) | per-subnet/per-attachment chains |',
    '|---|---|---|---|---|---|---|---|',
    `| ${Object.values(r.churn.leftAfterCleanup).join(' | ')} |`,
    '',
    ...(r.churn.leftovers.length ? ['Firewall elements and rules left after that (backend, network, map or rule):', '', ...r.churn.leftovers.map((l) => `- \`${l}\``), ''] : []),
    '## (c) a firewall flush in the middle of the churn, then `cnikit firewall reload`',
    '',
    `${r.reload.live} live containers, each serving its published port: ${r.reload.beforeFlush} passed (port and masquerade) before, ${r.reload.afterFlush} after \`nft flush ruleset\`, ${r.reload.afterReload} after \`cnikit firewall reload\` (${r.reload.reloadMs.toFixed(0)} ms: "${r.reload.output}").`,
    '',
    'Empty index dirs are bucket directories (`.cnikit-owners/<xx>`) of host-local\'s owner index that no entry uses any more: a DEL removes its bucket with its last entry, a DEL sent again removes one a killed DEL left empty, and GC sweeps the rest, so they count as leaks like the others.',
    '',
    `Verdict: ${clean(r) ? 'every count that must be 0 is 0' : 'NOT CLEAN: see the counts above'}.`,
    '',
  ];
  return lines.join('\n');
}

function envNumber(name: string, dflt: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : Number(v);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const o: StressOptions = {
    batch: envNumber('STRESS_BATCH', 100),
    cycles: envNumber('STRESS_CYCLES', 1000),
    workers: envNumber('STRESS_WORKERS', 4),
    killRate: envNumber('STRESS_KILL', 0.2),
    reference: envNumber('STRESS_REFERENCE', 1) === 1,
    maxLive: envNumber('STRESS_MAX_LIVE', 24),
    log: (l) => process.stderr.write(`${l}\n`),
  };
  const r = await runStress(o);
  const text = report(r);
  process.stdout.write(text);
  const out = process.env.STRESS_OUT ?? join(root, 'bench/STRESS.md');
  if (out) writeFileSync(out, text);
  process.exitCode = clean(r) ? 0 : 1;
}
