// Chained ("meta") plugins side by side with the reference's: each of
// firewall, tuning and bandwidth alone (ADD and DEL after an attachment the
// bench makes itself, untimed), and the chain Podman 4.3 writes for
// `podman network create` (bridge, portmap, firewall, tuning; cniVersion
// 0.4.0). A cnikit plugin not built yet is left out with a note, so the
// reference's side runs anyway.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { execPlugin, measure, table, type BenchLab, type Contender } from './harness.ts';

export interface MetaBenchEnv {
  /** cnikit's plugin dir (dist/bin) and the reference's. */
  ours: string;
  ref: string;
  rounds: number;
  /** The run's scratch dir. */
  dir: string;
}

type Suite = (lab: BenchLab) => string;
type MetaPlugin = 'firewall' | 'tuning' | 'bandwidth';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

function macOf(dev: string, netns?: string): string {
  const r = spawnSync('ip', [...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
  return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
}

interface Veth {
  netns: string;
  id: string;
  prevResult: Record<string, unknown>;
}

interface Side {
  name: string;
  dir: string;
  tag: string;
  /** Second octet of the side's addresses. */
  octet: number;
}

/**
 * What bridge leaves for the plugins after it, made with `ip` (untimed):
 * a veth pair, the container end eth0 addressed in a fresh namespace.
 * The bench runs inside the lab host namespace, so the host end lands there.
 */
class Attacher {
  private n = 0;
  constructor(private readonly lab: BenchLab, private readonly side: Side) {}

  attach(): Veth {
    const n = this.n++;
    const netns = this.lab.container();
    const name = netns.replace('/run/netns/', '');
    const host = `bm${this.side.tag}${n}`;
    const subnet = `10.${this.side.octet}.${Math.floor(n / 250) % 250}`;
    const addr = `${subnet}.${2 + (n % 250)}`;
    ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    ip(['link', 'set', host, 'up']);
    ip(['-n', name, 'addr', 'add', `${addr}/16`, 'dev', 'eth0']);
    ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    const gw = `10.${this.side.octet}.255.254`;
    return {
      netns,
      id: `bench-meta-${this.side.tag}-${n}`,
      prevResult: {
        cniVersion: '1.0.0',
        interfaces: [{ name: host, mac: macOf(host) }, { name: 'eth0', mac: macOf('eth0', name), sandbox: netns }],
        ips: [{ address: `${addr}/16`, gateway: gw, interface: 1 }],
        routes: [{ dst: '0.0.0.0/0', gw }],
      },
    };
  }
}

/** The configs measured: Podman's (as `podman network create` writes them) and ones that make each plugin work. */
const META_CONFS: { plugin: MetaPlugin; label: string; options: (dir: string) => Record<string, unknown> }[] = [
  { plugin: 'firewall', label: 'firewall (Podman\'s: backend "", ingressPolicy open)', options: () => ({ backend: '' }) },
  { plugin: 'tuning', label: 'tuning (Podman\'s: no options)', options: (dir) => ({ dataDir: join(dir, 'tuning') }) },
  { plugin: 'tuning', label: 'tuning (sysctl net.ipv4.conf.eth0.arp_notify=1, mtu 1400)', options: (dir) => ({ sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1' }, mtu: 1400, dataDir: join(dir, 'tuning') }) },
  {
    plugin: 'bandwidth',
    label: 'bandwidth (10 Mbit/s each way: tbf on the host veth, ifb + mirred for egress)',
    options: () => ({ ingressRate: 10_000_000, ingressBurst: 1_000_000, egressRate: 10_000_000, egressBurst: 1_000_000 }),
  },
];

function sides(env: MetaBenchEnv, needs: string[]): { present: Side[]; missing: string[] } {
  const all: Side[] = [
    { name: 'cnikit', dir: env.ours, tag: 'k', octet: 232 },
    { name: 'reference', dir: env.ref, tag: 'r', octet: 233 },
  ];
  const missing: string[] = [];
  const present = all.filter((s) => {
    const absent = needs.filter((p) => !existsSync(join(s.dir, p)));
    if (absent.length > 0) missing.push(`${s.name} has no ${absent.join(', ')} in ${s.dir} yet: its rows are left out.`);
    return absent.length === 0;
  });
  return { present, missing };
}

function metaContender(lab: BenchLab, env: MetaBenchEnv, side: Side, attacher: Attacher, c: (typeof META_CONFS)[number], cmd: 'ADD' | 'DEL'): Contender {
  const bin = join(side.dir, c.plugin);
  const conf = (v: Veth) => JSON.stringify({ cniVersion: '1.0.0', name: 'bench-meta', type: c.plugin, ...c.options(join(env.dir, `meta-${side.tag}`)), prevResult: v.prevResult });
  const vars = (v: Veth, command: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: v.id, CNI_NETNS: v.netns, CNI_IFNAME: 'eth0', CNI_PATH: side.dir });
  let v: Veth | undefined;
  const held = () => {
    if (!v) throw new Error(`${side.name} ${c.plugin}: no attachment from the setup`);
    return v;
  };
  return {
    name: side.name,
    setup: () => {
      v = attacher.attach();
      if (cmd === 'DEL') execPlugin(bin, vars(v, 'ADD'), conf(v));
    },
    run: () => void execPlugin(bin, vars(held(), cmd), conf(held())),
    teardown: () => {
      const a = held();
      if (cmd === 'ADD') execPlugin(bin, vars(a, 'DEL'), conf(a));
      lab.remove(a.netns);
      v = undefined;
    },
  };
}

/** The conflist `podman network create --subnet …` writes with Podman 4.3's CNI backend (captured from it). */
function podmanConfs(side: Side, dir: string) {
  const name = `bench-podman-${side.tag}`;
  const plugins = [
    {
      type: 'bridge',
      bridge: `pbr-${side.tag}`,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: `10.${side.octet + 2}.0.0/16`, gateway: `10.${side.octet + 2}.0.1` }]], dataDir: join(dir, `podman-${side.tag}`, 'ipam') },
      capabilities: { ips: true },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'firewall', backend: '' },
    { type: 'tuning' },
  ];
  /** What libcni hands each plugin: its own object, name and cniVersion inserted, runtimeConfig for the capabilities it has. */
  return plugins.map((p) => (prevResult: unknown, hostPort: number) => JSON.stringify({
    cniVersion: '0.4.0',
    name,
    ...p,
    ...(p.type === 'portmap' ? { runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] } } : {}),
    ...(prevResult === undefined ? {} : { prevResult }),
  }));
}

