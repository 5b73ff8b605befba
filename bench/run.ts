// `npm run bench [-- suite...]`: cnikit against the reference plugins
// (Debian containernetworking-plugins, /usr/lib/cni), side by side.
import { existsSync, mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchLab, execPlugin, machine, measure, table } from './harness.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OURS = join(root, 'dist/bin');
const REF = '/usr/lib/cni';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);

for (const p of [join(OURS, 'none'), join(REF, 'loopback')]) {
  if (!existsSync(p)) throw new Error(`${p} is missing (npm run build; apt-get install containernetworking-plugins)`);
}

type Suite = (lab: BenchLab) => string;

/**
 * The floor of the process model: an empty program compiled the way
 * dist/cnikit is. What a cnikit exec costs above it is cnikit's own work.
 */
function buildFloor(): string {
  const dir = join(root, 'bench/out');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'floor.ts'), 'process.exit(0);\n');
  const out = join(dir, 'floor');
  const r = spawnSync(process.execPath, ['build', '--compile', '--minify', '--bytecode', '--format=esm', join(dir, 'floor.ts'), '--outfile', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the floor program failed: ${r.stderr}`);
  return out;
}

const loConf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench-lo', type: 'loopback' });

const benchDir = mkdtempSync(join(tmpdir(), 'cnikit-bench-'));

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
 * The whole chain, one exec per plugin as a runtime runs it: ADD bridge,
 * portmap, loopback; DEL in reverse with the cached result as prevResult.
 * Containers set up and left in place by `keep` make the host "busy".
 */
class Chain {
  private n = 0;
  private readonly confs;
  constructor(private readonly lab: BenchLab, readonly spec: ChainSpec) {
    this.confs = chainConfs(spec);
  }

  add(): { netns: string; id: string; prev: unknown; port: number } {
    const netns = this.lab.container();
    const id = `bench-${this.spec.tag}-${this.n++}`;
    const port = 10000 + (this.n % 50000);
    const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: this.spec.dir });
    const prev = JSON.parse(execPlugin(join(this.spec.dir, 'bridge'), env('ADD', 'eth0'), this.confs.bridge).stdout) as unknown;
    execPlugin(join(this.spec.dir, 'portmap'), env('ADD', 'eth0'), this.confs.portmap(prev, port));
    execPlugin(join(this.spec.dir, 'loopback'), env('ADD', 'lo'), loConf);
    return { netns, id, prev, port };
  }

  del(c: { netns: string; id: string; prev: unknown; port: number }): void {
    const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns, CNI_IFNAME: ifname, CNI_PATH: this.spec.dir });
    execPlugin(join(this.spec.dir, 'loopback'), env('DEL', 'lo'), loConf);
    execPlugin(join(this.spec.dir, 'portmap'), env('DEL', 'eth0'), this.confs.portmap(c.prev, c.port));
    execPlugin(join(this.spec.dir, 'bridge'), env('DEL', 'eth0'), this.confs.bridge);
    this.lab.remove(c.netns);
  }

  contender(cmd: 'ADD' | 'DEL') {
    let c: ReturnType<Chain['add']> | undefined;
    return {
      name: this.spec.name,
      setup: () => {
        if (cmd === 'DEL') c = this.add();
      },
      run: () => {
        if (cmd === 'ADD') c = this.add();
        else this.del(c!);
      },
      teardown: () => {
        if (cmd === 'ADD') this.del(c!);
      },
    };
  }
}

const CHAINS: Omit<ChainSpec, 'dir'>[] = [
  { name: 'cnikit (nftables, its default)', tag: 'ckn', subnet: '10.200.0.0/16' },
  { name: 'cnikit (iptables)', tag: 'cki', subnet: '10.201.0.0/16', backend: 'iptables' },
  { name: 'reference (iptables, its default)', tag: 'ref', subnet: '10.202.0.0/16' },
];
const REF_CHAIN = 'reference (iptables, its default)';

function chains(lab: BenchLab): Chain[] {
  return CHAINS.map((c) => new Chain(lab, { ...c, dir: c.tag === 'ref' ? REF : OURS }));
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
    return `( ${command === 'ADD' ? add : del} ) || echo FAILED ${i} >&2 &`;
  }).join('\n') + '\nwait';
  const runBatch = (command: 'ADD' | 'DEL') => {
    const r = spawnSync('bash', ['-c', script(command)], { encoding: 'utf8' });
    if (r.stderr.includes('FAILED')) throw new Error(`${spec.name}: parallel ${command} failed: ${r.stderr.slice(0, 300)}`);
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

const suites: Record<string, Suite> = {
  parallel: (lab) => {
    const specs = CHAINS.map((c) => ({ ...c, dir: c.tag === 'ref' ? REF : OURS }));
    const rounds = Math.max(3, Math.floor(ROUNDS / 5));
    const ref = 'reference (iptables, its default)';
    return [
      table('20 chains ADDed at once (wall time of the batch)', measure(specs.map((s) => parallelContender(lab, s, 'ADD')), rounds, 1), ref),
      table('20 chains DELeted at once (wall time of the batch)', measure(specs.map((s) => parallelContender(lab, s, 'DEL')), rounds, 1), ref),
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
    const cs = chains(lab);
    return [
      table('full chain ADD: bridge (+ host-local, ipMasq), portmap (1 port), loopback', measure(cs.map((c) => c.contender('ADD')), ROUNDS), REF_CHAIN),
      table('full chain DEL: loopback, portmap, bridge (+ host-local)', measure(cs.map((c) => c.contender('DEL')), ROUNDS), REF_CHAIN),
    ].join('\n');
  },
  scale: (lab) => {
    // ADD/DEL of one more container with N already on the host, per contender.
    const cs = chains(lab);
    const out: string[] = [];
    const kept: { chain: Chain; c: ReturnType<Chain['add']> }[] = [];
    let have = 0;
    for (const n of (process.env.BENCH_SCALE ?? '10,100').split(',').map(Number)) {
      for (; have < n; have++) for (const chain of cs) kept.push({ chain, c: chain.add() });
      const rounds = Math.max(5, Math.floor(ROUNDS / 4));
      out.push(table(`chain ADD with ${n} containers on the host`, measure(cs.map((c) => c.contender('ADD')), rounds, 1), REF_CHAIN));
      out.push(table(`chain DEL with ${n} containers on the host`, measure(cs.map((c) => c.contender('DEL')), rounds, 1), REF_CHAIN));
    }
    for (const k of kept.reverse()) k.chain.del(k.c);
    return out.join('\n');
  },
};

const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(suites);
const lab = new BenchLab();
try {
  const out = lab.inHost(() => wanted.map((name) => {
    const suite = suites[name];
    if (!suite) throw new Error(`unknown suite ${name}; known: ${Object.keys(suites).join(', ')}`);
    return suite(lab);
  }));
  const report = `## cnikit vs reference plugins\n\nMachine: ${machine()}. ${ROUNDS} rounds, interleaved; run on ${new Date().toISOString().slice(0, 10)}.\n\n${out.join('\n')}\n`;
  process.stdout.write(report);
  // The full run is the report of record.
  if (process.argv.slice(2).length === 0) writeFileSync(join(root, 'bench/RESULTS.md'), `# Benchmark results\n\nWritten by \`npm run bench\` (all suites).\n\n${report}`);
} finally {
  lab.close();
  rmSync(benchDir, { recursive: true, force: true });
}
