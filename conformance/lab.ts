// The conformance suite's own lab: a host namespace the plugins run in, and
// container namespaces, all named with one prefix and all removed at the end.
// Plugins are exec'd exactly as a runtime does (nsenter into the lab host,
// config on stdin, CNI_* in the environment), never in-process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Call {
  command?: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Object (JSON-encoded) or raw text. */
  config?: unknown;
  /** Extra environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
}

export class ConformanceLab {
  readonly prefix = `ckc${process.pid.toString(36)}`;
  readonly host = `${this.prefix}-host`;
  readonly hostPath = `/run/netns/${this.host}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'cnikit-conformance-'));
  private n = 0;
  private readonly made: string[] = [];
  private outsidePath?: string;
  /** The lab host's and the outside host's addresses on their link. */
  readonly uplink = { host: '203.0.113.1', outside: '203.0.113.2' };

  constructor(readonly pluginDir: string) {
    this.addNetns(this.host);
    this.ip(['link', 'set', 'lo', 'up']);
  }

  private addNetns(name: string): void {
    const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
    this.made.push(name);
  }

  /** A fresh container namespace; returns its path. */
  container(): string {
    const name = `${this.prefix}-c${this.n++}`;
    this.addNetns(name);
    return `/run/netns/${name}`;
  }

  /** "Another host" behind the lab host, with no route to any container subnet (made once). */
  outside(): string {
    if (this.outsidePath) return this.outsidePath;
    const name = `${this.prefix}-out`;
    this.addNetns(name);
    this.ip(['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    this.ip(['addr', 'add', `${this.uplink.host}/24`, 'dev', 'uplink0']);
    this.ip(['link', 'set', 'uplink0', 'up']);
    const path = `/run/netns/${name}`;
    this.ip(['addr', 'add', `${this.uplink.outside}/24`, 'dev', 'eth0'], path);
    this.ip(['link', 'set', 'eth0', 'up'], path);
    this.ip(['link', 'set', 'lo', 'up'], path);
    this.outsidePath = path;
    return path;
  }

  deleteNetns(path: string): void {
    spawnSync('ip', ['netns', 'del', path.replace('/run/netns/', '')]);
  }

  exec(cmd: string, args: string[], opts: { netns?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): ExecResult {
    const r = spawnSync('nsenter', [`--net=${opts.netns ?? this.hostPath}`, '--', cmd, ...args], {
      encoding: 'utf8',
      input: opts.input ?? '',
      env: opts.env ?? { PATH: process.env.PATH },
      timeout: 60_000,
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  ip(args: string[], netns?: string): string {
    const r = this.exec('ip', args, { netns });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Exec plugin `name` of the directory under test, as a runtime does. */
  plugin(name: string, call: Call): ExecResult {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CNI_PATH: this.pluginDir };
    if (call.command !== undefined) env.CNI_COMMAND = call.command;
    if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
    if (call.netns !== undefined) env.CNI_NETNS = call.netns;
    if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
    if (call.args !== undefined) env.CNI_ARGS = call.args;
    for (const [k, v] of Object.entries(call.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const input = typeof call.config === 'string' ? call.config : call.config === undefined ? '' : JSON.stringify(call.config);
    return this.exec(join(this.pluginDir, name), [], { input, env });
  }

  close(): void {
    for (const name of this.made.reverse()) spawnSync('ip', ['netns', 'del', name]);
    this.made.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
