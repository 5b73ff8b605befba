// `npm run bench [-- suite...]`: cnikit against the reference plugins
// (Debian containernetworking-plugins, /usr/lib/cni), side by side, and
// against netavark (Debian netavark, Podman's network backend) where it has
// a like-for-like job: the full chain ADD/DEL, at scale and in parallel.
import { existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchLab, benchDirectory, execPlugin, machine, measure, table, type Contender } from './harness.ts';
import { COMPILE_FLAGS } from '../scripts/compile-flags.ts';
import { criSuite } from './cri.ts';
import { bandwidthSuite } from './bandwidth.ts';
import { dnsSuite } from './dns.ts';
import { buildFloor as buildFloorProgram } from './floor.ts';
import { metaSuites } from './meta.ts';
import { noopSuites } from './noop.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OURS = join(root, 'dist/bin');
const REF = '/usr/lib/cni';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
/** Debian installs it off PATH, where Podman looks for it. */
const NETAVARK = '/usr/lib/podman/netavark';
const HAVE_NETAVARK = existsSync(NETAVARK);

for (const p of [join(OURS, 'none'), join(REF, 'loopback')]) {
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build; apt-get install containernetworking-plugins)`);
}

type Suite = (lab: BenchLab) => string | Promise<string>;

function buildFloor(): string {
  return buildFloorProgram(root);
}

const loConf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench-lo', type: 'loopback' });

const benchDir = benchDirectory();

interface ChainSpec {
  name: string;
  /** Plugin directory (CNI_PATH). */
  dir: string;
  /** Short tag naming the contender's network, bridge and data dirs. */
  tag: string;
  subnet: string;
  /** Firewall backend; absent: the plugin's own default. */
  backend?: 'iptables' | 'nftables';
}

/** The conflist a runtime would hold: bridge (+ host-local), portmap with one mapping, loopback. */
function chainConfs(c: ChainSpec) {
  const bridge = {
    cniVersion: '1.0.0',
    name: `bench-${c.tag}`,
    type: 'bridge',
    bridge: `bbr-${c.tag}`,
    isGateway: true,
    ipMasq: true,
    ...(c.backend ? { ipMasqBackend: c.backend } : {}),
    dataDir: join(benchDir, c.tag, 'state'),
    ipam: { type: 'host-local', ranges: [[{ subnet: c.subnet }]], dataDir: join(benchDir, c.tag, 'ipam') },
  };
  const portmap = (prevResult: unknown, hostPort: number) => JSON.stringify({
    cniVersion: '1.0.0',
    name: `bench-${c.tag}`,
    type: 'portmap',
    ...(c.backend ? { backend: c.backend } : {}),
    dataDir: join(benchDir, c.tag, 'state'),
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
    prevResult,
  });
  return { bridge: JSON.stringify(bridge), portmap };
}

/**
 * One contender's whole job of attaching a container to a bridge network
 * with one published port, and detaching it, the way its runtime does it.
 */
abstract class Attacher<T extends { netns: string }> {
  abstract readonly name: string;
  protected abstract readonly lab: BenchLab;
  /** The plugins' ADD into a namespace the runtime made beforehand (untimed, as in the other suites). */
  abstract add(netns: string): T;
  /** The plugins' DEL; the runtime removes the namespace afterwards, untimed. */
  abstract del(c: T): void;

  private attach(): T {
    return this.add(this.lab.container());
  }

  private detach(c: T): void {
    this.del(c);
    this.lab.remove(c.netns);
  }

  /** Attach one container for good (it makes the host "busy"); returns its undo. */
  keep(): () => void {
    const c = this.attach();
    return () => this.detach(c);
  }

  contender(cmd: 'ADD' | 'DEL'): Contender {
    let netns: string | undefined;
    let c: T | undefined;
    const held = () => {
      if (c === undefined) throw new Error(`${this.name}: no container from the ${cmd === 'ADD' ? 'run' : 'setup'}`);
      return c;
    };
    return {
      name: this.name,
      setup: () => {
        if (cmd === 'ADD') netns = this.lab.container();
        else c = this.attach();
      },
      run: () => {
        if (cmd === 'DEL') return this.del(held());
        if (netns === undefined) throw new Error(`${this.name}: no namespace from the setup`);
        c = this.add(netns);
      },
      teardown: () => {
        if (cmd === 'ADD') this.detach(held());
        else this.lab.remove(held().netns);
        c = undefined;
        netns = undefined;
      },
    };
  }
}

interface CniContainer {
  netns: string;
  id: string;
  prev: unknown;
  port: number;
}

/**
 * The whole chain, one exec per plugin as a runtime runs it: ADD bridge,
 * portmap, loopback; DEL in reverse with the cached result as prevResult.
 */
class Chain extends Attacher<CniContainer> {
  private n = 0;
  private readonly confs;
  constructor(protected readonly lab: BenchLab, readonly spec: ChainSpec) {
    super();
    this.confs = chainConfs(spec);
  }

  get name(): string {
    return this.spec.name;
  }

  add(netns: string): CniContainer {
    const id = `bench-${this.spec.tag}-${this.n++}`;
    const port = 10000 + (this.n % 50000);
    const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: this.spec.dir });
    const prev = JSON.parse(execPlugin(join(this.spec.dir, 'bridge'), env('ADD', 'eth0'), this.confs.bridge).stdout) as unknown;
    execPlugin(join(this.spec.dir, 'portmap'), env('ADD', 'eth0'), this.confs.portmap(prev, port));
    execPlugin(join(this.spec.dir, 'loopback'), env('ADD', 'lo'), loConf);
    return { netns, id, prev, port };
  }

  del(c: CniContainer): void {
    const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns, CNI_IFNAME: ifname, CNI_PATH: this.spec.dir });
    execPlugin(join(this.spec.dir, 'loopback'), env('DEL', 'lo'), loConf);
    execPlugin(join(this.spec.dir, 'portmap'), env('DEL', 'eth0'), this.confs.portmap(c.prev, c.port));
    execPlugin(join(this.spec.dir, 'bridge'), env('DEL', 'eth0'), this.confs.bridge);
  }
}

const NETAVARK_NAME = 'netavark 1.4 (iptables, its default)';

interface NetavarkContainer {
  netns: string;
  /** The network options JSON netavark was given; teardown takes the same. */
  options: string;
  ip: number;
}

/**
 * Netavark's like-for-like job, as Podman execs it: `netavark --config DIR
 * setup NETNS` with the container's network options on stdin (a bridge
 * network with one subnet, DNS off, one TCP port mapping), and `teardown`
 * with the same options. One setup does all the chain does: bridge, veth,
 * addresses and routes, masquerade, the port's DNAT, and loopback up.
 *
 * Netavark has no IPAM of its own: Podman picks the address in its own
 * process and passes it as a static IP, so here a counter picks it, untimed.
 * Netavark deletes its bridge and network chains with the network's last
 * container, where the CNI bridges stay; one container is kept attached
 * from the start so every timed ADD/DEL finds the network as the CNI
 * contenders find theirs, already there.
 *
 * Its firewall driver is left to its default (iptables in 1.4; NETAVARK_FW
 * is not passed on). It runs from the lab host namespace like the plugins,
 * so its rules, its bridge and its ip_forward sysctl live and die there.
 */
class Netavark extends Attacher<NetavarkContainer> {
  readonly name = NETAVARK_NAME;
  private n = 0;
  private nextIp = 2;
  private readonly freeIps: number[] = [];
  readonly configDir: string;
  private readonly netName: string;
  private readonly network: object;
  private readonly base: number;

  constructor(protected readonly lab: BenchLab, readonly tag: string, subnet: string) {
    super();
    this.configDir = join(benchDir, tag, 'netavark');
    mkdirSync(this.configDir, { recursive: true });
    const [addr = '', len = ''] = subnet.split('/');
    this.base = addr.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    this.netName = `bench-${tag}`;
    this.network = {
      name: this.netName,
      // Podman's network IDs are 64 hex digits; netavark derives its chain names from them.
      id: createHash('sha256').update(this.netName).digest('hex'),
      driver: 'bridge',
      network_interface: `bbr-${tag}`,
      subnets: [{ subnet: `${addr}/${len}`, gateway: this.ip(1) }],
      ipv6_enabled: false,
      internal: false,
      dns_enabled: false,
      // "host-local" here means the caller assigned the address (static_ips).
      ipam_options: { driver: 'host-local' },
    };
    this.keep();
  }

  private ip(offset: number): string {
    const v = this.base + offset;
    return [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
  }

  /** An address no attached container holds, as Podman's IPAM would hand out. */
  allocIp(): number {
    return this.freeIps.pop() ?? this.nextIp++;
  }

  releaseIp(ip: number): void {
    this.freeIps.push(ip);
  }

  options(id: string, ip: number, hostPort: number): string {
    return JSON.stringify({
      container_id: id,
      container_name: id,
      port_mappings: [{ host_ip: '', container_port: 80, host_port: hostPort, range: 1, protocol: 'tcp' }],
      networks: { [this.netName]: { interface_name: 'eth0', static_ips: [this.ip(ip)] } },
      network_info: { [this.netName]: this.network },
    });
  }

  args(command: 'setup' | 'teardown', netns: string): string[] {
    return ['--config', this.configDir, command, netns];
  }

  add(netns: string): NetavarkContainer {
    const id = `bench-${this.tag}-${this.n++}`;
    const ip = this.allocIp();
    const options = this.options(id, ip, 10000 + (this.n % 50000));
    execPlugin(NETAVARK, {}, options, this.args('setup', netns));
    return { netns, options, ip };
  }

  del(c: NetavarkContainer): void {
    execPlugin(NETAVARK, {}, c.options, this.args('teardown', c.netns));
    this.releaseIp(c.ip);
  }
}

// One per run: its kept container and its address counter outlive a suite.
let netavarkOnce: Netavark | undefined;
function netavark(lab: BenchLab): Netavark[] {
  if (!HAVE_NETAVARK) return [];
  netavarkOnce ??= new Netavark(lab, 'nva', '10.203.0.0/16');
  return [netavarkOnce];
}

const NETAVARK_NOTE = HAVE_NETAVARK
  ? `${NETAVARK_NAME}: one \`netavark setup\` exec is its whole ADD (bridge, veth, addresses, masquerade, the port's DNAT, loopback up), \`teardown\` its DEL. ` +
    'The address comes from its caller (Podman\'s IPAM, in Podman\'s process), not timed here; one container stays attached so its bridge and network chains already exist, as the CNI bridges do.\n'
  : `netavark is not installed (${NETAVARK}; bash scripts/install-deps.sh): its rows are left out.\n`;
