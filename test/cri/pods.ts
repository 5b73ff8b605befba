// What the CRI test does to a node, as kubelet would: pods with an HTTP
// server and an optional hostPort, requests into and out of them, and the
// list of whatever a removed pod left behind on the node.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { ContainerdNode } from './node.ts';
import { IMAGE } from './image.ts';
import type { PodSandboxConfig } from './client.ts';

export interface Pod {
  name: string;
  id: string;
  ip: string;
  /** The httpd container ('' if none was started). */
  app: string;
  config: PodSandboxConfig;
}

/** The cluster's pod network, as kubenet-style nodes write it (one pod CIDR per node). */
export function podConflist(podCidr: string, bridgeExtra: object = {}): object {
  return {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cbr0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
        ...bridgeExtra,
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

export const NETWORK = 'k8s-pod-network';

/** RunPodSandbox (with a hostPort to port 80 if given), then, unless app is false, a busybox httpd container on port 80. */
export async function runPod(node: ContainerdNode, name: string, hostPort?: number, app = true): Promise<Pod> {
  const config = node.podConfig(name, hostPort ? { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort }] } : {});
  const id = await node.cri.runPodSandbox(config);
  const { status } = await node.cri.podSandboxStatus(id);
  const ip = status.network?.ip ?? '';
  let appId = '';
  if (app) {
    appId = await node.cri.createContainer(id, { metadata: { name: 'httpd' }, image: { image: IMAGE }, command: ['/bin/busybox', 'httpd', '-f', '-p', '0.0.0.0:80', '-h', '/www'] }, config);
    await node.cri.startContainer(appId);
  }
  return { name, id, ip, app: appId, config };
}

export async function removePod(node: ContainerdNode, pod: Pod): Promise<void> {
  await node.cri.stopPodSandbox(pod.id);
  await node.cri.removePodSandbox(pod.id);
}

/**
 * HTTP GET from a namespace (path) with bash's /dev/tcp; the body, or
 * undefined when nothing answered. /cgi-bin/ip answers the address the
 * server saw.
 */
