// The last resort after a killed test run: containerd nodes and shims whose
// config or socket lies in a directory of the run (its name starts with the run's prefix),
// every process in their mount namespaces (shims, pause and app
// containers, the namespace's holder), and the pods' cgroups. What the
// run started, found by the run's prefix; nothing else is touched.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function pids(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (Number.isInteger(pid) && pid !== process.pid) out.push(pid);
  }
  return out;
}

function read(fn: () => string): string | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

function removeTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
  read(() => {
    rmdirSync(dir);
    return '';
  });
}

function procsUnder(dir: string, out: Set<number>): void {
  for (const line of read(() => readFileSync(join(dir, 'cgroup.procs'), 'utf8'))?.split('\n') ?? []) if (line) out.add(Number(line));
  for (const e of read(() => readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).join('\n'))?.split('\n') ?? []) {
    if (e) procsUnder(join(dir, e), out);
  }
}

/**
 * Kills every process in the cgroup `name` (a top-level cgroup of the run,
 * in each v1 hierarchy and the unified one: pause and app containers live
 * there, each in a mount namespace of its own) and removes the cgroups.
 */
export async function removeCgroupTree(name: string): Promise<void> {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return;
  const dirs: string[] = [];
  for (const ctrl of readdirSync(root)) {
    const d = join(root, ctrl, name);
    if (existsSync(d)) dirs.push(d);
  }
  for (let round = 0; round < 50 && dirs.length > 0; round++) {
    const procs = new Set<number>();
    for (const d of dirs) procsUnder(d, procs);
    if (procs.size === 0) break;
    for (const pid of procs) {
      read(() => {
        process.kill(pid, 'SIGKILL');
        return '';
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const d of dirs) removeTree(d);
}

/** Kills the run's leftover containerd nodes and their pods and removes the pods' cgroups; returns how many node processes it killed. */
export function sweepNodes(prefix: string): Promise<number> {
  const marker = join(tmpdir(), `${prefix}-`);
  return sweepNodesWhere((cmd) => cmd.includes(marker), (cgroup) => cgroup.startsWith(`${prefix}-`));
}

/**
 * Kills the containerd nodes (and their shims) whose command line `ours`
 * accepts, every process in their mount namespaces, and the processes in the
 * top-level cgroups `ourCgroup` accepts, whose trees it then removes.
 */
export async function sweepNodesWhere(ours: (cmdline: string) => boolean, ourCgroup: (name: string) => boolean): Promise<number> {
  const mountNs = new Set<string>();
  const self = read(() => readlinkSync('/proc/self/ns/mnt'));
  for (const pid of pids()) {
    const cmd = read(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    // containerd (its --config) and its shims (their -address) name the node's directory.
    if (!cmd || !cmd.split('\0')[0]!.includes('containerd') || !ours(cmd)) continue;
    const mnt = read(() => readlinkSync(`/proc/${pid}/ns/mnt`));
    if (mnt && mnt !== self) mountNs.add(mnt);
  }
  let killed = 0;
  if (mountNs.size > 0) {
    for (const pid of pids()) {
      const mnt = read(() => readlinkSync(`/proc/${pid}/ns/mnt`));
      if (mnt && mountNs.has(mnt)) {
        read(() => {
          process.kill(pid, 'SIGKILL');
          killed++;
          return '';
        });
      }
    }
  }
  const cgroups = '/sys/fs/cgroup';
  const names = new Set<string>();
  if (existsSync(cgroups)) {
    for (const ctrl of readdirSync(cgroups)) {
      for (const e of read(() => readdirSync(join(cgroups, ctrl)).join('\n'))?.split('\n') ?? []) if (e && ourCgroup(e)) names.add(e);
    }
  }
  for (const n of names) await removeCgroupTree(n);
  return killed;
}
