// Execs that have nothing to do, against the floor of the process model (an
// empty program compiled with cnikit's flags): what containerd runs for every
// pod without hostPorts — loopback ADD/DEL, portmap with no mappings, the
// second DEL round that finds nothing — and VERSION. Each should cost no
// more than 1.15x the floor. All contenders run interleaved, one each per
// round, so drift on a shared machine hits them alike.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { measure, type BenchLab, type Contender, type Stats } from './harness.ts';

export interface NoopBenchEnv {
  ours: string;
  ref: string;
  rounds: number;
  dir: string;
  floor: () => string;
}

type Suite = (lab: BenchLab) => string;

/** One no-op exec: its plugin, environment and stdin, and the namespace it needs (made untimed). */
interface Noop {
  what: string;
  plugin: string;
  netns?: 'fresh' | 'after-add';
  env: (netns: string, tag: string) => Record<string, string>;
  stdin: (tag: string) => string;
}

const FLOOR = 'floor: empty program, same compile flags';
const LIMIT = 1.15;

/** A result as bridge leaves it, for portmap's prevResult (the address need not exist: portmap has nothing to do). */
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'veth0', mac: '0a:58:0a:fe:00:02' }, { name: 'eth0', mac: '0a:58:0a:fe:00:03', sandbox: '/run/netns/x' }],
  ips: [{ address: '10.254.0.2/24', gateway: '10.254.0.1', interface: 1 }],
};

function noops(dir: string): Noop[] {
  const lo = JSON.stringify({ cniVersion: '0.3.1', name: 'cni-loopback', type: 'loopback' });
  const base = (command: string, netns: string, id: string, ifname = 'eth0') => ({
    CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_IFNAME: ifname, ...(netns ? { CNI_NETNS: netns } : {}),
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id};K8S_POD_INFRA_CONTAINER_ID=${id}`,
  });
  const portmap = (tag: string, withPrev: boolean) => JSON.stringify({
    cniVersion: '1.0.0', name: 'bench-noop', type: 'portmap', capabilities: { portMappings: true }, dataDir: join(dir, `noop-${tag}`),
    ...(withPrev ? { prevResult } : {}),
  });
  const bridge = (tag: string) => JSON.stringify({
    cniVersion: '1.0.0', name: 'bench-noop', type: 'bridge', bridge: `nbr-${tag}`, isGateway: true, ipMasq: true, dataDir: join(dir, `noop-${tag}`),
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.254.0.0/24' }]], dataDir: join(dir, `noop-${tag}`, 'ipam') },
  });
  return [
    { what: 'VERSION', plugin: 'loopback', env: () => ({ CNI_COMMAND: 'VERSION' }), stdin: () => '{"cniVersion":"1.0.0"}' },
    { what: 'loopback ADD (containerd\'s cni-loopback, 0.3.1)', plugin: 'loopback', netns: 'fresh', env: (ns) => base('ADD', ns, 'noop', 'lo'), stdin: () => lo },
    { what: 'loopback DEL', plugin: 'loopback', netns: 'after-add', env: (ns) => base('DEL', ns, 'noop', 'lo'), stdin: () => lo },
    { what: 'loopback DEL, no netns (second round)', plugin: 'loopback', env: () => base('DEL', '', 'noop', 'lo'), stdin: () => lo },
    { what: 'portmap ADD, no mappings', plugin: 'portmap', netns: 'fresh', env: (ns) => base('ADD', ns, 'noop'), stdin: (t) => portmap(t, true) },
    { what: 'portmap DEL, no mappings', plugin: 'portmap', netns: 'fresh', env: (ns) => base('DEL', ns, 'noop'), stdin: (t) => portmap(t, true) },
    { what: 'portmap DEL, no netns, no prevResult (nothing to undo)', plugin: 'portmap', env: () => base('DEL', '', 'noop'), stdin: (t) => portmap(t, false) },
    { what: 'bridge DEL, no netns, no prevResult (nothing to undo)', plugin: 'bridge', env: () => base('DEL', '', 'noop-gone'), stdin: (t) => bridge(t) },
  ];
}

/**
 * CPU time (user + system, µs) of each exec, per contender: on a machine
 * other work loads, wall time mostly measures the scheduler, CPU time much
 * less so. The bench runs under Bun, whose spawnSync reports it.
 */
const cpu = new Map<string, number[]>();

function exec(name: string, binary: string, env: Record<string, string>, stdin: string): void {
  const r = Bun.spawnSync([binary], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdin: Buffer.from(stdin), stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${binary} ${env.CNI_COMMAND ?? ''}: exit ${r.exitCode}: ${r.stdout.toString()}${r.stderr.toString()}`);
  const xs = cpu.get(name) ?? [];
  xs.push(Number(r.resourceUsage.cpuTime.total) / 1000);
  cpu.set(name, xs);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? NaN;
}

