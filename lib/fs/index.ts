// Files on the plugin path, built on lib/sys: what node:fs would give,
// without importing it (under Bun that import alone costs ~0.7 ms of every
// plugin exec, and node:path another ~0.3 ms). The CLI may use node:fs.
import {
  sys, SysError, ENOENT, EEXIST, O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, S_IFMT, S_IFDIR, S_IFCHR, X_OK,
} from '../sys/index.ts';

const te = new TextEncoder();
const td = new TextDecoder();

export function isNotFound(e: unknown): boolean {
  return e instanceof SysError && e.errno === ENOENT;
}

// One buffer for every read: the files a plugin reads (records, leases,
// sysctls, /proc) fit in it, and a fresh 64 KiB buffer per read call would
// cost zeroing and garbage for nothing.
const scratch = new Uint8Array(65536);

/** Everything left to read on fd, as UTF-8. */
export function readFd(fd: number): string {
  let len = 0;
  while (len < scratch.length) {
    const n = sys.read(fd, scratch.subarray(len));
    if (n === 0) return td.decode(scratch.subarray(0, len));
    len += n;
  }
  // Larger than the buffer: collect the rest in chunks of their own, decode once.
  const chunks: Uint8Array[] = [scratch.slice()];
  let total = len;
  for (;;) {
    const buf = new Uint8Array(total);
    const n = sys.read(fd, buf);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return td.decode(all);
}

/** Writes all of `data` to fd. */
export function writeAll(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? te.encode(data) : data;
  for (let off = 0; off < buf.length; ) off += sys.write(fd, off === 0 ? buf : buf.subarray(off));
}

export function readFile(path: string): string {
  const fd = sys.open(path, O_RDONLY);
  try {
    return readFd(fd);
  } finally {
    sys.close(fd);
  }
}

/** The file's text, or undefined when it does not exist. */
export function readFileIfExists(path: string): string | undefined {
  let fd: number;
  try {
    fd = sys.open(path, O_RDONLY);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  try {
    return readFd(fd);
  } finally {
    sys.close(fd);
  }
}

/** Creates or truncates the file and writes `data` (a sysctl, a state file written in place). */
export function writeFile(path: string, data: string, mode = 0o644): void {
  const fd = sys.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  try {
    writeAll(fd, data);
  } finally {
    sys.close(fd);
  }
}

/** rm -f: gone afterwards, whether it was there or not. */
export function removeFile(path: string): void {
  try {
    sys.unlink(path);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/**
 * rmdir when the directory is empty; true when it is gone afterwards. One
 * syscall whether it is empty or not, so it costs less than listing it first.
 */
export function removeDirIfEmpty(path: string): boolean {
  try {
    sys.rmdir(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return true;
    if (e instanceof SysError) return false; // ENOTEMPTY, EEXIST (some filesystems), EBUSY
    throw e;
  }
}

/** The names in a directory, or none when it does not exist. */
export function listDirIfExists(path: string): string[] {
  try {
    return sys.readdir(path);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i > 0 ? path.slice(0, i) : i === 0 ? '/' : '.';
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** mkdir -p; directories it creates get `mode`. */
export function mkdirp(path: string, mode: number): void {
  try {
    sys.mkdir(path, mode);
  } catch (e) {
    if (e instanceof SysError && e.errno === EEXIST) return;
    if (!isNotFound(e) || dirname(path) === path) throw e;
    mkdirp(dirname(path), mode);
    try {
      sys.mkdir(path, mode);
    } catch (e2) {
      // A parallel caller made it in between.
      if (!(e2 instanceof SysError && e2.errno === EEXIST)) throw e2;
    }
  }
}

export function exists(path: string): boolean {
  try {
    sys.stat(path);
    return true;
  } catch {
    return false;
  }
}

export function isDirectory(path: string): boolean {
  try {
    return (sys.stat(path).mode & S_IFMT) === S_IFDIR;
  } catch {
    return false;
  }
}

export function isCharacterDevice(fd: number): boolean {
  return (sys.fstat(fd).mode & S_IFMT) === S_IFCHR;
}

export function isExecutable(path: string): boolean {
  try {
    sys.access(path, X_OK);
    return true;
  } catch {
    return false;
  }
}

const coreutils = new Map<string, string | undefined>();
/** A coreutils program (cat, sleep): in /bin or /usr/bin on every distribution, so no PATH walk. */
export function findCoreutil(name: string): string | undefined {
  if (!coreutils.has(name)) {
    let found: string | undefined;
    if (isExecutable(`/bin/${name}`)) found = `/bin/${name}`;
    else if (isExecutable(`/usr/bin/${name}`)) found = `/usr/bin/${name}`;
    coreutils.set(name, found);
  }
  return coreutils.get(name);
}

/** The path with every symlink resolved, or undefined when it does not resolve. */
export function realPath(path: string): string | undefined {
  try {
    return sys.realpath(path);
  } catch {
    return undefined;
  }
}
