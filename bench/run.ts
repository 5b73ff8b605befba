// `npm run bench [-- suite...]`: cnikit against the reference plugins
// (Debian containernetworking-plugins, /usr/lib/cni), side by side.
import { existsSync } from 'node:fs';
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

const loConf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench-lo', type: 'loopback' });

const suites: Record<string, Suite> = {
  version: () => {
    const run = (bin: string) => () => void execPlugin(bin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    const stats = measure(
      [
        { name: 'cnikit none', run: run(join(OURS, 'none')) },
        { name: 'reference loopback', run: run(join(REF, 'loopback')) },
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
}
