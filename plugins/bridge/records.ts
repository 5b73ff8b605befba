// What one ADD made, kept on disk per attachment (network + container ID +
// ifname), so DEL and GC can undo it without the netns, the interface or the
// prevResult — where the reference loses track of its masquerade rules.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, readFileIfExists } from '../../lib/state/index.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/cnikit';

export interface RecordIP {
  /** Container address with prefix length, e.g. 10.88.0.5/16. */
  address: string;
  gateway?: string;
}

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  bridge: string;
  hostVeth: string;
  netns?: string;
  ips: RecordIP[];
  /** The firewall backend that holds this attachment's masquerade rules. */
  masqBackend?: 'iptables' | 'nftables';
}

// '@' cannot occur in a container ID (skel validates them), so the name is unambiguous.
function fileName(containerId: string, ifname: string): string {
  return `${containerId}@${ifname}.json`;
}

export class RecordStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, 'bridge', network);
  }

  read(containerId: string, ifname: string): AttachmentRecord | undefined {
    const text = readFileIfExists(join(this.dir, fileName(containerId, ifname)));
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as AttachmentRecord;
    } catch {
      // An unreadable record is treated as absent; DEL then works from what it can see.
      return undefined;
    }
  }

  write(r: AttachmentRecord): void {
    writeFileAtomic(join(this.dir, fileName(r.containerId, r.ifname)), JSON.stringify(r));
  }

  remove(containerId: string, ifname: string): void {
    rmSync(join(this.dir, fileName(containerId, ifname)), { force: true });
  }

  list(): AttachmentRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: AttachmentRecord[] = [];
    for (const n of names) {
      const m = /^(.+)@(.+)\.json$/.exec(n);
      if (!m) continue;
      const r = this.read(m[1]!, m[2]!);
      if (r) out.push(r);
    }
    return out;
  }
}
