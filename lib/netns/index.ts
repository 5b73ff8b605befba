// Run synchronous work inside a network namespace on the main thread and
// always come back. Sockets opened inside stay bound to that namespace, and
// child processes spawned inside inherit it (fork copies the calling thread's
// namespaces), so iptables/nft run there without nsenter.
import { sys, CLONE_NEWNET, SysError, O_RDONLY, ENOENT, ENOTDIR, EINVAL, ENOTTY } from '../sys/index.ts';

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

/** An fd of the namespace file at path; the caller closes it. */
export function openNetns(path: string): number {
  try {
    return sys.open(path, O_RDONLY);
  } catch (e) {
    const errno = e instanceof SysError ? e.errno : 0;
    if (errno === ENOENT || errno === ENOTDIR) {
      throw new NetnsError(path, 'missing', `network namespace ${path} does not exist`);
    }
    throw new NetnsError(path, 'other', `cannot open network namespace ${path}: ${(e as Error).message}`);
  }
}

function enter(fd: number, path: string): void {
  try {
    sys.setns(fd, CLONE_NEWNET);
  } catch (e) {
    if (e instanceof SysError && e.errno === EINVAL) {
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
    origin = sys.open(SELF, O_RDONLY);
    enter(target, path);
    try {
      return fn();
    } finally {
      try {
        sys.setns(origin, CLONE_NEWNET);
      } catch (e) {
        // Going on in the wrong namespace would change the wrong network.
        sys.write(2, new TextEncoder().encode(`fatal: cannot return to the original network namespace: ${(e as Error).message}\n`));
        process.exit(70);
      }
    }
  } finally {
    sys.close(target);
    if (origin >= 0) sys.close(origin);
  }
}

/**
 * Whether path names a network namespace, and whether it is the one this
 * thread is in now; NetnsError when it is missing or not a network namespace.
 * Asked of the namespace file (ioctl NS_GET_NSTYPE, stat), without entering it.
 */
export function inspectNetns(path: string): { current: boolean } {
  const fd = openNetns(path);
  try {
    let type: number;
    try {
      type = sys.nsType(fd);
    } catch (e) {
      if (e instanceof SysError && (e.errno === ENOTTY || e.errno === EINVAL)) type = 0;
      else throw new NetnsError(path, 'other', `cannot inspect network namespace ${path}: ${(e as Error).message}`);
    }
    if (type !== CLONE_NEWNET) throw new NetnsError(path, 'not-netns', `${path} is not a network namespace`);
    const ns = sys.fstat(fd);
    const self = sys.stat(SELF);
    return { current: ns.ino === self.ino && ns.dev === self.dev };
  } finally {
    sys.close(fd);
  }
}
