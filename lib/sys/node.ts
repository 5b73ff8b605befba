// Node adapter: koffi. Used by tests and development runs.
import koffi from 'koffi';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { type Sys, type FileStat, SysError, LOCK_NB, EINVAL, ENOENT, O_CLOEXEC, pollfdIn, timespec } from './types.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const EWOULDBLOCK = 11;
const EINTR = 4;
const ENOPROTOOPT = 92;

const libc = koffi.load('libc.so.6');
const c = {
  setns: libc.func('int setns(int fd, int nstype)'),
  flock: libc.func('int flock(int fd, int op)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)'),
  send: libc.func('intptr_t send(int fd, void *buf, uintptr_t len, int flags)'),
  recv: libc.func('intptr_t recv(int fd, _Out_ void *buf, uintptr_t len, int flags)'),
  close: libc.func('int close(int fd)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int optname, void *optval, uint32_t optlen)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  ppoll: libc.func('int ppoll(_Inout_ void *fds, uint64_t nfds, void *tmo, void *sigmask)'),
};
// _IO(0xb7, 0x3)
const NS_GET_NSTYPE = 0xb703;

/** A node:fs call, its failure as SysError with the errno (node gives it negated). */
function fsCall<T>(call: string, path: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno;
    if (typeof errno !== 'number') throw e;
    throw new SysError(call, Math.abs(errno), path);
  }
}

function noNul(path: string): string {
  if (path.includes('\0')) throw new SysError('path', EINVAL, path);
  return path;
}

function statOf(st: fs.Stats): FileStat {
  return { dev: st.dev, ino: st.ino, mode: st.mode, size: st.size };
}

function check(call: string, rc: number | bigint): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(call, koffi.errno());
  return n;
}

export const sys: Sys = {
  setns(fd, nstype) {
    check('setns', c.setns(fd, nstype));
  },
  flock(fd, op) {
    for (;;) {
      if (Number(c.flock(fd, op)) === 0) return true;
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      if (errno === EWOULDBLOCK && op & LOCK_NB) return false;
      throw new SysError('flock', errno);
    }
  },
  netlinkSocket(protocol) {
    const fd = check('socket', c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    try {
      check('bind', c.bind(fd, addr, addr.length));
    } catch (e) {
      c.close(fd);
      throw e;
    }
    return fd;
  },
  send(fd, buf) {
    return check('send', c.send(fd, buf, buf.length, 0));
  },
  recv(fd, buf, flags = 0) {
    return check('recv', c.recv(fd, buf, buf.length, flags));
  },
  close(fd) {
    check('close', c.close(fd));
  },
  setsockoptInt(fd, level, option, value) {
    const v = Buffer.alloc(4);
    v.writeInt32LE(value, 0);
    if (Number(c.setsockopt(fd, level, option, v, 4)) === 0) return true;
    const e = koffi.errno();
    if (e === ENOPROTOOPT) return false;
    throw new SysError('setsockopt', e);
  },
  run(path, args, opts = {}) {
    const r = spawnSync(path, args, {
      input: opts.input ?? '',
      env: opts.env ?? process.env,
      encoding: 'utf8',
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 256 << 20,
    });
    const out = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    if (!r.error) return out;
    const timedOut = (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return { ...out, failure: { kind: timedOut ? 'timeout' : 'start', message: r.error.message } };
  },
  startDetached(path, args, stdio) {
    const fds: (number | 'ignore')[] = [];
    for (const fd of stdio) fds.push(fd ?? 'ignore');
    const child = spawn(path, args, { stdio: fds, detached: true });
    child.on('error', () => undefined);
    // Node reports a failed start as a later 'error' event; no pid means it did not start.
    if (child.pid === undefined) throw new SysError('spawn', ENOENT, path);
    child.unref();
  },
  pipe() {
    const fds = new Int32Array(2);
    check('pipe2', c.pipe2(fds, O_CLOEXEC));
    return [fds[0]!, fds[1]!];
  },
  waitReadable(fd, ms) {
    const n = Number(c.ppoll(pollfdIn(fd), 1, timespec(ms), null));
    if (n < 0 && koffi.errno() !== EINTR) throw new SysError('ppoll', koffi.errno());
    return n > 0;
  },
  sha256hex(text) {
    return createHash('sha256').update(text).digest('hex');
  },
  sha512hex(text) {
    return createHash('sha512').update(text).digest('hex');
  },

  // libuv opens every fd with O_CLOEXEC.
  open: (path, flags, mode = 0) => fsCall('open', path, () => fs.openSync(noNul(path), flags, mode)),
  read: (fd, buf) => fsCall('read', undefined, () => fs.readSync(fd, buf, 0, buf.length, null)),
  write: (fd, buf) => fsCall('write', undefined, () => fs.writeSync(fd, buf, 0, buf.length)),
  ftruncate: (fd, length) => fsCall('ftruncate', undefined, () => fs.ftruncateSync(fd, length)),
  mkdir: (path, mode) => void fsCall('mkdir', path, () => fs.mkdirSync(noNul(path), { mode })),
  rename: (from, to) => fsCall('rename', to, () => fs.renameSync(noNul(from), noNul(to))),
  link: (from, to) => fsCall('link', to, () => fs.linkSync(noNul(from), noNul(to))),
  unlink: (path) => fsCall('unlink', path, () => fs.unlinkSync(noNul(path))),
  rmdir: (path) => fsCall('rmdir', path, () => fs.rmdirSync(noNul(path))),
  access: (path, mode) => fsCall('access', path, () => fs.accessSync(noNul(path), mode)),
  realpath: (path) => fsCall('realpath', path, () => fs.realpathSync(noNul(path))),
  stat: (path) => fsCall('stat', path, () => statOf(fs.statSync(noNul(path)))),
  fstat: (fd) => fsCall('fstat', undefined, () => statOf(fs.fstatSync(fd))),
  readdir: (path) => fsCall('readdir', path, () => fs.readdirSync(noNul(path))),
  exit: (code) => process.exit(code),
  embeddedModule: () => undefined,
  nsType(fd) {
    const rc = Number(c.ioctl(fd, NS_GET_NSTYPE));
    if (rc < 0) throw new SysError('ioctl NS_GET_NSTYPE', koffi.errno());
    return rc;
  },
};
