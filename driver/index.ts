// The chaining driver: what libcni does for Go runtimes. Runs a network
// configuration list plugin by plugin (exec'd from CNI_PATH, or cnikit's own
// in-process), keeps libcni's result cache, undoes a failed ADD, and runs
// DEL in reverse, CHECK, GC and STATUS.
import type { NetConf, Result, Attachment, PluginConf } from '../lib/spec/index.ts';
import { CniError, ErrorCode, compareVersions, toCurrent, convertResult, validateContainerId, validateIfname, type Command } from '../lib/skel/index.ts';
import type { AnyResult } from '../lib/skel/result.ts';
import { delegate, type InProcessResolver, type Invocation } from '../lib/invoke/index.ts';
import { ResultCache, DEFAULT_CACHE_DIR, type CacheEntry } from './cache.ts';
import { isObject } from './json.ts';
import { pluginConfig, gcConfig, type Injected } from './inject.ts';
import { ownPluginsUnlessShadowed } from '../lib/invoke/resolve.ts';
import { ownPlugins } from '../plugins/registry.ts';
import type { LoadedList } from './conflist.ts';

export { loadListFile, loadDir, findNetwork, parseList, pickVersion, ConfigError, type LoadedList } from './conflist.ts';
export { ResultCache, DEFAULT_CACHE_DIR, CACHE_KIND, type CacheEntry } from './cache.ts';
export { pluginConfig, gcConfig, runtimeConfigFor, type Injected } from './inject.ts';
export { ownPluginsUnlessShadowed, isCnikitExecutable } from '../lib/invoke/resolve.ts';
export { ownPlugins } from '../plugins/registry.ts';

/** What a runtime passes for one attachment (libcni's RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  /** The netns path; may be empty on DEL when the namespace is gone. */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs. */
  args?: [string, string][];
  /** Capability arguments (portMappings, ips, mac, …), given only to the plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

export interface DriverOptions {
  /** CNI_PATH: where plugins are looked for, in order. */
  cniPath: string[];
  /** Holds results/ (libcni's cache). Default /var/lib/cni. */
  cacheDir?: string;
  /**
   * Which plugins run in this process. Default: cnikit's own, unless CNI_PATH
   * resolves the type to some other binary first. `false`: exec them all.
   */
  inProcess?: InProcessResolver | false;
  /** Kills an exec'd plugin that runs longer (in-process plugins cannot be killed). */
  timeoutMs?: number;
}

/** libcni's way of naming a plugin in an error: its type, and its own name when it has one. */
export function describePlugin(plugin: PluginConf): string {
  return typeof plugin.name === 'string' && plugin.name !== '' ? `type="${plugin.type}" name="${plugin.name}"` : `type="${plugin.type}"`;
}

const VERB: Record<Command, string> = { ADD: 'add', DEL: 'delete', CHECK: 'check', GC: 'gc', STATUS: 'status', VERSION: 'version' };