const VS_NETAVARK = { name: NETAVARK_NAME, label: 'netavark' };

const CHAINS: Omit<ChainSpec, 'dir'>[] = [
  { name: 'cnikit (nftables, its default)', tag: 'ckn', subnet: '10.200.0.0/16' },
  { name: 'cnikit (iptables)', tag: 'cki', subnet: '10.201.0.0/16', backend: 'iptables' },
  { name: 'reference (iptables, its default)', tag: 'ref', subnet: '10.202.0.0/16' },
];
const REF_CHAIN = 'reference (iptables, its default)';

function chains(lab: BenchLab): Chain[] {
  return CHAINS.map((c) => new Chain(lab, { ...c, dir: c.tag === 'ref' ? REF : OURS }));
}

/** Every contender of the full-chain job: the CNI chains, then netavark if installed. */
function attachers(lab: BenchLab): Attacher<{ netns: string }>[] {
  return [...chains(lab), ...netavark(lab)];
}

/** `cnikit run -p … NAME` then `cnikit rm NAME`, with cnikit's plugins in-process or the reference's exec'd, same driver. */
function labContenders(lab: BenchLab) {
  const cnikit = join(root, 'dist/cnikit');
  const setups = [
    { name: 'cnikit run/rm, cnikit plugins', tag: 'lk', subnet: '10.210.0.0/16', env: {} as Record<string, string> },
    { name: 'cnikit run/rm, reference plugins', tag: 'lr', subnet: '10.211.0.0/16', env: { CNIKIT_EXEC_PLUGINS: '1', CNI_PATH: REF } },
  ];
  return setups.map((c) => {
    const dir = join(benchDir, c.tag);
    const env = { ...process.env, CNIKIT_CONFIG_DIR: join(dir, 'net.d'), CNIKIT_STATE_DIR: join(dir, 'state'), CNIKIT_CACHE_DIR: join(dir, 'cache'), CNIKIT_DATA_DIR: join(dir, 'data'), ...c.env };
    mkdirSync(env.CNIKIT_CONFIG_DIR, { recursive: true });
    // The network as a runtime's conflist has it, in the version both plugin sets speak.
    writeFileSync(join(env.CNIKIT_CONFIG_DIR, 'bench.conflist'), JSON.stringify({
      cniVersion: '1.0.0',
      name: 'bench',
      plugins: [
        { type: 'bridge', bridge: `bbr-${c.tag}`, isGateway: true, isDefaultGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: c.subnet }]], dataDir: join(dir, 'ipam') }, dataDir: join(dir, 'plugins') },
        { type: 'portmap', capabilities: { portMappings: true }, dataDir: join(dir, 'plugins') },
      ],
    }));
    let n = 0;
    const run = (args: string[]) => {
      const r = spawnSync(cnikit, args, { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`cnikit ${args.join(' ')}: ${r.stderr}`);
    };
    const name = () => `${lab.prefix}-${c.tag}${n}`;
    return {
      add: { name: c.name, run: () => run(['run', '--network', 'bench', '-p', `${20000 + (n % 10000)}:80`, name()]), teardown: () => { run(['rm', name()]); n++; } },
      del: { name: c.name, setup: () => run(['run', '--network', 'bench', '-p', `${20000 + (n % 10000)}:80`, name()]), run: () => { run(['rm', name()]); n++; } },
    };
  });
}

