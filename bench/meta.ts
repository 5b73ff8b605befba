// Bench suite `meta`: the firewall and tuning meta plugins against the
// reference's, each exec'd as a runtime runs it after a bridge attachment
// made untimed, and Podman's whole chain (bridge + host-local, portmap with
// one port, firewall, tuning, as `podman network create` writes it) ADD and
// DEL, with the prevResult of each step passed on.
import { join } from 'node:path';
import { execPlugin, measure, table, type BenchLab, type Contender } from './harness.ts';

export interface MetaOptions {
  ours: string;
  ref: string;
  /** Scratch directory of the run. */
  dir: string;
  rounds: number;
}

interface Impl {
  name: string;
  tag: string;
  bin: string;
  subnet: string;
}

interface Attached {
  netns: string;
  id: string;
  /** prevResult after each plugin, by plugin name. */
  results: Record<string, unknown>;
}

function confs(o: MetaOptions, impl: Impl) {
  const base = { cniVersion: '0.4.0', name: `meta-${impl.tag}` };
  const dataDir = join(o.dir, `meta-${impl.tag}`, 'state');
  return {
    bridge: JSON.stringify({
      ...base, type: 'bridge', bridge: `mbr-${impl.tag}`, isGateway: true, ipMasq: true, hairpinMode: true, dataDir,
      ipam: { type: 'host-local', ranges: [[{ subnet: impl.subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(o.dir, `meta-${impl.tag}`, 'ipam') },
    }),
    // Podman's own: {"type":"portmap","capabilities":{"portMappings":true}}, {"type":"firewall","backend":""}, {"type":"tuning"}.
    portmap: (prevResult: unknown, hostPort: number) => JSON.stringify({ ...base, type: 'portmap', dataDir, runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] }, prevResult }),
    firewall: (prevResult: unknown) => JSON.stringify({ ...base, type: 'firewall', backend: '', dataDir, ...(prevResult ? { prevResult } : {}) }),
    tuning: (prevResult: unknown) => JSON.stringify({ ...base, type: 'tuning', dataDir, ...(prevResult ? { prevResult } : {}) }),
    tuned: (prevResult: unknown) => JSON.stringify({ ...base, type: 'tuning', dataDir, mtu: 1400, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1' }, ...(prevResult ? { prevResult } : {}) }),
  };
}

type Step = 'bridge' | 'portmap' | 'firewall' | 'tuning' | 'tuned';

class MetaRunner {
  private n = 0;
  private readonly c;
  constructor(private readonly lab: BenchLab, private readonly o: MetaOptions, readonly impl: Impl) {
    this.c = confs(o, impl);
  }

  private env(command: string, a: { id: string; netns: string }) {
    return { CNI_COMMAND: command, CNI_CONTAINERID: a.id, CNI_NETNS: a.netns, CNI_IFNAME: 'eth0', CNI_PATH: this.impl.bin, CNI_ARGS: 'IgnoreUnknown=1' };
  }

  private conf(step: Step, prev: unknown, port: number): string {
    switch (step) {
      case 'bridge':
        return this.c.bridge;
      case 'portmap':
        return this.c.portmap(prev, port);
      case 'firewall':
        return this.c.firewall(prev);
      case 'tuning':
        return this.c.tuning(prev);
      case 'tuned':
        return this.c.tuned(prev);
    }
  }

  private port(a: Attached): number {
    return 20000 + (Number(a.id.split('-').pop()) % 40000);
  }

  add(a: Attached, steps: readonly Step[]): void {
    let prev: unknown = a.results.bridge;
    for (const s of steps) {
      const out = execPlugin(join(this.impl.bin, s === 'tuned' ? 'tuning' : s), this.env('ADD', a), this.conf(s, prev, this.port(a))).stdout;
      prev = JSON.parse(out) as unknown;
      a.results[s] = prev;
    }
  }

  /** In reverse, each with the chain's final result as prevResult (libcni's cached result). */
  del(a: Attached, steps: readonly Step[]): void {
    const cached = a.results[steps[steps.length - 1] ?? 'bridge'] ?? a.results.bridge;
    for (const s of [...steps].reverse()) {
      execPlugin(join(this.impl.bin, s === 'tuned' ? 'tuning' : s), this.env('DEL', a), this.conf(s, cached, this.port(a)));
    }
  }

  fresh(): Attached {
    return { netns: this.lab.container(), id: `meta-${this.impl.tag}-${this.n++}`, results: {} };
  }

  /** One contender: `timed` steps ADDed (or DELeted) on top of `untimed` ones made beforehand. */
  contender(cmd: 'ADD' | 'DEL', untimed: readonly Step[], timed: readonly Step[]): Contender {
    let a: Attached | undefined;
    const held = (): Attached => {
      if (!a) throw new Error(`${this.impl.name}: no container from the setup`);
      return a;
    };
    return {
      name: this.impl.name,
      setup: () => {
        a = this.fresh();
        this.add(a, untimed);
        if (cmd === 'DEL') this.add(a, timed);
      },
      run: () => (cmd === 'ADD' ? this.add(held(), timed) : this.del(held(), timed)),
      teardown: () => {
        const x = held();
        if (cmd === 'ADD') this.del(x, timed);
        this.del(x, untimed);
        this.lab.remove(x.netns);
        a = undefined;
      },
    };
  }
}

export function metaSuite(lab: BenchLab, o: MetaOptions): string {
  const impls: Impl[] = [
    { name: 'cnikit', tag: 'ck', bin: o.ours, subnet: '10.210.0.0/16' },
    { name: 'reference', tag: 'rf', bin: o.ref, subnet: '10.211.0.0/16' },
  ];
  const runners = impls.map((i) => new MetaRunner(lab, o, i));
  const out: string[] = [];
  const row = (title: string, cmd: 'ADD' | 'DEL', untimed: readonly Step[], timed: readonly Step[]) =>
    out.push(table(title, measure(runners.map((r) => r.contender(cmd, untimed, timed)), o.rounds), 'reference'));
  row('firewall ADD (after bridge; backend "" as Podman writes it)', 'ADD', ['bridge'], ['firewall']);
  row('firewall DEL', 'DEL', ['bridge'], ['firewall']);
  row('tuning ADD without options (as Podman writes it)', 'ADD', ['bridge'], ['tuning']);
  row('tuning DEL without options', 'DEL', ['bridge'], ['tuning']);
  row('tuning ADD (mtu, one sysctl)', 'ADD', ['bridge'], ['tuned']);
  row('tuning DEL (mtu, one sysctl: restored by cnikit)', 'DEL', ['bridge'], ['tuned']);
  const podman: Step[] = ['bridge', 'portmap', 'firewall', 'tuning'];
  row("Podman's chain ADD: bridge (+ host-local), portmap (1 port), firewall, tuning", 'ADD', [], podman);
  row("Podman's chain DEL", 'DEL', [], podman);
  return out.join('\n');
}
