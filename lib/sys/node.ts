// Node adapter: koffi. Used by tests and development runs.
import koffi from 'koffi';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { type Sys, SysError, LOCK_NB } from './types.ts';

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
};

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
  recv(fd, buf) {
    return check('recv', c.recv(fd, buf, buf.length, 0));
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
  startHolder(path, args, fd) {
    const child = spawn(path, args, { stdio: ['ignore', 'ignore', 'ignore', fd], detached: true });
    child.on('error', () => undefined);
    child.unref();
  },
  sha256hex(text) {
    return createHash('sha256').update(text).digest('hex');
  },
};