/** Peak resident memory (KB) of one exec, from GNU time's %M. */
function peakKb(binary: string, env: Record<string, string>, stdin: string): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', binary], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, input: stdin, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${binary} ${env.CNI_COMMAND}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return Number(r.stderr.trim().split('\n').pop());
}

/** Chains of a parallel batch that failed, per contender and command: their count and first answer. */
const parallelFailures = new Map<string, { count: number; first: string }>();
function noteParallelFailure(contender: string, command: 'ADD' | 'DEL', line: string): void {
  const key = `${contender}: ${command}`;
  const seen = parallelFailures.get(key);
  if (seen) seen.count++;
  else parallelFailures.set(key, { count: 1, first: line.replace(/^FAILED \d+: /, '').slice(0, 300) });
}

/**
 * 20 whole chains at once, as a busy node starts a deployment: the wall time
 * of the batch, each chain a separate bash job of plugin execs.
 */
function parallelContender(lab: BenchLab, spec: ChainSpec, cmd: 'ADD' | 'DEL') {
  const confs = chainConfs(spec);
  let batch = 0;
  let nss: string[] = [];
  const script = (command: 'ADD' | 'DEL') => nss.map((ns, i) => {
    const env = `CNI_CONTAINERID=par-${spec.tag}-${batch}-${i} CNI_NETNS=${ns} CNI_PATH=${spec.dir}`;
    const pm = (prev: string) => `'${confs.portmap('PREV', 40000 + i).replace('"PREV"', `'"${prev}"'`)}'`;
    const add = `r=$(CNI_COMMAND=ADD CNI_IFNAME=eth0 ${env} ${spec.dir}/bridge <<<'${confs.bridge}') && ` +
      `CNI_COMMAND=ADD CNI_IFNAME=eth0 ${env} ${spec.dir}/portmap <<<${pm('$r')} >/dev/null && ` +
      `CNI_COMMAND=ADD CNI_IFNAME=lo ${env} ${spec.dir}/loopback <<<'${loConf}' >/dev/null && echo "$r" > ${benchDir}/par-${spec.tag}-${i}`;
    const del = `r=$(cat ${benchDir}/par-${spec.tag}-${i}) && CNI_COMMAND=DEL CNI_IFNAME=lo ${env} ${spec.dir}/loopback <<<'${loConf}' && ` +
      `CNI_COMMAND=DEL CNI_IFNAME=eth0 ${env} ${spec.dir}/portmap <<<${pm('$r')} && CNI_COMMAND=DEL CNI_IFNAME=eth0 ${env} ${spec.dir}/bridge <<<'${confs.bridge}'`;
    // A failed exec's answer (its CNI error, and what it wrote to stderr) goes to stderr, after FAILED.
    return `( ${command === 'ADD' ? add : del} ) >${benchDir}/par-${spec.tag}-${i}.out 2>&1 || echo "FAILED ${i}: $(tr "\\n" " " < ${benchDir}/par-${spec.tag}-${i}.out)" >&2 &`;
  }).join('\n') + '\nwait';
  const runBatch = (command: 'ADD' | 'DEL') => {
    const r = spawnSync('bash', ['-c', script(command)], { encoding: 'utf8' });
    // A failed chain is the contender's fault, reported with the table; the batch's time still counts.
    for (const line of r.stderr.split('\n')) if (line.startsWith('FAILED')) noteParallelFailure(spec.name, command, line);
  };
  return {
    name: spec.name,
    setup: () => {
      batch++;
      nss = Array.from({ length: 20 }, () => lab.container());
      if (cmd === 'DEL') runBatch('ADD');
    },
    run: () => runBatch(cmd),
    teardown: () => {
      if (cmd === 'ADD') runBatch('DEL');
      for (const ns of nss) lab.remove(ns);
    },
  };
}