interface PodmanContainer {
  netns: string;
  id: string;
  port: number;
  result: unknown;
}

/** Podman's chain as libcni runs it: ADD in order, each with the result so far; DEL in reverse, each with the cached final result. */
function podmanContender(lab: BenchLab, env: MetaBenchEnv, side: Side, cmd: 'ADD' | 'DEL'): Contender {
  const confs = podmanConfs(side, env.dir);
  const types = ['bridge', 'portmap', 'firewall', 'tuning'];
  let n = 0;
  const vars = (c: Omit<PodmanContainer, 'result'>, command: string) => ({
    CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns, CNI_IFNAME: 'eth0', CNI_PATH: side.dir, CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${c.id}`,
  });
  const add = (netns: string): PodmanContainer => {
    const c = { netns, id: `bench-podman-${side.tag}-${n}`, port: 31000 + (n % 20000) };
    n++;
    let result: unknown;
    types.forEach((t, i) => {
      result = JSON.parse(execPlugin(join(side.dir, t), vars(c, 'ADD'), confs[i]!(result, c.port)).stdout) as unknown;
    });
    return { ...c, result };
  };
  const del = (c: PodmanContainer) => {
    for (let i = types.length - 1; i >= 0; i--) execPlugin(join(side.dir, types[i]!), vars(c, 'DEL'), confs[i]!(c.result, c.port));
  };
  let netns: string | undefined;
  let c: PodmanContainer | undefined;
  return {
    name: side.name,
    setup: () => {
      netns = lab.container();
      if (cmd === 'DEL') c = add(netns);
    },
    run: () => {
      if (cmd === 'ADD') c = add(netns!);
      else del(c!);
    },
    teardown: () => {
      if (cmd === 'ADD') del(c!);
      lab.remove(netns!);
      c = undefined;
      netns = undefined;
    },
  };
}

export function metaSuites(env: MetaBenchEnv): Record<string, Suite> {
  return {
    meta: (lab) => {
      const out: string[] = [];
      for (const c of META_CONFS) {
        const { present, missing } = sides(env, [c.plugin]);
        const attachers = new Map(present.map((s) => [s, new Attacher(lab, s)]));
        for (const cmd of ['ADD', 'DEL'] as const) {
          const stats = measure(present.map((s) => metaContender(lab, env, s, attachers.get(s)!, c, cmd)), env.rounds);
          out.push(table(`${c.label} ${cmd}`, stats, 'reference'));
        }
        out.push(...missing.map((m) => `${m}\n`));
      }
      out.push('Each plugin alone, after a veth pair the bench makes (untimed) as bridge would, with its result as prevResult, cniVersion 1.0.0.\n');
      return out.join('\n');
    },
    podman: (lab) => {
      const { present, missing } = sides(env, ['bridge', 'host-local', 'portmap', 'firewall', 'tuning']);
      return [
        table("Podman's chain ADD: bridge (+ host-local), portmap (1 port), firewall, tuning; cniVersion 0.4.0", measure(present.map((s) => podmanContender(lab, env, s, 'ADD')), env.rounds), 'reference'),
        table("Podman's chain DEL: tuning, firewall, portmap, bridge, with the cached result", measure(present.map((s) => podmanContender(lab, env, s, 'DEL')), env.rounds), 'reference'),
        'The conflist is the one `podman network create --subnet …` writes (Podman 4.3, CNI backend), run plugin by plugin as libcni execs them; Podman brings up the container\'s loopback itself, so loopback is not in it.\n',
        ...missing.map((m) => `${m}\n`),
      ].join('\n');
    },
  };
}
