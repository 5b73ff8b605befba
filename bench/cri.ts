// `npm run bench -- cri`: a Kubernetes node's pod lifecycle through
// containerd 1.6's CRI plugin, with cnikit's plugins and with the reference
// plugins side by side: one containerd node per contender, each in a lab
// namespace of its own with the same kubenet-style conflist (bridge +
// host-local + portmap), driven over CRI v1 gRPC as kubelet does. Timed:
// RunPodSandbox (netns, pause container, the CNI ADD round with loopback)
// and StopPodSandbox + RemovePodSandbox (two CNI DEL rounds), per pod,
// with and without a hostPort; the contenders take turns pod by pod.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { type BenchLab, summarize, table, type Stats } from './harness.ts';
import { ContainerdNode } from '../test/cri/node.ts';
import { buildImage } from '../test/cri/image.ts';
import { podConflist } from '../test/cri/pods.ts';
import { sweepNodesWhere } from '../test/cri/sweep.ts';

const PODS = Number(process.env.BENCH_CRI_PODS ?? 10);
const REF_NAME = 'reference plugins';

interface Side {
  name: string;
  node: ContainerdNode;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** One warm-up pod, then PODS pods run one after another, then all stopped and removed; per contender, in turns. */
async function lifecycle(sides: Side[], hostPort: boolean): Promise<{ run: Stats[]; remove: Stats[] }> {
  const run = sides.map(() => [] as number[]);
  const remove = sides.map(() => [] as number[]);
  const ids = sides.map(() => [] as string[]);
  for (let i = 0; i <= PODS; i++) {
    for (const [k, s] of sides.entries()) {
      const config = s.node.podConfig(`bench-${hostPort ? 'hp' : 'np'}-${i}`, hostPort ? { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 8200 + i }] } : {});
      let id = '';
      const ms = await timed(async () => {
        id = await s.node.cri.runPodSandbox(config);
      });
      ids[k]!.push(id);
      if (i > 0) run[k]!.push(ms);
    }
  }
  for (let i = 0; i <= PODS; i++) {
    for (const [k, s] of sides.entries()) {
      const id = ids[k]![i]!;
      const ms = await timed(async () => {
        await s.node.cri.stopPodSandbox(id);
        await s.node.cri.removePodSandbox(id);
      });
      if (i > 0) remove[k]!.push(ms);
    }
  }
  return { run: sides.map((s, k) => summarize(s.name, run[k]!)), remove: sides.map((s, k) => summarize(s.name, remove[k]!)) };
}

/** Bench runs that were killed leave their nodes running: their names carry the dead run's pid (base 36). */
async function sweepKilledRuns(): Promise<void> {
  const gone = (pid36: string) => {
    const pid = Number.parseInt(pid36, 36);
    return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !existsSync(`/proc/${pid}`);
  };
  await sweepNodesWhere(
    (cmd) => {
      const m = /\/cnikit-bench-([0-9a-z]+)\//.exec(cmd);
      return m?.[1] !== undefined && gone(m[1]);
    },
    (cgroup) => {
      const m = /^ckb([0-9a-z]+)-cri-/.exec(cgroup);
      return m?.[1] !== undefined && gone(m[1]);
    },
  );
}

export async function criSuite(lab: BenchLab, dir: string, bins: { ours: string; ref: string }): Promise<string> {
  await sweepKilledRuns();
  mkdirSync(dir, { recursive: true });
  const image = buildImage(join(dir, 'image'));
  const sides: Side[] = [];
  try {
    for (const [tag, name, binDir] of [['ck', 'cnikit', bins.ours], ['ref', REF_NAME, bins.ref]] as const) {
      const netns = lab.container();
      spawnSync('ip', ['-n', netns.replace('/run/netns/', ''), 'link', 'set', 'lo', 'up']);
      const nodeDir = join(dir, tag);
      mkdirSync(nodeDir);
      const node = await ContainerdNode.start({ name: `${lab.prefix}-cri-${tag}`, netns, dir: nodeDir, binDir, conflist: podConflist('10.244.1.0/24') });
      sides.push({ name, node });
      node.importImage(image);
    }
    const without = await lifecycle(sides, false);
    const withPort = await lifecycle(sides, true);
    return [
      table(`containerd RunPodSandbox, no hostPort (${PODS} pods, one after another)`, without.run, REF_NAME),
      table(`containerd StopPodSandbox + RemovePodSandbox, no hostPort (${PODS} pods)`, without.remove, REF_NAME),
      table(`containerd RunPodSandbox, one hostPort (${PODS} pods)`, withPort.run, REF_NAME),
      table(`containerd StopPodSandbox + RemovePodSandbox, one hostPort (${PODS} pods)`, withPort.remove, REF_NAME),
      'The pod lifecycle as kubelet drives it: containerd 1.6 (Debian) with its CRI plugin, one node per contender with the same conflist (bridge with ipMasq and hairpin, host-local, portmap), overlayfs, a busybox pause image. RunPodSandbox includes the netns, the pause container and the CNI ADD round (loopback, bridge + host-local, portmap); Stop + Remove includes two CNI DEL rounds (with the netns and cached result, then without).\n',
    ].join('\n');
  } finally {
    for (const s of sides) await s.node.destroy();
  }
}