/**
 * 20 netavark setups (or teardowns) started at once. Netavark 1.4 cannot run
 * beside itself ("iptables: Chain already exists", bridges vanishing under a
 * concurrent setup), so Podman holds one lock file around every netavark exec
 * (/run/lock/netavark.lock); here flock(1) holds one in the bench's temp dir
 * the same way, and the batch's wall time is what a busy node would see.
 */
function netavarkParallel(lab: BenchLab, nv: Netavark, cmd: 'ADD' | 'DEL'): Contender {
  const lock = join(nv.configDir, 'netavark.lock');
  let batch = 0;
  let jobs: { netns: string; ip: number; options: string }[] = [];
  const runBatch = (command: 'setup' | 'teardown') => {
    // JSON carries no single quote, so it goes on stdin as a quoted here-string.
    const script = jobs.map((j, i) =>
      `( flock ${lock} ${NETAVARK} ${nv.args(command, j.netns).join(' ')} <<<'${j.options}' >/dev/null ) || echo FAILED ${i} >&2 &`).join('\n') + '\nwait';
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    if (r.stderr.includes('FAILED')) throw new Error(`${nv.name}: parallel ${command} failed: ${r.stderr.slice(0, 300)}`);
  };
  return {
    name: nv.name,
    setup: () => {
      batch++;
      jobs = Array.from({ length: 20 }, (_, i) => {
        const ip = nv.allocIp();
        return { netns: lab.container(), ip, options: nv.options(`par-${nv.tag}-${batch}-${i}`, ip, 40000 + i) };
      });
      if (cmd === 'DEL') runBatch('setup');
    },
    run: () => runBatch(cmd === 'ADD' ? 'setup' : 'teardown'),
    teardown: () => {
      if (cmd === 'ADD') runBatch('teardown');
      for (const j of jobs) {
        nv.releaseIp(j.ip);
        lab.remove(j.netns);
      }
      jobs = [];
    },
  };
}

