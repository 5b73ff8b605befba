// containerd 1.6 (its built-in CRI plugin) as a Kubernetes node's runtime,
// driven through the CRI v1 gRPC API the way kubelet drives it, with a
// kubenet-style conflist (bridge + host-local with the node's pod CIDR +
// portmap with the portMappings capability). Run against cnikit's dist/bin
// and against Debian's reference plugins: the same checks hold for both,
// except where a reference fault is named.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { BIN, REFERENCE_BIN } from './dist.ts';
import { addOutside, startPeerServer, UPLINK } from './net.ts';
import { ContainerdNode } from './cri/node.ts';
import { buildImage, PAGE } from './cri/image.ts';
import { CriError } from './cri/client.ts';
import { runPod, removePod, httpGet, httpGetRetry, podGet, podAsk, leftovers, anythingLeft, podConflist, type Pod } from './cri/pods.ts';

const contenders = [
  { name: 'cnikit', binDir: BIN, reference: false },
  { name: 'reference plugins', binDir: REFERENCE_BIN, reference: true },
] as const;

const NODE1_CIDR = '10.244.1.0/24';
const NODE2_CIDR = '10.244.2.0/24';
const CLUSTER_CIDR = '10.244.0.0/16';
const HOSTPORT = 8080;
// Per case, generous for a loaded CI machine: a pod's Run + Stop + Remove
// takes about 3 s on an idle 2-core one, ten times that under heavy load.

