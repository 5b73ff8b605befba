// The libc surface cnikit needs. One adapter per runtime implements it
// (bun:ffi in the compiled executable, koffi under Node for tests); nothing
// outside lib/sys imports a runtime-specific module.

export const CLONE_NEWNET = 0x40000000;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

// open(2) flags and access(2) modes: the generic Linux values (x86_64, arm64).
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const X_OK = 1;

export const EPERM = 1;
export const ENOENT = 2;
export const EEXIST = 17;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENOTTY = 25;
export const EAGAIN = 11;

/** struct pollfd { int fd; short events = POLLIN; short revents } for ppoll(2). */
export function pollfdIn(fd: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, fd, true);
  dv.setInt16(4, 1 /* POLLIN */, true);
  return b;
}

/** struct timespec of ms milliseconds (fractions kept to the nanosecond). */
export function timespec(ms: number): Uint8Array {
  const ns = Math.max(0, Math.round(ms * 1e6));
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setBigInt64(0, BigInt(Math.floor(ns / 1e9)), true);
  dv.setBigInt64(8, BigInt(ns % 1e9), true);
  return b;
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    /** The file the call was about, if any. */
    readonly path?: string,
  ) {
    super(`${call}${path !== undefined ? ` ${path}` : ''} failed: ${errnoName(errno)} (errno ${errno})`);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL',
  25: 'ENOTTY', 28: 'ENOSPC', 30: 'EROFS', 34: 'ERANGE', 36: 'ENAMETOOLONG', 39: 'ENOTEMPTY', 40: 'ELOOP',
  93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 98: 'EADDRINUSE',
  99: 'EADDRNOTAVAIL', 101: 'ENETUNREACH', 105: 'ENOBUFS',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno${errno}`;
}

export interface RunOptions {
  input?: string;
  /** The whole environment of the child (default: the caller's). */
  env?: Record<string, string | undefined>;
  /** Killed with SIGKILL after this long: a hung child may ignore SIGTERM. */
  timeoutMs?: number;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Why there is no exit status: the program could not be started, or ran past timeoutMs. */
  failure?: { kind: 'start' | 'timeout'; message: string };
}

/** What stat(2) tells that cnikit looks at. `dev` is comparable only with another of the same adapter. */
export interface FileStat {
  dev: number;
  ino: number;
  /** st_mode: type and permission bits. */
  mode: number;
  size: number;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;

export interface Sys {
  /** setns(2) on the calling (main) thread. */
  setns(fd: number, nstype: number): void;
  /** flock(2); with LOCK_NB returns false instead of blocking when held elsewhere. */
  flock(fd: number, op: number): boolean;
  /** A bound netlink socket of the given protocol in the caller's current netns. */
  netlinkSocket(protocol: number): number;
  send(fd: number, buf: Uint8Array): number;
  /** One datagram into buf; returns its length. With MSG_DONTWAIT and nothing queued: SysError EAGAIN. */
  recv(fd: number, buf: Uint8Array, flags?: number): number;
  close(fd: number): void;
  /** setsockopt(2) with an int value; false when the kernel does not know the option (ENOPROTOOPT). */
  setsockoptInt(fd: number, level: number, option: number, value: number): boolean;
  /** Runs a program to its end: stdin from `input`, stdout and stderr captured as UTF-8. */
  run(path: string, args: readonly string[], opts?: RunOptions): RunResult;
  /**
   * Starts a program that may outlive the caller, in a session of its own:
   * stdio[i] becomes its fd i; null is /dev/null for fds 0-2 and closed
   * above. Never the caller's stdout: a runtime reads a plugin's output
   * until every process holding it has closed it. Throws when it cannot start.
   */
  startDetached(path: string, args: readonly string[], stdio: readonly (number | null)[]): void;
  /** pipe2(2) with O_CLOEXEC: [read end, write end]. */
  pipe(): [number, number];
  /**
   * ppoll(2) for POLLIN on one fd: whether it became readable within ms
   * milliseconds (fractions honoured; a signal counts as not yet).
   */
  waitReadable(fd: number, ms: number): boolean;
  /** SHA-256 of the UTF-8 text, in hex. */
  sha256hex(text: string): string;
  /** sha512 of the UTF-8 text, hex (the reference plugins hash names with it). */
  sha512hex(text: string): string;

  // Files: the calls of the same names, each throwing SysError with the
  // errno. Under Bun these are libc calls, not node:fs, whose import alone
  // costs ~0.7 ms of every plugin exec (lib/fs builds the helpers on them).
  open(path: string, flags: number, mode?: number): number;
  /** Up to buf.length bytes into buf; 0 at the end of the file. */
  read(fd: number, buf: Uint8Array): number;
  /** Some of buf (all of it for regular files); returns how much. */
  write(fd: number, buf: Uint8Array): number;
  ftruncate(fd: number, length: number): void;
  mkdir(path: string, mode: number): void;
  rename(from: string, to: string): void;
  /** link(2): fails with EEXIST when `to` exists, which makes it an atomic create. */
  link(from: string, to: string): void;
  unlink(path: string): void;
  /** rmdir(2): only an empty directory (ENOTEMPTY otherwise). */
  rmdir(path: string): void;
  access(path: string, mode: number): void;
  realpath(path: string): string;
  stat(path: string): FileStat;
  fstat(fd: number): FileStat;
  /** The names in a directory, without "." and "..". */
  readdir(path: string): string[];
  /** ioctl(fd, NS_GET_NSTYPE): the CLONE_NEW* type of a namespace file; ENOTTY for other files. */
  nsType(fd: number): number;
  /**
   * Ends the process at once (_exit(2) under Bun: the runtime's own wind-down
   * costs a plugin exec ~0.3 ms). Only for callers whose every write was
   * synchronous, like a plugin's.
   */
  exit(code: number): never;
  /**
   * The specifier of `path` (from the repository root, e.g. "lib/log/pino.ts")
   * as an entry point embedded in the compiled executable; undefined when not
   * running as that executable (then the caller imports its source).
   */
  embeddedModule(path: string): string | undefined;
}