const suites: Record<string, Suite> = {
  parallel: (lab) => {
    const specs = CHAINS.map((c) => ({ ...c, dir: c.tag === 'ref' ? REF : OURS }));
    const rounds = Math.max(3, Math.floor(ROUNDS / 5));
    const ref = 'reference (iptables, its default)';
    const nv = netavark(lab);
    const contenders = (cmd: 'ADD' | 'DEL') => [...specs.map((s) => parallelContender(lab, s, cmd)), ...nv.map((n) => netavarkParallel(lab, n, cmd))];
    return [
      table('20 chains ADDed at once (wall time of the batch)', measure(contenders('ADD'), rounds, 1), ref, VS_NETAVARK),
      table('20 chains DELeted at once (wall time of the batch)', measure(contenders('DEL'), rounds, 1), ref, VS_NETAVARK),
      ...[...parallelFailures].map(([key, f]) => `Chains that failed in ${key} batches (warm-up and untimed ones included): ${f.count}; first answer: \`${f.first.replace(/`/g, "'")}\`.\n`),
      HAVE_NETAVARK ? `${NETAVARK_NAME}: 20 \`netavark setup\`/\`teardown\` execs started at once, each under one lock file as Podman runs them (netavark 1.4 fails beside itself: "iptables: Chain already exists"), so they run one after another.\n` : NETAVARK_NOTE,
    ].join('\n');
  },
  memory: (lab) => {
    const rows: string[] = [];
    for (const spec of CHAINS.filter((c) => c.tag !== 'cki')) {
      const dir = spec.tag === 'ref' ? REF : OURS;
      const confs = chainConfs({ ...spec, dir });
      const samples: Record<string, number[]> = { 'bridge ADD': [], 'portmap ADD': [], 'loopback ADD': [], 'bridge DEL': [] };
      for (let i = 0; i < Math.max(5, Math.floor(ROUNDS / 4)); i++) {
        const netns = lab.container();
        const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: `mem-${spec.tag}-${i}`, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: dir });
        samples['bridge ADD']!.push(peakKb(join(dir, 'bridge'), env('ADD', 'eth0'), confs.bridge));
        const prev = JSON.parse(execPlugin(join(dir, 'bridge'), { ...env('CHECK', 'eth0'), CNI_COMMAND: 'ADD', CNI_CONTAINERID: `mem2-${spec.tag}-${i}`, CNI_IFNAME: 'eth1' }, confs.bridge).stdout) as unknown;
        samples['portmap ADD']!.push(peakKb(join(dir, 'portmap'), env('ADD', 'eth0'), confs.portmap(prev, 30000 + i)));
        samples['loopback ADD']!.push(peakKb(join(dir, 'loopback'), env('ADD', 'lo'), loConf));
        execPlugin(join(dir, 'portmap'), env('DEL', 'eth0'), confs.portmap(prev, 30000 + i));
        execPlugin(join(dir, 'bridge'), { ...env('DEL', 'eth1'), CNI_CONTAINERID: `mem2-${spec.tag}-${i}` }, confs.bridge);
        samples['bridge DEL']!.push(peakKb(join(dir, 'bridge'), env('DEL', 'eth0'), confs.bridge));
        lab.remove(netns);
      }
      for (const [what, xs] of Object.entries(samples)) {
        const sorted = [...xs].sort((a, b) => a - b);
        rows.push(`| ${spec.name} | ${what} | ${(sorted[Math.floor(sorted.length / 2)]! / 1024).toFixed(1)} |`);
      }
    }
    return ['### peak memory per plugin exec (median of max RSS, MiB; GNU time %M)', '', '| contender | exec | MiB |', '|---|---|---|', ...rows, ''].join('\n');
  },
  lab: (lab) => {
    const cs = labContenders(lab);
    const ref = 'cnikit run/rm, reference plugins';
    return [
      table('cnikit run (loopback + bridge + host-local + portmap, one published port)', measure(cs.map((c) => c.add), ROUNDS), ref),
      table('cnikit rm', measure(cs.map((c) => c.del), ROUNDS), ref),
    ].join('\n');
  },
  version: () => {
    const run = (bin: string) => () => void execPlugin(bin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    const stats = measure(
      [
        { name: 'cnikit none', run: run(join(OURS, 'none')) },
        { name: 'reference loopback', run: run(join(REF, 'loopback')) },
        { name: 'empty Bun-compiled program (floor)', run: run(buildFloor()) },
      ],
      ROUNDS,
    );
    return table('VERSION exec', stats, 'reference loopback');
  },
  loopback: (lab) => {
    const contender = (name: string, bin: string, cmd: 'ADD' | 'DEL') => {
      let netns = '';
      const env = () => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: 'bench1', CNI_NETNS: netns, CNI_IFNAME: 'lo', CNI_PATH: OURS });
      return {
        name,
        setup: () => {
          netns = lab.container();
          if (cmd === 'DEL') execPlugin(bin, { ...env(), CNI_COMMAND: 'ADD' }, loConf);
        },
        run: () => void execPlugin(bin, env(), loConf),
        teardown: () => lab.remove(netns),
      };
    };
    const add = measure([contender('cnikit none', join(OURS, 'none'), 'ADD'), contender('reference loopback', join(REF, 'loopback'), 'ADD')], ROUNDS);
    const del = measure([contender('cnikit none', join(OURS, 'none'), 'DEL'), contender('reference loopback', join(REF, 'loopback'), 'DEL')], ROUNDS);
    return [table('loopback ADD (fresh namespace)', add, 'reference loopback'), table('loopback DEL', del, 'reference loopback')].join('\n');
  },
  chain: (lab) => {
    const cs = attachers(lab);
    return [
      table('full chain ADD: bridge (+ host-local, ipMasq), portmap (1 port), loopback', measure(cs.map((c) => c.contender('ADD')), ROUNDS), REF_CHAIN, VS_NETAVARK),
      table('full chain DEL: loopback, portmap, bridge (+ host-local)', measure(cs.map((c) => c.contender('DEL')), ROUNDS), REF_CHAIN, VS_NETAVARK),
      NETAVARK_NOTE,
    ].join('\n');
  },
  scale: (lab) => {
    // ADD/DEL of one more container with N already on the host, per contender.
    const cs = attachers(lab);
    const out: string[] = [];
    const kept: (() => void)[] = [];
    let have = 0;
    for (const n of (process.env.BENCH_SCALE ?? '10,100').split(',').map(Number)) {
      for (; have < n; have++) for (const chain of cs) kept.push(chain.keep());
      const rounds = Math.max(5, Math.floor(ROUNDS / 4));
      out.push(table(`chain ADD with ${n} containers on the host`, measure(cs.map((c) => c.contender('ADD')), rounds, 1), REF_CHAIN, VS_NETAVARK));
      out.push(table(`chain DEL with ${n} containers on the host`, measure(cs.map((c) => c.contender('DEL')), rounds, 1), REF_CHAIN, VS_NETAVARK));
    }
    for (const undo of kept.reverse()) undo();
    out.push(NETAVARK_NOTE);
    return out.join('\n');
  },
  dns: dnsSuite,
  bandwidth: (lab) => bandwidthSuite(lab, { ours: OURS, ref: REF, rounds: ROUNDS, benchDir }),
  cri: (lab) => criSuite(lab, join(benchDir, 'cri'), { ours: OURS, ref: REF }),
  ...metaSuites({ ours: OURS, ref: REF, rounds: ROUNDS, dir: benchDir }),
  ...noopSuites({ ours: OURS, ref: REF, rounds: ROUNDS, dir: benchDir, floor: buildFloor }),
};

const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(suites);
const lab = new BenchLab();
try {
  const out: string[] = [];
  for (const name of wanted) {
    const suite = suites[name];
    if (!suite) throw new Error(`unknown suite ${name}; known: ${Object.keys(suites).join(', ')}`);
    out.push(await lab.inHost(() => suite(lab)));
  }
  const report = `## cnikit vs reference plugins${HAVE_NETAVARK ? ' and netavark' : ''}\n\nMachine: ${machine()}. ${ROUNDS} rounds, interleaved; run on ${new Date().toISOString().slice(0, 10)}.\n\n${out.join('\n')}\n`;
  process.stdout.write(report);
  // The full run is the report of record.
  if (process.argv.slice(2).length === 0) writeFileSync(join(root, 'bench/RESULTS.md'), `# Benchmark results\n\nWritten by \`npm run bench\` (all suites).\n\n${report}`);
} finally {
  lab.close();
  rmSync(benchDir, { recursive: true, force: true });
}
