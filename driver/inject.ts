// The configuration each plugin of a list gets on stdin (SPEC "Deriving
// execution configuration from plugin configuration"): the list's name and
// version, a runtimeConfig holding only the capability arguments the plugin
// declares, and the previous plugin's result.
import type { NetConf, PluginConf, Attachment } from '../lib/spec/index.ts';
import type { AnyResult } from '../lib/skel/result.ts';

export interface Injected {
  /** The list's name. */
  name: string;
  /** The version picked for the list. */
  cniVersion: string;
  prevResult?: AnyResult;
  /** What the runtime passes (portMappings, ips, mac, …); filtered by the plugin's capabilities. */
  capabilityArgs?: Record<string, unknown>;
}

/** The capability arguments a plugin declares (capabilities.X: true) and the runtime gave, or undefined. */
export function runtimeConfigFor(capabilities: PluginConf['capabilities'], capabilityArgs: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const rc: Record<string, unknown> = {};
  for (const [cap, declared] of Object.entries(capabilities ?? {})) {
    const value = capabilityArgs?.[cap];
    if (declared && value !== undefined && value !== null) rc[cap] = value;
  }
  return Object.keys(rc).length > 0 ? rc : undefined;
}

/**
 * One plugin's stdin. A runtimeConfig written in the file is replaced only
 * when the runtime has capability arguments for the plugin, as libcni does.
 */
export function pluginConfig(plugin: PluginConf, inject: Injected): NetConf {
  const conf: NetConf = { ...plugin, name: inject.name, cniVersion: inject.cniVersion };
  if (inject.prevResult) conf.prevResult = { ...inject.prevResult };
  const rc = runtimeConfigFor(plugin.capabilities, inject.capabilityArgs);
  if (rc) conf.runtimeConfig = rc;
  return conf;
}

/**
 * A plugin's GC stdin: no runtimeConfig or prevResult, the valid attachments
 * under the spec's key and under `cni.dev/attachments`, the name an earlier
 * SPEC text gave it, which plugins built against it read.
 */
export function gcConfig(plugin: PluginConf, name: string, cniVersion: string, valid: Attachment[]): NetConf {
  return { ...plugin, name, cniVersion, 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid };
}
