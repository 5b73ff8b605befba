// libcni's result cache, in its format so that Podman, containerd and cnikit
// read each other's entries: <cacheDir>/results/<network>-<containerID>-<ifname>,
// a JSON object of kind "cniCacheV1", 0600 in a 0700 dir.
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { AnyResult } from '../lib/skel/result.ts';
import { writeFileAtomic } from '../lib/state/index.ts';
import { readFileIfExists, listDirIfExists } from '../lib/fs/index.ts';
import { isObject } from './json.ts';

export const DEFAULT_CACHE_DIR = '/var/lib/cni';
export const CACHE_KIND = 'cniCacheV1';

/** One attachment as libcni's cachedInfo holds it (same keys, same order, empty ones left out). */
export interface CacheEntry {
  kind: typeof CACHE_KIND;
  containerId: string;
  /** The list's bytes, base64 (Go's encoding of []byte). */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  /** The result of the ADD, in the list's version. */
  result?: AnyResult;
}

export type NewCacheEntry = Omit<CacheEntry, 'kind' | 'config'> & { config: Buffer };

/** A parsed file as a v1 entry, or undefined when it is not one. */
function asEntry(v: unknown): CacheEntry | undefined {
  if (!isObject(v) || v.kind !== CACHE_KIND) return undefined;
  if (typeof v.containerId !== 'string' || typeof v.ifName !== 'string' || typeof v.networkName !== 'string') return undefined;
  return v as unknown as CacheEntry;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class ResultCache {
  constructor(readonly dir: string) {}

  private file(network: string, containerId: string, ifname: string): string {
    // Callers validate these names; this keeps a bad one from leaving the dir.
    for (const part of [network, containerId, ifname]) {
      if (part === '' || part.includes('/') || part === '.' || part === '..') throw new Error(`invalid cache key part ${JSON.stringify(part)}`);
    }
    return join(this.dir, 'results', `${network}-${containerId}-${ifname}`);
  }

  write(e: NewCacheEntry): void {
    // Built key by key: the order is Go's struct order, omitempty left out.
    const entry: CacheEntry = { kind: CACHE_KIND, containerId: e.containerId, config: e.config.toString('base64'), ifName: e.ifName, networkName: e.networkName };
    if (e.netns) entry.netns = e.netns;
    if (e.cniArgs && e.cniArgs.length > 0) entry.cniArgs = e.cniArgs;
    if (e.capabilityArgs && Object.keys(e.capabilityArgs).length > 0) entry.capabilityArgs = e.capabilityArgs;
    if (e.result) entry.result = e.result;
    writeFileAtomic(this.file(e.networkName, e.containerId, e.ifName), JSON.stringify(entry));
  }

  /**
   * The entry of one attachment. A file from before cniCacheV1 (the bare
   * result) is read as an entry with only the result, as libcni does; an
   * unreadable one as none, so that a DEL can still go ahead.
   */
  read(network: string, containerId: string, ifname: string): CacheEntry | undefined {
    const text = readFileIfExists(this.file(network, containerId, ifname));
    if (text === undefined) return undefined;
    const v = parse(text);
    const entry = asEntry(v);
    if (entry) return entry;
    if (isObject(v) && typeof v.cniVersion === 'string' && !('kind' in v)) {
      return { kind: CACHE_KIND, containerId, config: '', ifName: ifname, networkName: network, result: v as unknown as AnyResult };
    }
    return undefined;
  }

  remove(network: string, containerId: string, ifname: string): void {
    rmSync(this.file(network, containerId, ifname), { force: true });
  }

  /**
   * Cached attachments in file name order (libcni's GetCachedAttachments):
   * only v1 entries naming a network and an interface; of one network when
   * `network` is given.
   */
  list(network?: string): CacheEntry[] {
    const dir = join(this.dir, 'results');
    const out: CacheEntry[] = [];
    for (const name of listDirIfExists(dir).sort()) {
      if (network !== undefined && !name.startsWith(`${network}-`)) continue;
      let text: string | undefined;
      try {
        text = readFileIfExists(join(dir, name));
      } catch {
        continue; // e.g. a directory
      }
      const e = text === undefined ? undefined : asEntry(parse(text));
      if (!e || e.ifName === '' || e.networkName === '') continue;
      if (network !== undefined && e.networkName !== network) continue;
      out.push(e);
    }
    return out;
  }
}
