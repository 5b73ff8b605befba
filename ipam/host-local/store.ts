// Leases on disk in the reference host-local's layout, so a data dir can move
// between it and cnikit: `<dataDir>/<network>/<ip>` holds
// "containerID\r\nifname", `last_reserved_ip.<set>` the last address handed
// out, and the directory itself is what flock(2) locks.
//
// Finding a container's leases in that layout means reading every lease file
// (the reference does, on every ADD and DEL), which grows with the host. So
// cnikit also keeps an index: `.cnikit-owners/<h>/<hash>@<ip>`, a hard link to
// the lease of <ip>, where <hash> names the owner and <h> is its first two
// hex digits (a bucket of a few entries, listed in one call). A link adds no
// file to the disk: creating one costs ~0.2 ms on ext4, a link ~0.02 ms. The
// reference's scans walk into it and find leases' contents, not lease names,
// so they remove entries of owners they release and list none as addresses.
// Every index hit is checked against the lease file itself; a DEL that finds
// nothing in the index still scans, so leases the reference wrote are released.
import { sys, SysError, LOCK_EX, O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, EEXIST } from '../../lib/sys/index.ts';
import { writeFileAtomic, ensurePrivateDir } from '../../lib/state/index.ts';
import { readFileIfExists, listDirIfExists, removeFile, removeDirIfEmpty, isDirectory, isNotFound, writeAll, dirname } from '../../lib/fs/index.ts';
import { type IPAddr, tryParseIP, formatIP } from '../../lib/ip/index.ts';

const LAST_RESERVED = 'last_reserved_ip.';
const TMP = '.tmp-';
// Temporaries live apart, so sweeping what a killed writer left is cheap on
// every locked operation (link(2) and rename(2) work across directories).
const TMP_DIR = '.cnikit-tmp';
const LINE_BREAK = '\r\n';
const INDEX = '.cnikit-owners';
// Written once the index covers every lease of the directory.
const INDEX_COMPLETE = '.complete-links';
// The index of earlier versions (a file of addresses per owner, `.complete`): swept when this one is built.
const OLD_INDEX_COMPLETE = '.complete';
const OLD_INDEX_NAME_LENGTH = 32;

export interface Owner {
  containerId: string;
  ifname: string;
}

export interface Lease extends Owner {
  ip: IPAddr;
}

/** The allocator's view of where leases live (the disk, or memory in unit tests). */
export interface LeaseStore {
  /** Runs fn holding the store's exclusive lock. */
  locked<T>(fn: () => T): T;
  /** Every lease (GC, CHECK). */
  leases(): Lease[];
  /** The lease of one address. */
  leaseAt(ip: IPAddr): Lease | undefined;
  /** The owner's leases; `exhaustive` also looks where an index could have missed them. */
  leasesOf(owner: Owner, exhaustive?: boolean): Lease[];
  /** Creates the lease; false when the address is already leased. */
  reserve(ip: IPAddr, owner: Owner, rangeSet: number): boolean;
  release(lease: Lease): void;
  lastReserved(rangeSet: number): IPAddr | undefined;
}

// The details of code 103 name the holder for a caller that can prove it gone
// (bridge, from its records) and reclaim the address.
const HOLDER_DETAILS = /^leased to containerID (\S+) ifname (\S+)$/;

export function holderDetails(o: Owner): string {
  return `leased to containerID ${o.containerId} ifname ${o.ifname}`;
}

/** The holder named in the details of a code 103 error, if any. */
export function parseHolderDetails(details: string | undefined): Owner | undefined {
  const m = details === undefined ? null : HOLDER_DETAILS.exec(details);
  return m ? { containerId: m[1]!, ifname: m[2]! } : undefined;
}

/** Whether a lease belongs to owner (files of old reference versions hold no ifname). */
export function ownedBy(l: Owner, o: Owner): boolean {
  return l.containerId === o.containerId && (l.ifname === o.ifname || l.ifname === '');
}

function parseOwner(text: string): Owner {
  const [containerId = '', ifname = ''] = text.trim().split(LINE_BREAK);
  // Files of old reference versions hold only the container ID.
  return { containerId: containerId.trim(), ifname: ifname.trim() };
}

