// Network configuration lists as libcni loads them: a .conflist file, or a
// single-plugin .conf/.json turned into a list of one; from a config dir, the
// first file (in name order) whose network has the name asked for.
import { readFileSync, readdirSync } from 'node:fs';
import { join, extname } from 'node:path';
import type { NetConfList } from '../lib/spec/index.ts';
import { validationError } from '../lib/spec/index.ts';
import { validateNetConfList } from '../lib/spec/validators.gen.js';
import { SUPPORTED_VERSIONS, compareVersions } from '../lib/skel/index.ts';

export class ConfigError extends Error {}

export interface LoadedList {
  conf: NetConfList;
  /** The bytes as read: libcni caches them with each result. */
  bytes: Buffer;
  /** The version the plugins are run with. */
  version: string;
  file?: string;
}

/** The highest of cniVersions cnikit speaks, else cniVersion (libcni's rule). */
export function pickVersion(conf: NetConfList): string {
  const supported: readonly string[] = SUPPORTED_VERSIONS;
  const spoken = (conf.cniVersions ?? []).filter((v) => supported.includes(v)).sort(compareVersions);
  const best = spoken[spoken.length - 1];
  if (best) return best;
  if (conf.cniVersion) return conf.cniVersion;
  throw new ConfigError(`network ${conf.name}: no cniVersion, and none of cniVersions (${(conf.cniVersions ?? []).join(', ')}) is supported`);
}

export function parseList(bytes: Buffer, file?: string): LoadedList {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ConfigError(`${file ?? 'config'}: not JSON: ${(e as Error).message}`);
  }
  const obj = raw as Record<string, unknown>;
  // A single plugin config (.conf) is a list of one.
  const list = obj && typeof obj === 'object' && !('plugins' in obj) && 'type' in obj
    ? { cniVersion: obj.cniVersion, name: obj.name, plugins: [obj] }
    : obj;
  const problem = validationError(validateNetConfList, list);
  if (problem) throw new ConfigError(`${file ?? 'config'}: invalid network configuration list: ${problem}`);
  const conf = list as NetConfList;
  return { conf, bytes, version: pickVersion(conf), ...(file ? { file } : {}) };
}

export function loadListFile(file: string): LoadedList {
  return parseList(readFileSync(file), file);
}

const EXTENSIONS = new Set(['.conf', '.conflist', '.json']);

/** Every loadable list in a config dir, in libcni's (file name) order; unreadable files are skipped. */
export function loadDir(dir: string): LoadedList[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => EXTENSIONS.has(extname(n))).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: LoadedList[] = [];
  for (const n of names) {
    try {
      out.push(loadListFile(join(dir, n)));
    } catch {
      // libcni skips what it cannot load
    }
  }
  return out;
}

export function findNetwork(dir: string, name: string): LoadedList {
  const found = loadDir(dir).find((l) => l.conf.name === name);
  if (!found) throw new ConfigError(`no network named ${name} in ${dir}`);
  return found;
}
