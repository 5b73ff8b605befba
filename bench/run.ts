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

/** A bridge + host-local network as a runtime's conflist has it, for one contender. */
function bridgeConf(tag: string, subnet: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: `bench-${tag}`,
    type: 'bridge',
    bridge: `bbr-${tag}`,
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: 'iptables',
    dataDir: join(benchDir, tag, 'state'),
    ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(benchDir, tag, 'ipam') },
  });
}

/** Bridge then loopback ADD (or DEL in reverse), each a separate exec, as a runtime runs the chain. */
function chainContender(lab: BenchLab, name: string, dir: string, tag: string, subnet: string, cmd: 'ADD' | 'DEL') {
  let netns = '';
  let n = 0;
  const conf = bridgeConf(tag, subnet);
  const env = (command: string, ifname: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: `bench-${tag}-${n}`, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: dir });
  const add = () => {
    execPlugin(join(dir, 'bridge'), env('ADD', 'eth0'), conf);
    execPlugin(join(dir, 'loopback'), env('ADD', 'lo'), loConf);
  };
  const del = () => {
    execPlugin(join(dir, 'loopback'), env('DEL', 'lo'), loConf);
    execPlugin(join(dir, 'bridge'), env('DEL', 'eth0'), conf);
  };
  return {
    name,
    setup: () => {
      n++;
      netns = lab.container();
      if (cmd === 'DEL') add();
    },
    run: cmd === 'ADD' ? add : del,
    teardown: () => {
      if (cmd === 'ADD') del();
      lab.remove(netns);
    },
  };
}

const suites: Record<string, Suite> = {
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
  bridge: (lab) => {
    const pair = (cmd: 'ADD' | 'DEL') => [
      chainContender(lab, 'cnikit bridge+host-local, loopback', OURS, 'ck', '10.200.0.0/16', cmd),
      chainContender(lab, 'reference bridge+host-local, loopback', REF, 'ref', '10.201.0.0/16', cmd),
    ];
    const ref = 'reference bridge+host-local, loopback';
    return [
      table('chain ADD: bridge (ipMasq, iptables) + host-local, then loopback', measure(pair('ADD'), ROUNDS), ref),
      table('chain DEL: loopback, then bridge + host-local', measure(pair('DEL'), ROUNDS), ref),
    ].join('\n');
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
  process.stdout.write(`## cnikit vs reference plugins\n\nMachine: ${machine()}. ${ROUNDS} rounds, interleaved.\n\n${out.join('\n')}\n`);
} finally {
  lab.close();
  rmSync(benchDir, { recursive: true, force: true });
}
