// Plugin state on disk: private directories and files replaced atomically,
// so a crash of the process leaves either the old or the new content, never
// half of one. No fsync: it would cost a millisecond per file on every ADD,
// and after a power loss the containers these files describe are gone too.
import { mkdirSync, openSync, writeSync, closeSync, renameSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sys, LOCK_EX } from '../sys/index.ts';

/** mkdir -p with 0700 for every directory it creates. */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
}

/** Writes `data` to `path` (0600) through a temporary file and rename(2). */
export function writeFileAtomic(path: string, data: string): void {
  ensurePrivateDir(dirname(path));
  const tmp = join(dirname(path), `.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    const buf = Buffer.from(data);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The file's text, or undefined when it does not exist. */
export function readFileIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Runs fn holding an exclusive flock(2) on `path` (created 0600). The kernel
 * drops the lock when the process dies, so a crash never blocks the next run.
 */
export function withFileLock<T>(path: string, fn: () => T): T {
  ensurePrivateDir(dirname(path));
  const fd = openSync(path, 'a', 0o600);
  try {
    sys.flock(fd, LOCK_EX);
    return fn();
  } finally {
    // Closing the last descriptor releases the lock.
    closeSync(fd);
  }
}

/** The names in a directory, or none when it does not exist. */
export function listDirIfExists(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
