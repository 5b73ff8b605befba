// Starting the resident responder from a plugin ADD: exactly one per host
// network namespace. The responder's lock is a flock(2) on one file; an ADD
// that finds it free takes it and hands the locked file to the responder it
// starts (as its fd 3), so there is no moment at which a second ADD could
// also find it free. The kernel drops the lock when the responder dies
// (kill -9 included), and the next ADD starts a new one.
import { sys, LOCK_EX, LOCK_NB, O_WRONLY, O_CREAT, O_APPEND } from '../lib/sys/index.ts';
import { isNotFound, basename } from '../lib/fs/index.ts';
import { ensurePrivateDir } from '../lib/state/index.ts';
import { lockPath } from './records.ts';

/** The fd the responder finds its lock on when an ADD started it. */
export const LOCK_FD = 3;

function openLock(root: string): number {
  const path = lockPath(root);
  try {
    return sys.open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    ensurePrivateDir(root);
    return sys.open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600);
  }
}

/** Whether a responder holds the lock of root now. */
export function responderRunning(root: string): boolean {
  const fd = openLock(root);
  try {
    const free = sys.flock(fd, LOCK_EX | LOCK_NB);
    return !free;
  } finally {
    sys.close(fd);
  }
}

/**
 * The executable that has `dns serve`: CNIKIT_EXECUTABLE, else this process's
 * own when it is cnikit's compiled executable (not a bare node or bun).
 */
export function cnikitExecutable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CNIKIT_EXECUTABLE) return env.CNIKIT_EXECUTABLE;
  const self = basename(process.execPath);
  return self === 'node' || self === 'bun' ? undefined : process.execPath;
}

/**
 * Starts the responder for root unless one runs. It inherits the caller's
 * environment (CNIKIT_DNS_RESOLV_CONF among it). Returns whether it started one.
 */
export function ensureResponder(root: string, executable: string): boolean {
  const fd = openLock(root);
  try {
    if (!sys.flock(fd, LOCK_EX | LOCK_NB)) return false;
    // fd 3 of the child is this open file, lock and all; our copy is closed below.
    sys.startDetached(executable, ['dns', 'serve', '--dir', root, '--lock-fd', String(LOCK_FD)], [null, null, null, fd]);
    return true;
  } finally {
    sys.close(fd);
  }
}
