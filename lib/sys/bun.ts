// Bun adapter: bun:ffi. This is what the standalone executable runs.
import { dlopen, FFIType, read } from 'bun:ffi';
import { type Sys, type FileStat, SysError, LOCK_NB, O_RDONLY, O_CLOEXEC, EINVAL, pollfdIn, timespec } from './types.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const EWOULDBLOCK = 11;
const EINTR = 4;
const ENOPROTOOPT = 92;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const PATH_MAX = 4096;
// _IO(0xb7, 0x3)
const NS_GET_NSTYPE = 0xb703;

const { i32, u32, u64, i64, ptr } = FFIType;
const { symbols: c } = dlopen('libc.so.6', {
  setns: { args: [i32, i32], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: i64 },
  recv: { args: [i32, ptr, u64, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  open: { args: [ptr, i32, u32], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64 },
  write: { args: [i32, ptr, u64], returns: i64 },
  ftruncate: { args: [i32, i64], returns: i32 },
  mkdir: { args: [ptr, u32], returns: i32 },
  rename: { args: [ptr, ptr], returns: i32 },
  link: { args: [ptr, ptr], returns: i32 },
  unlink: { args: [ptr], returns: i32 },
  rmdir: { args: [ptr], returns: i32 },
  access: { args: [ptr, i32], returns: i32 },
  realpath: { args: [ptr, ptr], returns: ptr },
  // struct statx is the same on every architecture, unlike struct stat.
  statx: { args: [i32, ptr, i32, u32, ptr], returns: i32 },
  getdents64: { args: [i32, ptr, u64], returns: i64 },
  ioctl: { args: [i32, u64], returns: i32 },
  __errno_location: { args: [], returns: ptr },
  _exit: { args: [i32], returns: FFIType.void },
  pipe2: { args: [ptr, i32], returns: i32 },
  ppoll: { args: [ptr, u64, ptr, ptr], returns: i32 },
});

const te = new TextEncoder();
const td = new TextDecoder();

function errno(): number {
  const p = c.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

function check(call: string, rc: number | bigint, path?: string): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(call, errno(), path);
  return n;
}

/** A call a signal may interrupt (EINTR) is made again; any other failure is a SysError. */
function restarting(call: string, fn: () => number | bigint, path?: string): number {
  for (;;) {
    const n = Number(fn());
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) throw new SysError(call, e, path);
  }
}

/** A NUL-terminated copy for libc. A NUL inside would silently cut the path short. */
function cstr(path: string): Uint8Array {
  if (path.includes('\0')) throw new SysError('path', EINVAL, path);
  return te.encode(`${path}\0`);
}

const statBuf = new Uint8Array(256);
const statView = new DataView(statBuf.buffer);

function statResult(): FileStat {
  // stx_mode @28 (u16), stx_ino @32, stx_size @40, stx_dev_major @136, stx_dev_minor @140.
  return {
    mode: statView.getUint16(28, true),
    ino: Number(statView.getBigUint64(32, true)),
    size: Number(statView.getBigUint64(40, true)),
    dev: statView.getUint32(136, true) * 0x100000 + statView.getUint32(140, true),
  };
}

const EMPTY = new Uint8Array(1);
// Reused by every readdir: a fresh 32 KiB buffer each call would cost zeroing for nothing.
const direntBuf = new Uint8Array(1 << 15);
const direntView = new DataView(direntBuf.buffer);

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
  recv(fd, buf, flags = 0) {
    return check('recv', c.recv(fd, buf, buf.length, flags));
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
        stdin: te.encode(opts.input ?? ''),
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
  startDetached(path, args, stdio) {
    const fds: [number | 'ignore', number | 'ignore', number | 'ignore', ...(number | 'ignore')[]] = [stdio[0] ?? 'ignore', stdio[1] ?? 'ignore', stdio[2] ?? 'ignore'];
    for (let i = 3; i < stdio.length; i++) fds.push(stdio[i] ?? 'ignore');
    Bun.spawn({ cmd: [path, ...args], stdio: fds, detached: true }).unref();
  },
  pipe() {
    const fds = new Int32Array(2);
    check('pipe2', c.pipe2(fds, O_CLOEXEC));
    return [fds[0]!, fds[1]!];
  },
  waitReadable(fd, ms) {
    const n = c.ppoll(pollfdIn(fd), 1, timespec(ms), null);
    if (n < 0 && errno() !== EINTR) throw new SysError('ppoll', errno());
    return n > 0;
  },
  sha256hex(text) {
    return new Bun.CryptoHasher('sha256').update(text).digest('hex');
  },
  sha512hex(text) {
    return new Bun.CryptoHasher('sha512').update(text).digest('hex');
  },

  open(path, flags, mode = 0) {
    const p = cstr(path);
    return restarting('open', () => c.open(p, flags | O_CLOEXEC, mode), path);
  },
  read: (fd, buf) => restarting('read', () => c.read(fd, buf, buf.length)),
  write: (fd, buf) => restarting('write', () => c.write(fd, buf, buf.length)),
  ftruncate(fd, length) {
    check('ftruncate', c.ftruncate(fd, length));
  },
  mkdir(path, mode) {
    check('mkdir', c.mkdir(cstr(path), mode), path);
  },
  rename(from, to) {
    check('rename', c.rename(cstr(from), cstr(to)), to);
  },
  link(from, to) {
    check('link', c.link(cstr(from), cstr(to)), to);
  },
  unlink(path) {
    check('unlink', c.unlink(cstr(path)), path);
  },
  rmdir(path) {
    check('rmdir', c.rmdir(cstr(path)), path);
  },
  access(path, mode) {
    check('access', c.access(cstr(path), mode), path);
  },
  realpath(path) {
    const out = new Uint8Array(PATH_MAX);
    if (c.realpath(cstr(path), out) === null) throw new SysError('realpath', errno(), path);
    return td.decode(out.subarray(0, out.indexOf(0)));
  },
  stat(path) {
    check('stat', c.statx(AT_FDCWD, cstr(path), 0, STATX_BASIC_STATS, statBuf), path);
    return statResult();
  },
  fstat(fd) {
    check('fstat', c.statx(fd, EMPTY, AT_EMPTY_PATH, STATX_BASIC_STATS, statBuf));
    return statResult();
  },
  readdir(path) {
    const fd = sys.open(path, O_RDONLY);
    const names: string[] = [];
    try {
      const buf = direntBuf;
      const dv = direntView;
      for (;;) {
        const n = check('getdents64', c.getdents64(fd, buf, buf.length), path);
        if (n === 0) return names;
        // struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16 @16, d_type u8 @18, d_name @19.
        for (let off = 0; off < n; ) {
          const reclen = dv.getUint16(off + 16, true);
          const name = td.decode(buf.subarray(off + 19, buf.indexOf(0, off + 19)));
          if (name !== '.' && name !== '..') names.push(name);
          off += reclen;
        }
      }
    } finally {
      c.close(fd);
    }
  },
  nsType(fd) {
    return check('ioctl NS_GET_NSTYPE', c.ioctl(fd, NS_GET_NSTYPE));
  },
  embeddedModule(path) {
    // The compiled executable's modules live under /$bunfs/root/, next to its main module.
    const main = Bun.main;
    return main.startsWith('/$bunfs/') ? `${main.slice(0, main.lastIndexOf('/'))}/${path}` : undefined;
  },
  exit(code) {
    c._exit(code);
    throw new Error('_exit returned');
  },
};
