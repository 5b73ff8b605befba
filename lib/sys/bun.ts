// Bun adapter: bun:ffi. This is what the standalone executable runs.
import { dlopen, FFIType, read } from 'bun:ffi';
import { type Sys, SysError, LOCK_NB } from './types.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const EWOULDBLOCK = 11;
const EINTR = 4;
const ENOPROTOOPT = 92;

const { symbols: c } = dlopen('libc.so.6', {
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});

function errno(): number {
  const p = c.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

function check(call: string, rc: number | bigint): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(call, errno());
  return n;
}

export const sys: Sys = {
  setns(fd, nstype) {
    check('setns', c.setns(fd, nstype));
  },
  flock(fd, op) {
    for (;;) {
      if (c.flock(fd, op) === 0) return true;
      const e = errno();
      if (e === EINTR) continue;
      if (e === EWOULDBLOCK && op & LOCK_NB) return false;
      throw new SysError('flock', e);
    }
  },
  netlinkSocket(protocol) {
    const fd = check('socket', c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
    const addr = new Uint8Array(12);
    new DataView(addr.buffer).setUint16(0, AF_NETLINK, true);
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
    const v = new Int32Array([value]);
    if (c.setsockopt(fd, level, option, v, 4) === 0) return true;
    const e = errno();
    if (e === ENOPROTOOPT) return false;
    throw new SysError('setsockopt', e);
  },
  // Bun's own spawn and hasher: importing node:child_process costs ~0.7 ms
  // and node:crypto ~2 ms of start-up per exec, measured.
  run(path, args, opts = {}) {
    try {
      const r = Bun.spawnSync({
        cmd: [path, ...args],
        stdin: new TextEncoder().encode(opts.input ?? ''),
        stdout: 'pipe',
        stderr: 'pipe',
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 256 << 20,
      });
      const out = { status: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      if (r.exitedDueToTimeout) return { ...out, failure: { kind: 'timeout', message: `killed after ${opts.timeoutMs} ms` } };
      return out;
    } catch (e) {
      return { status: null, stdout: '', stderr: '', failure: { kind: 'start', message: (e as Error).message } };
    }
  },
  startHolder(path, args, fd) {
    Bun.spawn({ cmd: [path, ...args], stdio: ['ignore', 'ignore', 'ignore', fd] }).unref();
  },
  sha256hex(text) {
    return new Bun.CryptoHasher('sha256').update(text).digest('hex');
  },
};
