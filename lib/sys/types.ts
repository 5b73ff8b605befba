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

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: ${errnoName(errno)} (errno ${errno})`);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE',
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

export interface Sys {
  /** setns(2) on the calling (main) thread. */
  setns(fd: number, nstype: number): void;
  /** flock(2); with LOCK_NB returns false instead of blocking when held elsewhere. */
  flock(fd: number, op: number): boolean;
  /** A bound netlink socket of the given protocol in the caller's current netns. */
  netlinkSocket(protocol: number): number;
  send(fd: number, buf: Uint8Array): number;
  /** One datagram into buf; returns its length. */
  recv(fd: number, buf: Uint8Array): number;
  close(fd: number): void;
  /** setsockopt(2) with an int value; false when the kernel does not know the option (ENOPROTOOPT). */
  setsockoptInt(fd: number, level: number, option: number, value: number): boolean;
  /** Runs a program to its end: stdin from `input`, stdout and stderr captured as UTF-8. */
  run(path: string, args: readonly string[], opts?: RunOptions): RunResult;
  /** Starts a program that may outlive the caller, with /dev/null as stdio and `fd` as its fd 3. */
  startHolder(path: string, args: readonly string[], fd: number): void;
  /** SHA-256 of the UTF-8 text, in hex. */
  sha256hex(text: string): string;
}
