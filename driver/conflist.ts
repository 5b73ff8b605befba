// Network configuration lists as libcni loads them. A .conflist is a list; a
// single-plugin .conf/.json becomes a list of one. A list may take more
// plugins from `<dir>/<network name>/*.conf` unless loadOnlyInlinedPlugins.
// The version the plugins run with is the highest of cniVersion and
// cniVersions that cnikit speaks (SPEC "Version considerations").
import { readFileSync, readdirSync, type Dirent } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import type { NetConfList, PluginConf } from '../lib/spec/index.ts';
import { validationError } from '../lib/spec/index.ts';
import { validateNetConfList } from '../lib/spec/validators.gen.js';
import { keysNetConfList, keysNetConf } from '../lib/spec/keys.gen.js';
import { normalizeKeys } from '../lib/spec/keys.ts';
import { CniError, ErrorCode, SUPPORTED_VERSIONS, compareVersions } from '../lib/skel/index.ts';
import { isObject } from './json.ts';

/** A configuration that cannot be loaded: code 7, the message names the file and the field. */
export class ConfigError extends CniError {
  constructor(msg: string) {
    super(ErrorCode.InvalidConfig, msg);
  }
}

export interface LoadedList {
  conf: NetConfList;
  /** The list's bytes: libcni caches them with each result (a .conf is cached as the list it became). */
  bytes: Buffer;
  /** The version the plugins are run with. */
  version: string;
  file?: string;
}

/**
 * The highest version of cniVersion ∪ cniVersions that cnikit speaks. When
 * none is, cniVersion as written, so that the plugins refuse it with their
 * own code 1; without one, a config error.
 */
export function pickVersion(conf: Pick<NetConfList, 'name' | 'cniVersion' | 'cniVersions'>): string {
  const supported: readonly string[] = SUPPORTED_VERSIONS;
  const offered = [...(conf.cniVersions ?? []), ...(conf.cniVersion ? [conf.cniVersion] : [])];
  const spoken = offered.filter((v) => supported.includes(v)).sort(compareVersions);
  const best = spoken[spoken.length - 1];
  if (best) return best;
  if (conf.cniVersion) return conf.cniVersion;
  throw new ConfigError(`network ${conf.name}: no cniVersion, and none of cniVersions (${offered.join(', ') || 'none'}) is one cnikit speaks (${supported.join(', ')})`);
}

// libcni accepts "true"/"false" strings for these, so hand-written configs that
// quote them keep working; the schema then sees booleans.
const BOOLEAN_KEYS = ['disableCheck', 'disableGC', 'loadOnlyInlinedPlugins'] as const;

function normaliseBooleans(obj: Record<string, unknown>, where: string): void {
  for (const key of BOOLEAN_KEYS) {
    const v = obj[key];
    if (typeof v !== 'string') continue;
    const s = v.toLowerCase();
    if (s !== 'true' && s !== 'false') throw new ConfigError(`${where}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    obj[key] = s === 'true';
  }
}

function parseJson(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ConfigError(`${where}: not JSON: ${(e as Error).message}`);
  }
}

function confFiles(dir: string, extensions: readonly string[]): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return entries
    .filter((d) => !d.isDirectory() && extensions.includes(extname(d.name)))
    .map((d) => d.name)
    .sort()
    .map((n) => join(dir, n));
}

/** Plugin configs kept beside a list, in `<dir>/<network>/*.conf`, in name order. */
function siblingPlugins(dir: string, network: string): PluginConf[] {
  // The name is checked by the schema later; never let it leave the dir.
  if (network === '' || network === '.' || network === '..' || network.includes('/')) return [];
  return confFiles(join(dir, network), ['.conf']).map((file) => {
    const p = parseJson(readFileSync(file), file);
    if (!isObject(p) || typeof p.type !== 'string' || p.type === '') throw new ConfigError(`${file}: a plugin configuration needs a "type"`);
    return p as PluginConf;
  });
}

/**
 * Parses a list (or a single plugin config, which becomes a list of one).
 * `file` names it in errors and, for a list, is where sibling plugin configs
 * are looked for.
 */
export function parseList(bytes: Buffer, file?: string): LoadedList {
  const where = file ?? 'network configuration';
  const raw = parseJson(bytes, where);
  if (!isObject(raw)) throw new ConfigError(`${where}: a network configuration is a JSON object`);
  // Keys as libcni (Go's encoding/json) reads them: "Plugins", "CNIVersion"…
  normalizeKeys(raw, keysNetConfList);
  // A single plugin's config ("Type", no "Plugins") becomes a list of one below.
  if (!('plugins' in raw)) normalizeKeys(raw, keysNetConf);
  normaliseBooleans(raw, where);
  let list: Record<string, unknown>;
  let listBytes = bytes;
  if (!('plugins' in raw) && 'type' in raw && extname(file ?? '') !== '.conflist') {
    list = { cniVersion: raw.cniVersion, name: raw.name, plugins: [raw] };
    listBytes = Buffer.from(JSON.stringify(list));
  } else {
    list = raw;
    if (raw.loadOnlyInlinedPlugins === true && !('plugins' in raw)) {
      throw new ConfigError(`${where}: "loadOnlyInlinedPlugins" is true and there is no "plugins" list`);
    }
    if (file && raw.loadOnlyInlinedPlugins !== true && typeof raw.name === 'string') {
      const more = siblingPlugins(dirname(file), raw.name);
      if (more.length > 0) list = { ...raw, plugins: [...(Array.isArray(raw.plugins) ? raw.plugins : []), ...more] };
    }
  }
  const problem = validationError(validateNetConfList, list);
  if (problem) throw new ConfigError(`${where}: invalid network configuration list: ${problem}`);
  const conf = list as NetConfList;
  return { conf, bytes: listBytes, version: pickVersion(conf), ...(file ? { file } : {}) };
}

export function loadListFile(file: string): LoadedList {
  return parseList(readFileSync(file), file);
}

/**
 * Every loadable network of a config dir: *.conf, *.conflist and *.json
 * together in file name order, as Podman and containerd list them; a file
 * that does not load is skipped, and of two networks with one name the
 * first wins.
 */
export function loadDir(dir: string): LoadedList[] {
  const out: LoadedList[] = [];
  const seen = new Set<string>();
  for (const file of confFiles(dir, ['.conf', '.conflist', '.json'])) {
    try {
      const l = loadListFile(file);
      if (seen.has(l.conf.name)) continue;
      seen.add(l.conf.name);
      out.push(l);
    } catch {
      // A broken file must not hide the other networks.
    }
  }
  return out;
}

/**
 * The network `name` of a config dir by libcni's rules (LoadNetworkConf, what
 * cnitool uses): the *.conflist files first, in name order, then the *.conf
 * and *.json files; a file on the way that does not load is an error.
 */
export function findNetwork(dir: string, name: string): LoadedList {
  for (const extensions of [['.conflist'], ['.conf', '.json']]) {
    for (const file of confFiles(dir, extensions)) {
      const l = loadListFile(file);
      if (l.conf.name === name) return l;
    }
  }
  throw new ConfigError(`no net configuration with name "${name}" in ${dir}`);
}