describe.each(contenders)('a containerd node on $name', ({ binDir, reference }) => {
  let lab: Lab;
  let outside: string;
  let node: ContainerdNode | undefined;
  const servers: ChildProcess[] = [];
  const uplinks = ['uplink0'];

  beforeAll(async () => {
    lab = Lab.create();
    outside = addOutside(lab);
    await startPeerServer(outside, 'tcp', UPLINK.outside4, 9000, servers);
    const image = buildImage(join(lab.dir, 'image'));
    mkdirSync(join(lab.dir, 'node'));
    node = await ContainerdNode.start({ name: `${lab.host}-node`, netns: lab.hostPath, dir: join(lab.dir, 'node'), binDir, conflist: podConflist(NODE1_CIDR) });
    node.importImage(image);
  }, 90_000);

  afterAll(async () => {
    // CRI_DEBUG=1: containerd's errors, for a failure in CI.
    if (process.env.CRI_DEBUG && lab) console.log(readFileSync(join(lab.dir, 'node/containerd.log'), 'utf8').split('\n').filter((l) => l.includes('level=error')).slice(-30).join('\n'));
    await node?.destroy();
    for (const s of servers) s.kill('SIGKILL');
    lab?.destroy();
  }, 90_000);

  // Hygiene between cases (kubelet would garbage-collect too); each case checks its own leftovers first.
  afterEach(async () => {
    for (const p of (await node?.cri.listPodSandbox().catch(() => [])) ?? []) {
      await node!.cri.stopPodSandbox(p.id).catch(() => undefined);
      await node!.cri.removePodSandbox(p.id).catch(() => undefined);
    }
  });

  it('a pod with a hostPort: served from outside, from the node and by hairpin, reaches other pods and the outside (masqueraded); a second pod is unaffected by its removal; nothing is left', async () => {
    const n = node!;
    const a = await runPod(n, 'web-a', HOSTPORT);
    const b = await runPod(n, 'web-b');
    expect(a.ip).toMatch(/^10\.244\.1\.\d+$/);
    expect(b.ip).toMatch(/^10\.244\.1\.\d+$/);
    expect(b.ip).not.toBe(a.ip);

    // The hostPort from another host, from the node itself, and from the pod itself (hairpin).
    expect(await httpGetRetry(outside, UPLINK.host4, HOSTPORT)).toBe(UPLINK.outside4);
    expect(httpGet(outside, UPLINK.host4, HOSTPORT, '/')).toBe(PAGE.trim());
    expect(httpGet(lab.hostPath, UPLINK.host4, HOSTPORT)).toBeDefined();
    expect(await podGet(n, a, UPLINK.host4, HOSTPORT)).toMatch(/^10\.244\.1\.\d+$/);
    // Pod to pod on the node, without NAT.
    expect(await podGet(n, b, a.ip, 80)).toBe(b.ip);
    expect(await podGet(n, a, b.ip, 80)).toBe(a.ip);
    // Out to another host: masqueraded to the node's address.
    expect(await podAsk(n, a, UPLINK.outside4, 9000)).toBe(UPLINK.host4);
    // The probe for leftovers sees a running pod's traces where the node keeps them.
    const traces = (await leftovers(n, [a], uplinks, 0)).map((t) => t.split(' ')[0]);
    for (const t of ['veths', 'netns', 'lease', 'result', 'firewall', ...(reference ? [] : ['record'])]) expect(traces).toContain(t);

    await removePod(n, a);
    // Right after: the remaining pod still serves and reaches out.
    expect(await podAsk(n, b, UPLINK.outside4, 9000)).toBe(UPLINK.host4);
    expect(httpGet(lab.hostPath, b.ip, 80)).toBe('10.244.1.1');
    expect(httpGet(outside, UPLINK.host4, HOSTPORT, '/', 2)).toBeUndefined();
    expect(await leftovers(n, [a], uplinks, 1)).toEqual([]);

    await removePod(n, b);
    expect(await leftovers(n, [a, b], uplinks)).toEqual([]);
    expect(await anythingLeft(n, uplinks, '10.244.1.')).toEqual([]);
  }, 120_000);

  it('a pod whose hostPort another pod holds: ADD fails, containerd cleans up, nothing is stuck or left', async () => {
    const n = node!;
    const holder = await runPod(n, 'holder', HOSTPORT);
    expect(await httpGetRetry(outside, UPLINK.host4, HOSTPORT)).toBe(UPLINK.outside4);
    const config = n.podConfig('clash', { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: HOSTPORT }] });
    if (reference) {
      // Reference fault: portmap does not check whether a host port is taken; the second pod's DNAT rule is added too.
      const id = await n.cri.runPodSandbox(config);
      await n.cri.stopPodSandbox(id);
      await n.cri.removePodSandbox(id);
    } else {
      const err = await n.cri.runPodSandbox(config).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CriError);
      expect((err as CriError).details).toContain(String(HOSTPORT));
    }
    const sandboxes = await n.cri.listPodSandbox();
    expect(sandboxes.map((s) => s.metadata?.name)).toEqual(['holder']);
    // The holder keeps its port.
    expect(await httpGetRetry(outside, UPLINK.host4, HOSTPORT)).toBe(UPLINK.outside4);
    await removePod(n, holder);
    expect(await leftovers(n, [holder], uplinks)).toEqual([]);
    expect(await anythingLeft(n, uplinks, '10.244.1.')).toEqual([]);
  }, 120_000);

  it('10 pods with hostPorts run and are removed with nothing left; no sandbox is left that Stop/Remove cannot remove', async () => {
    const n = node!;
    const pods: Pod[] = [];
    // Serving from the first and the last is enough to see their ports; the others are sandboxes only, as kubelet makes them first.
    for (let i = 0; i < 10; i++) pods.push(await runPod(n, `many-${i}`, 8100 + i, i === 0 || i === 9));
    expect(new Set(pods.map((p) => p.ip)).size).toBe(10);
    expect(await httpGetRetry(outside, UPLINK.host4, 8100)).toBe(UPLINK.outside4);
    expect(await httpGetRetry(outside, UPLINK.host4, 8109)).toBe(UPLINK.outside4);
    for (const p of pods) await removePod(n, p);
    expect(await n.cri.listPodSandbox()).toEqual([]);
    expect(await leftovers(n, pods, uplinks)).toEqual([]);
    expect(await anythingLeft(n, uplinks, '10.244.1.')).toEqual([]);
  }, 240_000);
});