/** Whether two paths are links of one file. */
function sameFile(a: string, b: string): boolean {
  try {
    const x = sys.stat(a);
    const y = sys.stat(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export class DiskStore implements LeaseStore {
  readonly dir: string;
  /** Set once ensureIndex has seen the index complete (it then stays so). */
  private indexComplete = false;

  constructor(dataDir: string, network: string) {
    // The network name is schema-checked (no '/', no leading '.'), so this stays under dataDir.
    this.dir = `${dataDir}/${network}`;
  }

  /** Whether the directory exists; DEL, CHECK and GC do not create it. */
  exists(): boolean {
    return isDirectory(this.dir);
  }

  locked<T>(fn: () => T): T {
    let fd: number;
    try {
      fd = sys.open(this.dir, O_RDONLY);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      // The first lease of the network: its directories.
      ensurePrivateDir(`${this.dir}/${TMP_DIR}`);
      ensurePrivateDir(`${this.dir}/${INDEX}`);
      fd = sys.open(this.dir, O_RDONLY);
    }
    try {
      sys.flock(fd, LOCK_EX);
      // Under the lock nobody else is writing: what is here, a killed writer left.
      for (const name of listDirIfExists(`${this.dir}/${TMP_DIR}`)) removeFile(`${this.dir}/${TMP_DIR}/${name}`);
      return fn();
    } finally {
      sys.close(fd);
    }
  }

  /** Temporaries of older versions, in the lease directory itself (GC, under the lock). */
  sweepTemporaries(): void {
    for (const name of listDirIfExists(this.dir)) if (name.startsWith(TMP)) removeFile(`${this.dir}/${name}`);
  }

  private writeTemporary(text: string): string {
    const dir = `${this.dir}/${TMP_DIR}`;
    const tmp = `${dir}/${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
    let fd: number;
    try {
      fd = sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      // A directory made by the reference plugin, or by an older cnikit, has no temporaries' dir.
      ensurePrivateDir(dir);
      fd = sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600);
    }
    try {
      writeAll(fd, text);
    } finally {
      sys.close(fd);
    }
    return tmp;
  }

  /** rename(2) into place; the index's directory is made on first use (a directory the reference made lacks it). */
  private replace(tmp: string, path: string): void {
    try {
      try {
        sys.rename(tmp, path);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        ensurePrivateDir(dirname(path));
        sys.rename(tmp, path);
      }
    } catch (e) {
      removeFile(tmp);
      throw e;
    }
  }

  leaseAt(ip: IPAddr): Lease | undefined {
    const text = readFileIfExists(`${this.dir}/${formatIP(ip)}`);
    return text === undefined ? undefined : { ip, ...parseOwner(text) };
  }

  private ownerHash(owner: Owner): string {
    return sys.sha256hex(`${owner.containerId}\0${owner.ifname}`).slice(0, 32);
  }

  private bucket(hash: string): string {
    return `${this.dir}/${INDEX}/${hash.slice(0, 2)}`;
  }

  /** The addresses the index lists for owner. */
  private indexed(owner: Owner): IPAddr[] {
    const hash = this.ownerHash(owner);
    const prefix = `${hash}@`;
    const out: IPAddr[] = [];
    for (const name of listDirIfExists(this.bucket(hash))) {
      if (!name.startsWith(prefix)) continue;
      const ip = tryParseIP(name.slice(prefix.length));
      if (ip) out.push(ip);
    }
    return out;
  }

  /**
   * Links the lease file `lease` (of ip, held by owner) into the index. A
   * bucket goes with its last entry (indexRemove, GC), so it may be missing
   * here: ENOENT makes it again and links again. Every index change runs
   * under the store's lock, so no rmdir can come between the two; the bound
   * only keeps a filesystem that keeps refusing from looping forever.
   */
  private indexAdd(owner: Owner, ip: IPAddr, lease: string): void {
    const hash = this.ownerHash(owner);
    const bucket = this.bucket(hash);
    const entry = `${bucket}/${hash}@${formatIP(ip)}`;
    for (let attempt = 0; ; attempt++) {
      try {
        sys.link(lease, entry);
        return;
      } catch (e) {
        if (attempt >= 3) throw e;
        if (isNotFound(e)) {
          ensurePrivateDir(bucket);
        } else if (e instanceof SysError && e.errno === EEXIST) {
          // Left by a release that did not finish: it links an older lease.
          removeFile(entry);
        } else {
          throw e;
        }
      }
    }
  }

  /** Removes an entry, and its bucket once empty (one rmdir, refused while it is not). */
  private indexRemove(owner: Owner, ip: IPAddr): void {
    const hash = this.ownerHash(owner);
    const bucket = this.bucket(hash);
    removeFile(`${bucket}/${hash}@${formatIP(ip)}`);
    removeDirIfEmpty(bucket);
  }

  /** Builds the index from a scan, once per directory (it then stays complete). Under the lock. */
  private ensureIndex(): void {
    if (this.indexComplete) return;
    const marker = `${this.dir}/${INDEX}/${INDEX_COMPLETE}`;
    if (readFileIfExists(marker) !== undefined) {
      this.indexComplete = true;
      return;
    }
    for (const name of listDirIfExists(`${this.dir}/${INDEX}`)) {
      if (name === OLD_INDEX_COMPLETE || name.length === OLD_INDEX_NAME_LENGTH) removeFile(`${this.dir}/${INDEX}/${name}`);
    }
    for (const l of this.leases()) this.indexAdd(l, l.ip, `${this.dir}/${formatIP(l.ip)}`);
    // Only once every lease is linked: the marker is what makes the index trusted.
    this.replace(this.writeTemporary(''), marker);
    this.indexComplete = true;
  }

  /** A hint for round robin, overwritten in place (no O_TRUNC: truncating to 0 costs ~0.2 ms on ext4), as the reference keeps it. */
  private writeHint(path: string, text: string): void {
    const bytes = new TextEncoder().encode(text);
    const fd = sys.open(path, O_WRONLY | O_CREAT, 0o600);
    try {
      writeAll(fd, bytes);
      sys.ftruncate(fd, bytes.length);
    } finally {
      sys.close(fd);
    }
  }

  leasesOf(owner: Owner, exhaustive = false): Lease[] {
    this.ensureIndex();
    // An old-format lease (no ifname) is indexed under the container ID alone.
    const keys = owner.ifname === '' ? [owner] : [owner, { containerId: owner.containerId, ifname: '' }];
    const found: Lease[] = [];
    for (const k of keys) {
      for (const ip of this.indexed(k)) {
        const l = this.leaseAt(ip);
        if (l && ownedBy(l, owner)) found.push(l);
        // The lease went and its entry stayed (a release killed in between): the entry goes now.
        else this.indexRemove(k, ip);
      }
    }
    if (found.length > 0 || !exhaustive) return found;
    // A release killed between its unlink and its rmdir left the owner's bucket
    // empty; the DEL sent again takes it (one rmdir, refused while other owners use it).
    for (const k of keys) removeDirIfEmpty(this.bucket(this.ownerHash(k)));
    return this.leases().filter((l) => ownedBy(l, owner));
  }

  leases(): Lease[] {
    const out: Lease[] = [];
    for (const name of listDirIfExists(this.dir)) {
      const ip = tryParseIP(name);
      if (!ip) continue;
      const text = readFileIfExists(`${this.dir}/${name}`);
      if (text !== undefined) out.push({ ip, ...parseOwner(text) });
    }
    return out;
  }

  reserve(ip: IPAddr, owner: Owner, rangeSet: number): boolean {
    const path = `${this.dir}/${formatIP(ip)}`;
    // The common case for a taken candidate, without writing a file first.
    if (readFileIfExists(path) !== undefined) return false;
    // Written whole to a temporary file, then hard-linked into place: link(2)
    // fails if the lease exists, and a crash never leaves a half-written lease.
    const tmp = this.writeTemporary(`${owner.containerId}${LINE_BREAK}${owner.ifname}`);
    try {
      try {
        sys.link(tmp, path);
      } catch (e) {
        if (e instanceof SysError && e.errno === EEXIST) return false;
        throw e;
      }
      this.ensureIndex();
      this.indexAdd(owner, ip, path);
    } finally {
      removeFile(tmp);
    }
    // Torn by a crash, it reads as no hint.
    this.writeHint(`${this.dir}/${LAST_RESERVED}${rangeSet}`, formatIP(ip));
    return true;
  }

  /**
   * GC, under the lock: the index and the leases made to agree both ways.
   * Entries whose lease is gone (or is another inode: the address was leased
   * again) are removed, leases without their entry are linked in again, and
   * empty buckets go. Returns how many entries were dropped and added.
   */
  sweepIndex(): { dropped: number; added: number } {
    let dropped = 0;
    let added = 0;
    const root = `${this.dir}/${INDEX}`;
    for (const b of listDirIfExists(root)) {
      if (b.length !== 2) continue;
      const bucket = `${root}/${b}`;
      for (const e of listDirIfExists(bucket)) {
        const at = e.indexOf('@');
        const ip = at < 0 ? undefined : tryParseIP(e.slice(at + 1));
        if (!ip || !sameFile(`${bucket}/${e}`, `${this.dir}/${formatIP(ip)}`)) {
          removeFile(`${bucket}/${e}`);
          dropped++;
        }
      }
      removeDirIfEmpty(bucket);
    }
    if (!this.indexComplete && readFileIfExists(`${root}/${INDEX_COMPLETE}`) === undefined) return { dropped, added };
    for (const l of this.leases()) {
      const hash = this.ownerHash(l);
      const lease = `${this.dir}/${formatIP(l.ip)}`;
      if (sameFile(`${this.bucket(hash)}/${hash}@${formatIP(l.ip)}`, lease)) continue;
      this.indexAdd(l, l.ip, lease);
      added++;
    }
    return { dropped, added };
  }

  release(lease: Lease): void {
    removeFile(`${this.dir}/${formatIP(lease.ip)}`);
    this.indexRemove(lease, lease.ip);
  }

  lastReserved(rangeSet: number): IPAddr | undefined {
    const text = readFileIfExists(`${this.dir}/${LAST_RESERVED}${rangeSet}`);
    return text === undefined ? undefined : tryParseIP(text.trim());
  }

  /** STATUS: can a lease be written here? */
  writable(): string | undefined {
    try {
      ensurePrivateDir(this.dir);
      const probe = `${this.dir}/${TMP}status-${process.pid}`;
      writeFileAtomic(probe, '');
      removeFile(probe);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }
}