/** The plugin's error with the plugin named and its code kept. */
function pluginError(command: Command, plugin: PluginConf, e: unknown): CniError {
  // lib/invoke starts its messages with "plugin <type>"; say it once, libcni's way.
  const msg = (e instanceof Error ? e.message : String(e)).replace(new RegExp(`^plugin ${escapeRegExp(plugin.type)}:? `), '');
  const code = e instanceof CniError ? e.code : ErrorCode.Internal;
  return new CniError(code, `plugin ${describePlugin(plugin)} failed (${VERB[command]}): ${msg}`, e instanceof CniError ? e.details : undefined);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function validateRuntime(list: LoadedList, rt: RuntimeConf, needNetns: boolean): void {
  validateContainerId(rt.containerId);
  validateIfname(rt.ifname);
  if (needNetns && !rt.netns) throw new CniError(ErrorCode.InvalidEnvironment, `network ${list.conf.name}: a netns path is required`);
}

/** A result in the list's version, whatever version the plugin printed or the cache held. */
function inVersion(r: AnyResult, version: string): AnyResult {
  return convertResult(toCurrent(r), version);
}

/** A plugin's ADD output as a result in the list's version; what is not one is the plugin's error. */
function readResult(out: unknown, plugin: PluginConf, version: string): AnyResult {
  if (!isObject(out) || typeof out.cniVersion !== 'string') {
    throw pluginError('ADD', plugin, new CniError(ErrorCode.DecodingFailure, 'returned no result'));
  }
  try {
    return inVersion(out as unknown as AnyResult, version);
  } catch (e) {
    throw pluginError('ADD', plugin, new CniError(ErrorCode.DecodingFailure, `returned a result that cannot be read: ${(e as Error).message}`));
  }
}

export class Driver {
  readonly cache: ResultCache;
  private readonly inProcess: InProcessResolver | undefined;

  constructor(private readonly opts: DriverOptions) {
    this.cache = new ResultCache(opts.cacheDir ?? DEFAULT_CACHE_DIR);
    this.inProcess = opts.inProcess === false ? undefined : (opts.inProcess ?? ownPluginsUnlessShadowed(opts.cniPath, ownPlugins));
  }

  private invocation(command: Command, rt?: RuntimeConf): Invocation {
    const inv: Invocation = { command, path: this.opts.cniPath };
    if (rt) {
      inv.containerId = rt.containerId;
      inv.netns = rt.netns;
      inv.ifname = rt.ifname;
      if (rt.args?.length) inv.args = rt.args.map(([k, v]) => `${k}=${v}`).join(';');
    }
    return inv;
  }

  /** One plugin, one command; errors name the plugin and keep its code. */
  private async run(command: Command, plugin: PluginConf, conf: NetConf, rt?: RuntimeConf): Promise<unknown> {
    try {
      return await delegate(conf, this.invocation(command, rt), { inProcess: this.inProcess, timeoutMs: this.opts.timeoutMs });
    } catch (e) {
      throw pluginError(command, plugin, e);
    }
  }

  private inject(list: LoadedList, rt: RuntimeConf | undefined, prevResult?: AnyResult): Injected {
    const inj: Injected = { name: list.conf.name, cniVersion: list.version };
    if (prevResult) inj.prevResult = prevResult;
    if (rt?.capabilityArgs) inj.capabilityArgs = rt.capabilityArgs;
    return inj;
  }

  /**
   * ADD through the list in order, each plugin getting the previous result.
   * The first failure stops it: the plugins run so far (the failing one
   * included, DEL being idempotent) get a DEL in reverse order, then the
   * error is thrown. On success the result is cached (libcni's format) and
   * returned in the 1.1.0 shape; the cache holds it in the list's version.
   */
  async add(list: LoadedList, rt: RuntimeConf): Promise<Result> {
    validateRuntime(list, rt, true);
    const plugins = list.conf.plugins;
    let result: AnyResult | undefined;
    let ran = 0;
    try {
      for (const plugin of plugins) {
        ran++;
        const out = await this.run('ADD', plugin, pluginConfig(plugin, this.inject(list, rt, result)), rt);
        result = readResult(out, plugin, list.version);
      }
      this.cache.write({
        containerId: rt.containerId,
        config: list.bytes,
        ifName: rt.ifname,
        networkName: list.conf.name,
        netns: rt.netns,
        ...(rt.args ? { cniArgs: rt.args } : {}),
        ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
        ...(result ? { result } : {}),
      });
    } catch (e) {
      await this.undo(list, plugins.slice(0, ran), rt, result);
      throw e;
    }
    return toCurrent(result ?? { cniVersion: list.version });
  }

  private async undo(list: LoadedList, ran: PluginConf[], rt: RuntimeConf, result: AnyResult | undefined): Promise<void> {
    for (const plugin of [...ran].reverse()) {
      try {
        await this.run('DEL', plugin, pluginConfig(plugin, this.inject(list, rt, result)), rt);
      } catch {
        // The ADD's error is the one to report; a later DEL or GC retries.
      }
    }
  }

  /** The cached result of an attachment in the 1.1.0 shape, if any. */
  cached(list: LoadedList, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): Result | undefined {
    const r = this.cache.read(list.conf.name, rt.containerId, rt.ifname)?.result;
    return r ? toCurrent(r) : undefined;
  }

  /**
   * The cache entry with its result in the list's version, and the runtime
   * arguments with CNI_ARGS and capability arguments taken from the cache
   * when the caller gives none (libcni's GetNetworkListCachedConfig, which
   * runtimes apply before DEL and CHECK).
   */
  private fromCache(list: LoadedList, rt: RuntimeConf): { entry: CacheEntry | undefined; prev: AnyResult | undefined; rt: RuntimeConf } {
    const entry = this.cache.read(list.conf.name, rt.containerId, rt.ifname);
    let prev: AnyResult | undefined;
    // Results reach DEL and CHECK from 0.4.0 on.
    if (entry?.result && compareVersions(list.version, '0.4.0') >= 0) {
      try {
        prev = inVersion(entry.result, list.version);
      } catch {
        prev = undefined; // a result that cannot be read is no result
      }
    }
    const withCache: RuntimeConf = { ...rt };
    const args = rt.args ?? entry?.cniArgs;
    const capabilityArgs = rt.capabilityArgs ?? entry?.capabilityArgs;
    if (args) withCache.args = args;
    if (capabilityArgs) withCache.capabilityArgs = capabilityArgs;
    return { entry, prev, rt: withCache };
  }

  /**
   * DEL through the list in reverse, with the cached result as prevResult
   * (none when there is no cache entry: plugins' DEL must cope). The first
   * failure stops it and keeps the cache entry for a retry; on success the
   * entry goes.
   */
  async del(list: LoadedList, rt: RuntimeConf): Promise<void> {
    validateRuntime(list, rt, false);
    const { prev, rt: full } = this.fromCache(list, rt);
    for (const plugin of [...list.conf.plugins].reverse()) {
      await this.run('DEL', plugin, pluginConfig(plugin, this.inject(list, full, prev)), full);
    }
    this.cache.remove(list.conf.name, rt.containerId, rt.ifname);
  }

  /** CHECK through the list in order against the cached result; nothing when the list says disableCheck. */
  async check(list: LoadedList, rt: RuntimeConf): Promise<void> {
    if (compareVersions(list.version, '0.4.0') < 0) {
      throw new CniError(ErrorCode.IncompatibleVersion, `network ${list.conf.name}: configuration version "${list.version}" does not support the CHECK command`);
    }
    if (list.conf.disableCheck) return;
    validateRuntime(list, rt, true);
    const { prev, rt: full } = this.fromCache(list, rt);
    if (!prev) throw new CniError(ErrorCode.UnknownContainer, `network ${list.conf.name}: no cached result for container ${rt.containerId} (${rt.ifname}): was it added?`);
    for (const plugin of list.conf.plugins) {
      await this.run('CHECK', plugin, pluginConfig(plugin, this.inject(list, full, prev)), full);
    }
  }

  /**
   * GC as libcni does it: a DEL for every cached attachment of the network
   * that is not in `valid`, then (from 1.1.0) the GC verb to every plugin
   * with the valid list. Failures do not stop the rest; they are thrown
   * together at the end, with the first one's code. Nothing when the list
   * says disableGC.
   */
  async gc(list: LoadedList, valid: Attachment[]): Promise<void> {
    if (list.conf.disableGC) return;
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    const errors: CniError[] = [];
    for (const e of this.cache.list(list.conf.name)) {
      if (keep.has(`${e.containerId}\0${e.ifName}`)) continue;
      const rt: RuntimeConf = { containerId: e.containerId, ifname: e.ifName, netns: e.netns ?? '' };
      if (e.cniArgs) rt.args = e.cniArgs;
      if (e.capabilityArgs) rt.capabilityArgs = e.capabilityArgs;
      try {
        await this.del(list, rt);
      } catch (err) {
        const c = err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
        errors.push(new CniError(c.code, `failed to delete stale attachment ${e.containerId} ${e.ifName}: ${c.message}`, c.details));
      }
    }
    if (compareVersions(list.version, '1.1.0') >= 0) {
      for (const plugin of list.conf.plugins) {
        try {
          await this.run('GC', plugin, gcConfig(plugin, list.conf.name, list.version, valid));
        } catch (err) {
          errors.push(err as CniError);
        }
      }
    }
    if (errors.length > 0) throw new CniError(errors[0]!.code, errors.map((e) => e.message).join('; '), errors[0]!.details);
  }

  /** STATUS of every plugin in order (from 1.1.0); the first one not ready is thrown with its code (50, 51, …). */
  async status(list: LoadedList): Promise<void> {
    if (compareVersions(list.version, '1.1.0') < 0) return;
    for (const plugin of list.conf.plugins) {
      await this.run('STATUS', plugin, pluginConfig(plugin, { name: list.conf.name, cniVersion: list.version }));
    }
  }
}
