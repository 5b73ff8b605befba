// Plugin state on disk: private directories and files replaced atomically,
// so a crash of the process leaves either the old or the new content, never
// half of one. No fsync: it would cost a millisecond per file on every ADD,
// and after a power loss the containers these files describe are gone too.
import { sys, LOCK_EX, O_WRONLY, O_CREAT, O_EXCL, O_APPEND } from '../sys/index.ts';
import { dirname, isNotFound, mkdirp, removeFile, writeAll } from '../fs/index.ts';

/** mkdir -p with 0700 for every directory it creates. */
export function ensurePrivateDir(path: string): void {
  mkdirp(path, 0o700);
}

/**
 * Opens with O_CREAT (0600), making the file's directory first if it is
 * missing: the common case, an existing directory, costs no extra call.
 */
function openCreating(path: string, flags: number): number {
  try {
    return sys.open(path, flags | O_CREAT, 0o600);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    ensurePrivateDir(dirname(path));
    return sys.open(path, flags | O_CREAT, 0o600);
  }
}

/** A new temporary file next to `path` holding `data`; returns its name. */
export function writeTemporary(dir: string, data: string): string {
  const tmp = `${dir}/.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  const fd = openCreating(tmp, O_WRONLY | O_EXCL);
  try {
    writeAll(fd, data);
  } catch (e) {
    sys.close(fd);
    removeFile(tmp);
    throw e;
  }
  sys.close(fd);
  return tmp;
}

/** Writes `data` to `path` (0600) through a temporary file and rename(2). */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = writeTemporary(dirname(path), data);
  try {
    sys.rename(tmp, path);
  } catch (e) {
    removeFile(tmp);
    throw e;
  }
}

/**
 * Runs fn holding an exclusive flock(2) on `path` (created 0600). The kernel
 * drops the lock when the process dies, so a crash never blocks the next run.
 */
export function withFileLock<T>(path: string, fn: () => T): T {
  const fd = openCreating(path, O_WRONLY | O_APPEND);
  try {
    sys.flock(fd, LOCK_EX);
    return fn();
  } finally {
    // Closing the last descriptor releases the lock.
    sys.close(fd);
  }
}