function contender(lab: BenchLab, name: string, dir: string, n: Noop, tag: string): Contender {
  let netns = '';
  const bin = join(dir, n.plugin);
  const vars = () => (n.env(netns, tag).CNI_COMMAND === 'VERSION' ? n.env(netns, tag) : { ...n.env(netns, tag), CNI_PATH: dir });
  return {
    name,
    setup: () => {
      if (!n.netns) return;
      netns = lab.container();
      if (n.netns === 'after-add') exec(`${name} (setup)`, bin, { ...vars(), CNI_COMMAND: 'ADD' }, n.stdin(tag));
    },
    run: () => exec(name, bin, vars(), n.stdin(tag)),
    teardown: () => {
      if (netns) lab.remove(netns);
      netns = '';
    },
  };
}

const f = (x: number) => x.toFixed(2);

export function noopSuites(env: NoopBenchEnv): Record<string, Suite> {
  return {
    noop: (lab) => {
      const floor = env.floor();
      const list = noops(env.dir);
      const rounds = Number(process.env.BENCH_NOOP_ROUNDS ?? env.rounds * 3);
      const contenders: Contender[] = [{ name: FLOOR, run: () => exec(FLOOR, floor, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}') }];
      for (const n of list) {
        contenders.push(contender(lab, `cnikit ${n.what}`, env.ours, n, 'k'));
        if (existsSync(join(env.ref, n.plugin))) contenders.push(contender(lab, `reference ${n.what}`, env.ref, n, 'r'));
      }
      const stats = new Map<string, Stats>(measure(contenders, rounds).map((s) => [s.name, s]));
      const fl = stats.get(FLOOR)!;
      // measure() runs 2 warm-up rounds first: their CPU samples are dropped too.
      const cpuOf = (name: string) => median((cpu.get(name) ?? []).slice(2));
      const flCpu = cpuOf(FLOOR);
      const rows = list.map((n) => {
        const k = stats.get(`cnikit ${n.what}`)!;
        const r = stats.get(`reference ${n.what}`);
        const ratio = k.median / fl.median;
        const cpuRatio = cpuOf(`cnikit ${n.what}`) / flCpu;
        const refCpu = r ? cpuOf(`reference ${n.what}`) : NaN;
        return `| ${n.what} | ${f(k.median)} | **${f(ratio)}x**${ratio > LIMIT ? ' (over)' : ''} | ${f(cpuOf(`cnikit ${n.what}`))} | **${f(cpuRatio)}x**${cpuRatio > LIMIT ? ' (over)' : ''} | ${r ? f(r.median) : '—'} | ${r ? f(refCpu) : '—'} |`;
      });
      return [
        `### no-op execs against the floor (≤ ${LIMIT}x wanted)`,
        '',
        `Floor: wall median ${f(fl.median)} ms, CPU median ${f(flCpu)} ms (user + system), ${fl.n} rounds; all rows interleaved in the same rounds. ` +
          'On a loaded machine the CPU-time ratio is the steadier reading.',
        '',
        '| exec | cnikit wall ms | wall / floor | cnikit CPU ms | CPU / floor | reference wall ms | reference CPU ms |',
        '|---|---|---|---|---|---|---|',
        ...rows,
        '',
      ].join('\n');
    },
  };
}