export function httpGet(netns: string, host: string, port: number, path = '/cgi-bin/ip', timeoutS = 3): string | undefined {
  const r = spawnSync('nsenter', [`--net=${netns}`, '--', 'timeout', String(timeoutS), 'bash', '-c',
    `exec 3<>/dev/tcp/${host}/${port} && printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const body = r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  return body.trim();
}

/** The server's view of the client, retried for a moment (the server may still be starting). */
export async function httpGetRetry(netns: string, host: string, port: number, path = '/cgi-bin/ip', tries = 20): Promise<string | undefined> {
  for (let i = 0; i < tries; i++) {
    const r = httpGet(netns, host, port, path, 2);
    if (r !== undefined) return r;
    await new Promise((res) => setTimeout(res, 150));
  }
  return undefined;
}

/**
 * HTTP GET from inside a pod's container: the body, or undefined. busybox
 * nc under the container's sh (busybox wget with -T crashes in this build).
 */
export async function podGet(node: ContainerdNode, pod: Pod, host: string, port: number, path = '/cgi-bin/ip'): Promise<string | undefined> {
  const r = await node.cri.execSync(pod.app, ['/bin/sh', '-c', `printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 ${host} ${port}`], 10);
  if (r.exitCode !== 0 || !r.stdout.includes('\r\n\r\n')) return undefined;
  return r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n').trim();
}

/** A TCP exchange from inside a pod (busybox nc): what the peer answered. */
export async function podAsk(node: ContainerdNode, pod: Pod, host: string, port: number): Promise<string | undefined> {
  const r = await node.cri.execSync(pod.app, ['/bin/busybox', 'nc', '-w', '3', host, String(port)], 10);
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

function list(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (statSync(p).size > 0 || !e.name.endsWith('.lock')) out.push(p);
  }
  return out;
}

/**
 * What removed pods left on the node, as a list of findings (empty: nothing):
 * veths on the node, pod netns, leases, the CNI result cache, plugin records,
 * and firewall rules or map elements naming the pods' addresses or IDs.
 * `nodeLinks`: veths the lab made itself (uplinks); `running`: pods still up.
 */
export async function leftovers(node: ContainerdNode, pods: Pod[], nodeLinks: string[], running = 0): Promise<string[]> {
  const found: string[] = [];
  const sandboxes = await node.cri.listPodSandbox();
  for (const p of pods) if (sandboxes.some((s) => s.id === p.id)) found.push(`sandbox ${p.name} (${p.id.slice(0, 12)})`);
  const links = JSON.parse(node.exec('ip', ['-j', 'link', 'show', 'type', 'veth']).stdout || '[]') as { ifname: string }[];
  // A running pod has one veth and one netns; anything beyond those is a leftover.
  const veths = links.filter((l) => !nodeLinks.includes(l.ifname));
  if (veths.length > running) found.push(`veths ${veths.map((l) => l.ifname).join(' ')} with ${running} pod(s) running`);
  const netns = list(join(node.run, 'netns'));
  if (netns.length > running) found.push(`netns ${netns.join(' ')} with ${running} pod(s) running`);
  const leases = join(node.varLib, 'cni/networks', NETWORK);
  for (const f of list(leases)) if (pods.some((p) => p.ip === f)) found.push(`lease ${f}`);
  for (const f of list(join(node.varLib, 'cni/results'))) if (pods.some((p) => f.includes(p.id))) found.push(`result cache ${f}`);
  for (const f of filesUnder(join(node.run, 'cni'))) if (pods.some((p) => f.includes(p.id))) found.push(`record ${f}`);
  const rules = [
    node.exec('nft', ['list', 'ruleset']).stdout,
    node.exec('iptables-save', []).stdout,
  ].join('\n');
  for (const p of pods) {
    if (p.ip && new RegExp(`(^|[^0-9.])${p.ip.replaceAll('.', '\\.')}([^0-9]|$)`, 'm').test(rules)) found.push(`firewall entry for ${p.ip}`);
    if (rules.includes(p.id)) found.push(`firewall rule naming ${p.id.slice(0, 12)}`);
  }
  return found;
}

/**
 * With no pod running: what is left of any pod ever run on the node, also of
 * those whose RunPodSandbox failed (their IDs and addresses are not known):
 * veths, netns, leases, cache entries, plugin records, and firewall rules or
 * elements holding a single address of the pod CIDR (`podNet`: its first
 * three octets, e.g. "10.244.1.").
 */
export async function anythingLeft(node: ContainerdNode, nodeLinks: string[], podNet: string): Promise<string[]> {
  const found: string[] = [];
  for (const s of await node.cri.listPodSandbox()) found.push(`sandbox ${s.metadata?.name ?? s.id}`);
  const links = JSON.parse(node.exec('ip', ['-j', 'link', 'show', 'type', 'veth']).stdout || '[]') as { ifname: string }[];
  for (const l of links) if (!nodeLinks.includes(l.ifname)) found.push(`veth ${l.ifname}`);
  for (const n of list(join(node.run, 'netns'))) found.push(`netns ${n}`);
  for (const f of list(join(node.varLib, 'cni/networks', NETWORK))) if (f.startsWith(podNet)) found.push(`lease ${f}`);
  for (const f of list(join(node.varLib, 'cni/results'))) found.push(`result cache ${f}`);
  for (const f of filesUnder(join(node.run, 'cni'))) found.push(`record ${f}`);
  const rules = [node.exec('nft', ['list', 'ruleset']).stdout, node.exec('iptables-save', []).stdout].join('\n');
  const net = podNet.replaceAll('.', '\\.');
  for (const m of rules.matchAll(new RegExp(`${net}(\\d+)(/32)?(?![0-9/])`, 'g'))) found.push(`firewall entry for ${podNet}${m[1]}`);
  return found;
}