// Kubenet-style routing: each node owns a pod CIDR and the network (here a
// link between the nodes, in a cloud a route table) routes each CIDR to its
// node. Pod to pod across nodes goes without NAT, pod to the outside is
// masqueraded. cnikit's bridge exempts the cluster CIDR from its masquerade
// (nonMasqueradeCIDRs; without it the server sees node 1's address); the
// reference bridge has no such option, so its operators turn ipMasq off and
// masquerade at the node (what kubenet and ip-masq-agent do), and so does
// this test for it.
describe.each(contenders)('two routed containerd nodes on $name', ({ binDir, reference }) => {
  let lab: Lab;
  let outside: string;
  const nodes: ContainerdNode[] = [];
  const servers: ChildProcess[] = [];
  const links = ['uplink0', 'cluster0'];

  beforeAll(async () => {
    lab = Lab.create();
    outside = addOutside(lab);
    await startPeerServer(outside, 'tcp', UPLINK.outside4, 9000, servers);
    const node2ns = `/run/netns/${lab.addNetns('node')}`;
    lab.ip(['link', 'set', 'lo', 'up'], node2ns);
    lab.ip(['link', 'add', 'cluster0', 'type', 'veth', 'peer', 'name', 'cluster0', 'netns', node2ns.replace('/run/netns/', '')]);
    lab.ip(['addr', 'add', '192.168.77.1/24', 'dev', 'cluster0']);
    lab.ip(['link', 'set', 'cluster0', 'up']);
    lab.ip(['addr', 'add', '192.168.77.2/24', 'dev', 'cluster0'], node2ns);
    lab.ip(['link', 'set', 'cluster0', 'up'], node2ns);
    lab.ip(['route', 'add', NODE2_CIDR, 'via', '192.168.77.2']);
    lab.ip(['route', 'add', NODE1_CIDR, 'via', '192.168.77.1'], node2ns);
    const image = buildImage(join(lab.dir, 'image'));
    const specs = [{ netns: lab.hostPath, cidr: NODE1_CIDR }, { netns: node2ns, cidr: NODE2_CIDR }];
    for (const [i, spec] of specs.entries()) {
      const masq = reference ? { ipMasq: false } : { nonMasqueradeCIDRs: [CLUSTER_CIDR] };
      if (reference) {
        const r = lab.exec('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', spec.cidr, '!', '-d', CLUSTER_CIDR, '-j', 'MASQUERADE'], { netns: spec.netns });
        expect(r.stderr).toBe('');
      }
      const dir = join(lab.dir, `node${i + 1}`);
      mkdirSync(dir);
      const node = await ContainerdNode.start({ name: `${lab.host}-node${i + 1}`, netns: spec.netns, dir, binDir, conflist: podConflist(spec.cidr, masq) });
      nodes.push(node);
      node.importImage(image);
    }
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes) await n.destroy();
    for (const s of servers) s.kill('SIGKILL');
    lab?.destroy();
  }, 90_000);

  it('a pod on node 1 reaches a pod on node 2 by its pod IP without NAT, and back; the outside still sees the node\'s address; nothing is left', async () => {
    const [n1, n2] = nodes as [ContainerdNode, ContainerdNode];
    const p1 = await runPod(n1, 'left');
    const p2 = await runPod(n2, 'right');
    expect(p1.ip).toMatch(/^10\.244\.1\.\d+$/);
    expect(p2.ip).toMatch(/^10\.244\.2\.\d+$/);
    // The server sees the client pod's own address.
    expect(await podGet(n1, p1, p2.ip, 80)).toBe(p1.ip);
    expect(await podGet(n2, p2, p1.ip, 80)).toBe(p2.ip);
    expect(await podAsk(n1, p1, UPLINK.outside4, 9000)).toBe(UPLINK.host4);
    await removePod(n1, p1);
    await removePod(n2, p2);
    expect(await anythingLeft(n1, links, '10.244.1.')).toEqual([]);
    expect(await anythingLeft(n2, links, '10.244.2.')).toEqual([]);
  }, 120_000);
});
