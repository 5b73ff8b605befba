// The test lab: every namespace a test needs is made here, named with this
// run's prefix, and removed by destroy() (called from afterAll/finally) and,
// as a last resort, by the global teardown that sweeps the run's prefix.
// The lab host namespace stands in for the machine: plugins run in it, so
// their links, sysctls and firewall rules never touch the real host.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { DEFAULT_DATA_DIR } from '../lib/state/attachments.ts';
import { namespaceStateDir } from '../lib/state/scope.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const RUN_PREFIX = process.env.CNIKIT_TEST_PREFIX ?? `ck${process.pid.toString(36)}`;

let counter = 0;

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface Exec {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface PluginCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Extra environment; a key mapped to undefined is removed. */
  env?: Record<string, string | undefined>;
  /** Config object (JSON-encoded) or raw stdin text. */
  config?: unknown;
}

export class Lab {
  readonly host: string;
  readonly hostPath: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];

  private constructor() {
    this.host = this.addNetns('host');
    this.hostPath = `/run/netns/${this.host}`;
    this.dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}-`));
    ip(['-n', this.host, 'link', 'set', 'lo', 'up']);
  }

  static create(): Lab {
    return new Lab();
  }

  /** A fresh network namespace of this run; returns its name. */
  addNetns(role: string): string {
    const name = `${RUN_PREFIX}-${role}${counter++}`;
    ip(['netns', 'add', name]);
    this.namespaces.push(name);
    return name;
  }

  /**
   * Where plugins running in a lab host namespace (the lab host by default)
   * keep their records under dataDir: `<dataDir>/ns-<netns inode>` (lib/state/scope.ts).
   */
  hostState(dataDir: string, hostPath = this.hostPath): string {
    return join(dataDir, `ns-${statSync(hostPath).ino}`);
  }

  /** The environment of a `cnikit` command whose config, state, cache and data dirs are this lab's. */
  cliEnv(stateDir = 'state'): NodeJS.ProcessEnv {
    return {
      ...process.env,
      CNIKIT_CONFIG_DIR: join(this.dir, 'net.d'),
      CNIKIT_STATE_DIR: join(this.dir, stateDir),
      CNIKIT_CACHE_DIR: join(this.dir, 'cache'),
      CNIKIT_DATA_DIR: join(this.dir, 'data'),
      NODE_EXTRA_CA_CERTS: '',
    };
  }

  /** A fresh "container" namespace; returns its path. */
  container(): string {
    return `/run/netns/${this.addNetns('c')}`;
  }

  deleteNetns(pathOrName: string): void {
    deleteNetnsAndState(pathOrName.replace('/run/netns/', ''));
  }

  /** Run a command with the lab host namespace as its network namespace. */
  exec(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; netns?: string } = {}): Exec {
    const r: SpawnSyncReturns<string> = spawnSync(
      'nsenter',
      [`--net=${opts.netns ?? this.hostPath}`, '--', cmd, ...args],
      { encoding: 'utf8', input: opts.input ?? '', env: opts.env ?? process.env, timeout: 60_000 },
    );
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** `ip` inside a namespace of the lab (the lab host by default). */
  ip(args: string[], netns?: string): string {
    const r = this.exec('ip', args, { netns });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Exec a plugin binary the way a runtime does, from the lab host. */
  plugin(binary: string, call: PluginCall): Exec {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    const set = (k: string, v: string | undefined) => {
      if (v !== undefined) env[k] = v;
    };
    set('CNI_COMMAND', call.command);
    set('CNI_CONTAINERID', call.containerId);
    set('CNI_NETNS', call.netns);
    set('CNI_IFNAME', call.ifname);
    set('CNI_ARGS', call.args);
    set('CNI_PATH', call.path);
    for (const [k, v] of Object.entries(call.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const input = typeof call.config === 'string' ? call.config : call.config === undefined ? '' : JSON.stringify(call.config);
    return this.exec(binary, [], { input, env });
  }

  destroy(): void {
    for (const name of this.namespaces.reverse()) deleteNetnsAndState(name);
    this.namespaces.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Remove every namespace whose name starts with prefix (the global teardown's sweep). */
export function sweepNamespaces(prefix: string): string[] {
  const names = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  for (const n of names) deleteNetnsAndState(n);
  return names;
}

/**
 * Deletes a lab namespace, and first what plugins that ran in it as their
 * host (Podman, containerd and the CLI use the default data dir) kept for it
 * there: its `ns-<inode>` dir (locks, emptied record dirs). Before, while the
 * inode is still this namespace's and cannot be a new namespace's.
 */
export function deleteNetnsAndState(name: string): void {
  let ino: number | undefined;
  try {
    ino = statSync(`/run/netns/${name}`).ino;
  } catch {
    // Already gone.
  }
  if (ino !== undefined) rmSync(namespaceStateDir(DEFAULT_DATA_DIR, ino), { recursive: true, force: true });
  spawnSync('ip', ['netns', 'del', name]);
}
