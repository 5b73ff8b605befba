// One JSON record per attachment (network + container ID + ifname) under a
// plugin's data dir: what an ADD made, so that DEL and GC can undo it
// without the netns, the interface or the prevResult.
import { writeFileAtomic, createFile, rewriteFile, ensurePrivateDir } from './index.ts';
import { hostStateDir } from './scope.ts';
import { readFileIfExists, listDirIfExists, removeFile, removeDirIfEmpty, exists, isNotFound } from '../fs/index.ts';
import { sys } from '../sys/index.ts';

/**
 * Where cnikit plugins keep their records unless the config says otherwise.
 * On /run (a tmpfs): the links and rules a record describes do not survive a
 * reboot, so neither should the record (a stale portmap record would hold its
 * port), and a file is created there in microseconds, not the ~0.2 ms an
 * ext4 inode costs on every ADD. Leases stay where IPAM keeps them.
 */
export const DEFAULT_DATA_DIR = '/run/cni/cnikit';

export interface AttachmentId {
  containerId: string;
  ifname: string;
}

// '@' cannot occur in a container ID (skel validates them), so the name is unambiguous.
function fileName(id: AttachmentId): string {
  return `${id.containerId}@${id.ifname}.json`;
}

const TMP = '.tmp-';

/** Whether a temporary `.tmp-<pid>-…` (see writeTemporary) was left by a process that is gone. */
function orphanedTemporary(name: string): boolean {
  if (!name.startsWith(TMP)) return false;
  const pid = name.slice(TMP.length).split('-')[0];
  // A reused pid keeps a leftover one more round, which is harmless.
  return pid !== undefined && /^[0-9]+$/.test(pid) && !exists(`/proc/${pid}`);
}

/**
 * `<dataDir>/ns-<id>/<plugin>/<network>/<containerId>@<ifname>.json`: the
 * records of this host (network namespace, see scope.ts). Records of the
 * layout before that, `<dataDir>/<plugin>/<network>/…`, are still found: a
 * read by key moves the record into this host's directory, and list() takes
 * those its caller proves to be this host's.
 */
export class AttachmentStore<R extends AttachmentId> {
  readonly dir: string;
  /** Where records were kept before they were per namespace. */
  readonly legacyDir: string;

  constructor(dataDir: string, plugin: string, network: string) {
    this.dir = `${hostStateDir(dataDir)}/${plugin}/${network}`;
    this.legacyDir = `${dataDir}/${plugin}/${network}`;
  }

  private parse(text: string | undefined): R | undefined {
    if (text === undefined || text === '') return undefined;
    try {
      return JSON.parse(text) as R;
    } catch {
      // Writes are atomic, so this is damage from outside: treat it as absent.
      return undefined;
    }
  }

  read(id: AttachmentId): R | undefined {
    const name = fileName(id);
    const text = readFileIfExists(`${this.dir}/${name}`);
    if (text !== undefined) return this.parse(text);
    // Only a miss looks at the old layout (one failed open on a tmpfs).
    const legacy = this.parse(readFileIfExists(`${this.legacyDir}/${name}`));
    if (legacy) this.adopt(name);
    return legacy;
  }

  /** Moves a record of the old layout into this host's directory (rename(2): whole or not at all). */
  private adopt(name: string): void {
    try {
      try {
        sys.rename(`${this.legacyDir}/${name}`, `${this.dir}/${name}`);
      } catch (e) {
        if (!isNotFound(e) || !exists(`${this.legacyDir}/${name}`)) throw e;
        ensurePrivateDir(this.dir);
        sys.rename(`${this.legacyDir}/${name}`, `${this.dir}/${name}`);
      }
    } catch (e) {
      // Another process adopted it first: it is in one place or the other, whole.
      if (!isNotFound(e)) throw e;
    }
    removeDirIfEmpty(this.legacyDir);
  }

  /** Replaces the record whole (rename(2)). */
  write(r: R): void {
    writeFileAtomic(`${this.dir}/${fileName(r)}`, JSON.stringify(r));
  }

  /** The first record of an attachment (see createFile); replaces a stale one left by a crash. */
  create(r: R): void {
    createFile(`${this.dir}/${fileName(r)}`, JSON.stringify(r));
  }

  /** A record this process created, grown by what the ADD did since (see rewriteFile). */
  update(r: R): void {
    rewriteFile(`${this.dir}/${fileName(r)}`, JSON.stringify(r));
  }

  /** Removes the record, also when it is an empty file a killed writer left (see createFile). */
  remove(id: AttachmentId): void {
    removeFile(`${this.dir}/${fileName(id)}`);
  }

  /**
   * For GC: removes the empty files a writer killed between create and write
   * leaves (see createFile), and temporaries of writers that died before
   * their rename (see writeFileAtomic).
   */
  sweepEmpty(): void {
    for (const n of listDirIfExists(this.dir)) {
      const path = `${this.dir}/${n}`;
      if (orphanedTemporary(n)) removeFile(path);
      else if (n.endsWith('.json') && readFileIfExists(path) === '') removeFile(path);
    }
  }

  /**
   * Every record of this host; with `claim`, records of the old layout for
   * which it returns true are moved here first (those it cannot prove to be
   * this host's stay where another host may find them).
   */
  list(claim?: (r: R) => boolean): R[] {
    if (claim) {
      for (const n of listDirIfExists(this.legacyDir)) {
        if (!n.endsWith('.json')) continue;
        const r = this.parse(readFileIfExists(`${this.legacyDir}/${n}`));
        if (r && claim(r)) this.adopt(n);
      }
    }
    const out: R[] = [];
    for (const n of listDirIfExists(this.dir)) {
      const m = /^(.+)@(.+)\.json$/.exec(n);
      if (!m) continue;
      const r = this.parse(readFileIfExists(`${this.dir}/${n}`));
      if (r) out.push(r);
    }
    return out;
  }
}
