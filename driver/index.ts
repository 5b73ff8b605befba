// The chaining driver: what libcni does for Go runtimes. Runs a network
// configuration list, each plugin with the derived config (name, version,
// runtimeConfig of its declared capabilities, prevResult), caches the result
// in libcni's format, and runs DEL in reverse, CHECK, GC and STATUS.
import type { NetConf, Result, Attachment, PluginConf } from '../lib/spec/index.ts';
import { CniError, ErrorCode, compareVersions, toCurrent, type Command } from '../lib/skel/index.ts';
import { delegate, type InProcessResolver, type Invocation } from '../lib/invoke/index.ts';
import { PLUGINS, isPlugin } from '../plugins/registry.ts';
import { ResultCache, DEFAULT_CACHE_DIR } from './cache.ts';
import type { LoadedList } from './conflist.ts';

export { loadListFile, loadDir, findNetwork, parseList, pickVersion, ConfigError, type LoadedList } from './conflist.ts';
export { ResultCache, DEFAULT_CACHE_DIR, type CacheEntry } from './cache.ts';

export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs. */
  args?: [string, string][];
  /** Capability arguments (portMappings, ips, mac, …), given to the plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

export interface DriverOptions {
  cniPath: string[];
  cacheDir?: string;
  /** cnikit's own plugins run in-process unless this says otherwise. */
  inProcess?: InProcessResolver | false;
  /** Per plugin exec. */
  timeoutMs?: number;
}

const ownPlugins: InProcessResolver = async (type) => (isPlugin(type) ? PLUGINS[type]!() : undefined);

/** The config one plugin of the list gets on stdin (SPEC: derived request configuration). */
export function pluginConfig(list: LoadedList, plugin: PluginConf, rt: RuntimeConf | undefined, prevResult: Result | undefined): NetConf {
  const { capabilities, ...rest } = plugin;
  const conf: NetConf = { ...rest, name: list.conf.name, cniVersion: list.version, type: plugin.type };
  if (capabilities) conf.capabilities = capabilities;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(capabilities ?? {})) {
    const value = rt?.capabilityArgs?.[cap];
    if (on && value !== undefined) runtimeConfig[cap] = value;
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult) conf.prevResult = prevResult;
  return conf;
}

function describe(plugin: PluginConf): string {
  return plugin.type;
}

export class Driver {
  private readonly cache: ResultCache;
  private readonly inProcess: InProcessResolver | undefined;

  constructor(private readonly opts: DriverOptions) {
    this.cache = new ResultCache(opts.cacheDir ?? DEFAULT_CACHE_DIR);
    this.inProcess = opts.inProcess === false ? undefined : (opts.inProcess ?? ownPlugins);
  }

  private invocation(command: Command, rt?: RuntimeConf): Invocation {
    return {
      command,
      containerId: rt?.containerId,
      netns: rt?.netns,
      ifname: rt?.ifname,
      args: rt?.args?.map(([k, v]) => `${k}=${v}`).join(';'),
      path: this.opts.cniPath,
    };
  }

  private async run(command: Command, list: LoadedList, plugin: PluginConf, rt: RuntimeConf | undefined, prev?: Result, extra: Record<string, unknown> = {}): Promise<unknown> {
    const conf = { ...pluginConfig(list, plugin, rt, prev), ...extra } as NetConf;
    try {
      return await delegate(conf, this.invocation(command, rt), { inProcess: this.inProcess, timeoutMs: this.opts.timeoutMs });
    } catch (e) {
      if (e instanceof CniError) throw new CniError(e.code, `plugin ${describe(plugin)} failed (${command.toLowerCase()}): ${e.message.replace(/^plugin \S+: /, '')}`, e.details);
      throw e;
    }
  }

  /** ADD through the list; on a failure, what the earlier plugins did is deleted (reverse order) before the error is thrown. */
  async add(list: LoadedList, rt: RuntimeConf): Promise<Result> {
    let result: Result | undefined;
    const done: PluginConf[] = [];
    try {
      for (const plugin of list.conf.plugins) {
        const out = await this.run('ADD', list, plugin, rt, result);
        result = out && typeof out === 'object' ? toCurrent(out as Result) : result;
        done.push(plugin);
      }
    } catch (e) {
      for (const plugin of done.reverse()) {
        try {
          await this.run('DEL', list, plugin, rt, result);
        } catch {
          // The ADD error is what the caller needs; a later DEL can retry.
        }
      }
      throw e;
    }
    const final = { ...(result ?? { cniVersion: list.version }), cniVersion: list.version };
    this.cache.write({
      containerId: rt.containerId,
      config: list.bytes.toString('base64'),
      ifName: rt.ifname,
      networkName: list.conf.name,
      netns: rt.netns,
      ...(rt.args ? { cniArgs: rt.args } : {}),
      ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
      result: final,
    });
    return final;
  }

  /** The cached result of an attachment, if any. */
  cached(list: LoadedList, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): Result | undefined {
    return this.cache.read(list.conf.name, rt.containerId, rt.ifname)?.result;
  }

  /** DEL in reverse order with the cached result as prevResult (or none); then the cache entry goes. */
  async del(list: LoadedList, rt: RuntimeConf): Promise<void> {
    const entry = this.cache.read(list.conf.name, rt.containerId, rt.ifname);
    const prev = entry?.result;
    const capabilityArgs = rt.capabilityArgs ?? entry?.capabilityArgs;
    const withCaps = capabilityArgs ? { ...rt, capabilityArgs } : rt;
    for (const plugin of [...list.conf.plugins].reverse()) await this.run('DEL', list, plugin, withCaps, prev);
    this.cache.remove(list.conf.name, rt.containerId, rt.ifname);
  }

  async check(list: LoadedList, rt: RuntimeConf): Promise<void> {
    if (list.conf.disableCheck) return;
    if (compareVersions(list.version, '0.4.0') < 0) throw new CniError(ErrorCode.IncompatibleVersion, `network ${list.conf.name}: CHECK needs version 0.4.0 or later, not ${list.version}`);
    const entry = this.cache.read(list.conf.name, rt.containerId, rt.ifname);
    if (!entry?.result) throw new CniError(ErrorCode.CheckFailed, `no cached result for ${rt.containerId} (${rt.ifname}) on network ${list.conf.name}`);
    const withCaps = entry.capabilityArgs ? { ...rt, capabilityArgs: rt.capabilityArgs ?? entry.capabilityArgs } : rt;
    for (const plugin of list.conf.plugins) await this.run('CHECK', list, plugin, withCaps, entry.result);
  }

  /**
   * GC as libcni: a DEL for every cached attachment of the network that is
   * not valid, then the GC verb to every plugin with the valid list.
   */
  async gc(list: LoadedList, valid: Attachment[]): Promise<void> {
    if (list.conf.disableGC) return;
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    for (const e of this.cache.list(list.conf.name)) {
      if (keep.has(`${e.containerId}\0${e.ifName}`)) continue;
      await this.del(list, { containerId: e.containerId, ifname: e.ifName, netns: e.netns ?? '', ...(e.cniArgs ? { args: e.cniArgs } : {}), ...(e.capabilityArgs ? { capabilityArgs: e.capabilityArgs } : {}) });
    }
    if (compareVersions(list.version, '1.1.0') < 0) return;
    for (const plugin of list.conf.plugins) await this.run('GC', list, plugin, undefined, undefined, { 'cni.dev/valid-attachments': valid });
  }

  async status(list: LoadedList): Promise<void> {
    if (compareVersions(list.version, '1.1.0') < 0) return;
    for (const plugin of list.conf.plugins) await this.run('STATUS', list, plugin, undefined);
  }
}
