// Run synchronous work inside a network namespace on the main thread and
// always come back. Sockets opened inside stay bound to that namespace, and
// child processes spawned inside inherit it (fork copies the calling thread's
// namespaces), so iptables/nft run there without nsenter.
import { openSync, closeSync, statSync } from 'node:fs';
import { sys, CLONE_NEWNET, SysError } from '../sys/index.ts';

export class NetnsError extends Error {
  constructor(
    readonly path: string,
    readonly reason: 'missing' | 'not-netns' | 'other',
    detail: string,
  ) {
    super(detail);
  }
}

const SELF = '/proc/thread-self/ns/net';

function openNetns(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new NetnsError(path, 'missing', `network namespace ${path} does not exist`);
    }
    throw new NetnsError(path, 'other', `cannot open network namespace ${path}: ${(e as Error).message}`);
  }
}

function enter(fd: number, path: string): void {
  try {
    sys.setns(fd, CLONE_NEWNET);
  } catch (e) {
    if (e instanceof SysError && e.errno === 22) {
      throw new NetnsError(path, 'not-netns', `${path} is not a network namespace`);
    }
    throw new NetnsError(path, 'other', `cannot enter network namespace ${path}: ${(e as Error).message}`);
  }
}

/** Run fn with the main thread inside the netns at path (a /run/netns/NAME or /proc/PID/ns/net path). */
export function withNetns<T>(path: string, fn: () => T): T {
  const target = openNetns(path);
  let origin = -1;
  try {
    origin = openSync(SELF, 'r');
    enter(target, path);
    try {
      return fn();
    } finally {
      try {
        sys.setns(origin, CLONE_NEWNET);
      } catch (e) {
        // Going on in the wrong namespace would change the wrong network.
        process.stderr.write(`fatal: cannot return to the original network namespace: ${(e as Error).message}\n`);
        process.exit(70);
      }
    }
  } finally {
    closeSync(target);
    if (origin >= 0) closeSync(origin);
  }
}

/** Fail with NetnsError unless path names an existing network namespace. */
export function assertNetns(path: string): void {
  withNetns(path, () => undefined);
}

/** True when path is the namespace this thread is in now. */
export function isCurrentNetns(path: string): boolean {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new NetnsError(path, 'missing', `network namespace ${path} does not exist`);
  }
  const self = statSync(SELF);
  return st.ino === self.ino && st.dev === self.dev;
}
