// Leases on disk in the reference host-local's layout, so a data dir can move
// between it and cnikit: `<dataDir>/<network>/<ip>` holds
// "containerID\r\nifname", `last_reserved_ip.<set>` the last address handed
// out, and the directory itself is what flock(2) locks.
import {
  openSync, closeSync, readdirSync, writeSync, linkSync, rmSync, mkdirSync, statSync,
} from 'node:fs';
import { join } from 'node:path';
import { sys, LOCK_EX } from '../../lib/sys/index.ts';
import { writeFileAtomic, readFileIfExists, listDirIfExists } from '../../lib/state/index.ts';
import { type IPAddr, tryParseIP, formatIP } from '../../lib/ip/index.ts';

const LAST_RESERVED = 'last_reserved_ip.';
const TMP = '.tmp-';
const LINE_BREAK = '\r\n';

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
  leases(): Lease[];
  /** Creates the lease; false when the address is already leased. */
  reserve(ip: IPAddr, owner: Owner, rangeSet: number): boolean;
  release(ip: IPAddr): void;
  lastReserved(rangeSet: number): IPAddr | undefined;
}

function parseOwner(text: string): Owner {
  const [containerId = '', ifname = ''] = text.trim().split(LINE_BREAK);
  // Files of old reference versions hold only the container ID.
  return { containerId: containerId.trim(), ifname: ifname.trim() };
}

export class DiskStore implements LeaseStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    // The network name is schema-checked (no '/', no leading '.'), so this stays under dataDir.
    this.dir = join(dataDir, network);
  }

  /** Whether the directory exists; DEL, CHECK and GC do not create it. */
  exists(): boolean {
    try {
      return statSync(this.dir).isDirectory();
    } catch {
      return false;
    }
  }

  locked<T>(fn: () => T): T {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const fd = openSync(this.dir, 'r');
    try {
      sys.flock(fd, LOCK_EX);
      this.sweepTemporaries();
      return fn();
    } finally {
      closeSync(fd);
    }
  }

  /** Temporary files left by a writer that died: under the lock nobody else is writing. */
  private sweepTemporaries(): void {
    for (const name of readdirSync(this.dir)) if (name.startsWith(TMP)) rmSync(join(this.dir, name), { force: true });
  }

  leases(): Lease[] {
    const out: Lease[] = [];
    for (const name of listDirIfExists(this.dir)) {
      const ip = tryParseIP(name);
      if (!ip) continue;
      const text = readFileIfExists(join(this.dir, name));
      if (text !== undefined) out.push({ ip, ...parseOwner(text) });
    }
    return out;
  }

  reserve(ip: IPAddr, owner: Owner, rangeSet: number): boolean {
    // Written whole to a temporary file, then hard-linked into place: link(2)
    // fails if the lease exists, and a crash never leaves a half-written lease.
    const tmp = join(this.dir, `${TMP}${process.pid}-${Math.random().toString(16).slice(2, 10)}`);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, `${owner.containerId}${LINE_BREAK}${owner.ifname}`);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, join(this.dir, formatIP(ip)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    writeFileAtomic(join(this.dir, `${LAST_RESERVED}${rangeSet}`), formatIP(ip));
    return true;
  }

  release(ip: IPAddr): void {
    rmSync(join(this.dir, formatIP(ip)), { force: true });
  }

  lastReserved(rangeSet: number): IPAddr | undefined {
    const text = readFileIfExists(join(this.dir, `${LAST_RESERVED}${rangeSet}`));
    return text === undefined ? undefined : tryParseIP(text.trim());
  }

  /** STATUS: can a lease be written here? */
  writable(): string | undefined {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const probe = join(this.dir, `${TMP}status-${process.pid}`);
      writeFileAtomic(probe, '');
      rmSync(probe, { force: true });
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }
}
