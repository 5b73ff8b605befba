// libcni's result cache, byte-compatible so that Podman, containerd and
// cnikit read each other's: <cacheDir>/results/<network>-<containerID>-<ifname>.
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { Result } from '../lib/spec/index.ts';
import { writeFileAtomic, readFileIfExists, listDirIfExists } from '../lib/state/index.ts';

export const DEFAULT_CACHE_DIR = '/var/lib/cni';
const KIND = 'cniCacheV1';

export interface CacheEntry {
  kind: typeof KIND;
  containerId: string;
  /** The conflist bytes, base64 (Go's []byte in JSON). */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Result;
}

export class ResultCache {
  constructor(private readonly dir: string) {}

  private path(network: string, containerId: string, ifname: string): string {
    return join(this.dir, 'results', `${network}-${containerId}-${ifname}`);
  }

  write(e: Omit<CacheEntry, 'kind'>): void {
    const entry: CacheEntry = { kind: KIND, ...e };
    writeFileAtomic(this.path(e.networkName, e.containerId, e.ifName), JSON.stringify(entry));
  }

  read(network: string, containerId: string, ifname: string): CacheEntry | undefined {
    const text = readFileIfExists(this.path(network, containerId, ifname));
    if (text === undefined) return undefined;
    try {
      const e = JSON.parse(text) as CacheEntry;
      return e.kind === KIND ? e : undefined;
    } catch {
      return undefined;
    }
  }

  remove(network: string, containerId: string, ifname: string): void {
    rmSync(this.path(network, containerId, ifname), { force: true });
  }

  /** Every cached attachment of a network (for GC). */
  list(network: string): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const name of listDirIfExists(join(this.dir, 'results'))) {
      if (!name.startsWith(`${network}-`)) continue;
      const text = readFileIfExists(join(this.dir, 'results', name));
      try {
        const e = text === undefined ? undefined : (JSON.parse(text) as CacheEntry);
        if (e?.kind === KIND && e.networkName === network) out.push(e);
      } catch {
        // not a cache entry
      }
    }
    return out;
  }
}
