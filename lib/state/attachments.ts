// One JSON record per attachment (network + container ID + ifname) under a
// plugin's data dir: what an ADD made, so that DEL and GC can undo it
// without the netns, the interface or the prevResult.
import { writeFileAtomic, createFile, rewriteFile } from './index.ts';
import { readFileIfExists, listDirIfExists, removeFile } from '../fs/index.ts';

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

/** `<dataDir>/<plugin>/<network>/<containerId>@<ifname>.json` */
export class AttachmentStore<R extends AttachmentId> {
  readonly dir: string;

  constructor(dataDir: string, plugin: string, network: string) {
    this.dir = `${dataDir}/${plugin}/${network}`;
  }

  read(id: AttachmentId): R | undefined {
    const text = readFileIfExists(`${this.dir}/${fileName(id)}`);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as R;
    } catch {
      // Writes are atomic, so this is damage from outside: treat it as absent.
      return undefined;
    }
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

  remove(id: AttachmentId): void {
    removeFile(`${this.dir}/${fileName(id)}`);
  }

  /** Removes the empty files a writer killed between create and write leaves (see createFile); for GC. */
  sweepEmpty(): void {
    for (const n of listDirIfExists(this.dir)) {
      if (!n.endsWith('.json')) continue;
      const path = `${this.dir}/${n}`;
      if (readFileIfExists(path) === '') removeFile(path);
    }
  }

  list(): R[] {
    const out: R[] = [];
    for (const n of listDirIfExists(this.dir)) {
      const m = /^(.+)@(.+)\.json$/.exec(n);
      if (!m) continue;
      const r = this.read({ containerId: m[1]!, ifname: m[2]! });
      if (r) out.push(r);
    }
    return out;
  }
}
