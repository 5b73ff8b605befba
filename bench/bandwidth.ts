// `npm run bench -- bandwidth`: the bandwidth plugin's own ADD and DEL
// execs (ingress and egress shaped: tbf, ifb, ingress qdisc, redirect
// filter), cnikit's against the reference's, each after its own bridge.
import { join } from 'node:path';
import { execPlugin, measure, table, type BenchLab, type Contender } from './harness.ts';

export interface BandwidthBench {
  ours: string;
  ref: string;
  rounds: number;
  benchDir: string;
}

const LIMITS = { ingressRate: 10_000_000, ingressBurst: 80_000, egressRate: 10_000_000, egressBurst: 80_000 };

function contender(lab: BenchLab, o: BandwidthBench, name: string, dir: string, tag: string, subnet: string, cmd: 'ADD' | 'DEL'): Contender {
  // 1.0.0: the newest version Debian's reference speaks.
  const net = `bench-bw-${tag}`;
  const dataDir = join(o.benchDir, `bw-${tag}`, 'state');
  const bridge = JSON.stringify({
    cniVersion: '1.0.0', name: net, type: 'bridge', bridge: `bbw-${tag}`, isGateway: true, dataDir,
    ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(o.benchDir, `bw-${tag}`, 'ipam') },
  });
  const bw = (prevResult: unknown) => JSON.stringify({ cniVersion: '1.0.0', name: net, type: 'bandwidth', dataDir, ...LIMITS, prevResult });
  let netns = '';
  let prev: unknown;
  let n = 0;
  const env = (command: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: `bw-${tag}-${n}`, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: dir });
  return {
    name,
    setup: () => {
      n++;
      netns = lab.container();
      prev = JSON.parse(execPlugin(join(dir, 'bridge'), env('ADD'), bridge).stdout);
      if (cmd === 'DEL') execPlugin(join(dir, 'bandwidth'), env('ADD'), bw(prev));
    },
    run: () => void execPlugin(join(dir, 'bandwidth'), env(cmd), bw(prev)),
    teardown: () => {
      if (cmd === 'ADD') execPlugin(join(dir, 'bandwidth'), env('DEL'), bw(prev));
      execPlugin(join(dir, 'bridge'), env('DEL'), bridge);
      lab.remove(netns);
    },
  };
}

export function bandwidthSuite(lab: BenchLab, o: BandwidthBench): string {
  const ref = 'reference bandwidth';
  const cs = (cmd: 'ADD' | 'DEL') => [
    contender(lab, o, 'cnikit bandwidth', o.ours, 'ck', '10.213.0.0/24', cmd),
    contender(lab, o, ref, o.ref, 'ref', '10.213.1.0/24', cmd),
  ];
  return [
    table('bandwidth ADD (10 Mbit/s each way: tbf, ifb, ingress qdisc, redirect filter), after bridge', measure(cs('ADD'), o.rounds), ref),
    table('bandwidth DEL (prevResult and netns given)', measure(cs('DEL'), o.rounds), ref),
  ].join('\n');
}
