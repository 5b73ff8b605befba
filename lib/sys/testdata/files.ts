// The file calls of one adapter, answered as plain data, so sys.test.ts can
// check that the node and bun adapters answer alike.
import type { Sys } from '../types.ts';
import { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, S_IFMT, S_IFDIR, S_IFCHR, CLONE_NEWNET, SysError } from '../types.ts';

function errnoOf(fn: () => unknown): number | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof SysError) return e.errno;
    throw e;
  }
}

export function fileAnswers(sys: Sys, dir: string) {
  const te = new TextEncoder();
  const td = new TextDecoder();
  sys.mkdir(`${dir}/d`, 0o700);
  const fd = sys.open(`${dir}/d/f`, O_WRONLY | O_CREAT | O_EXCL, 0o600);
  const written = sys.write(fd, te.encode('héllo\n'));
  sys.close(fd);
  const rd = sys.open(`${dir}/d/f`, O_RDONLY);
  const buf = new Uint8Array(64);
  const n = sys.read(rd, buf);
  const atEnd = sys.read(rd, buf);
  const wr = sys.open(`${dir}/d/f`, O_WRONLY);
  sys.ftruncate(wr, 3);
  sys.close(wr);
  const fileStat = sys.fstat(rd);
  sys.close(rd);
  sys.link(`${dir}/d/f`, `${dir}/d/g`);
  sys.rename(`${dir}/d/g`, `${dir}/d/h`);
  const names = sys.readdir(`${dir}/d`).sort();
  const nsFd = sys.open('/proc/self/ns/net', O_RDONLY);
  const nsType = sys.nsType(nsFd);
  sys.close(nsFd);
  const plainFd = sys.open(`${dir}/d/f`, O_RDONLY);
  const nsTypeOfFile = errnoOf(() => sys.nsType(plainFd));
  sys.close(plainFd);
  sys.unlink(`${dir}/d/h`);
  return {
    written,
    text: td.decode(buf.subarray(0, n)),
    atEnd,
    sizeAfterTruncate: fileStat.size,
    fileIsRegular: (fileStat.mode & S_IFMT) === 0o100000,
    filePerm: fileStat.mode & 0o777,
    dirIsDir: (sys.stat(`${dir}/d`).mode & S_IFMT) === S_IFDIR,
    devNullIsChar: (sys.stat('/dev/null').mode & S_IFMT) === S_IFCHR,
    sameFileSameIno: sys.stat(`${dir}/d/f`).ino === fileStat.ino && sys.stat(`${dir}/d/f`).dev === fileStat.dev,
    names,
    nsTypeIsNet: nsType === CLONE_NEWNET,
    nsTypeOfFile,
    realpath: sys.realpath(`${dir}/d/../d/f`) === `${sys.realpath(dir)}/d/f`,
    linkExists: errnoOf(() => sys.link(`${dir}/d/f`, `${dir}/d/f`)),
    mkdirExists: errnoOf(() => sys.mkdir(`${dir}/d`, 0o700)),
    openMissing: errnoOf(() => sys.open(`${dir}/nope`, O_RDONLY)),
    unlinkMissing: errnoOf(() => sys.unlink(`${dir}/nope`)),
    readdirMissing: errnoOf(() => sys.readdir(`${dir}/nope`)),
    accessMissing: errnoOf(() => sys.access(`${dir}/nope`, 1)),
    nulInPath: errnoOf(() => sys.open(`${dir}/d/f\0x`, O_RDONLY)),
  };
}
