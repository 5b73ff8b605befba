// The names the executable answers to as a plugin, by the name a runtime
// execs, and the entry point each runs (paths from the repository root).
export const PLUGIN_NAMES = ['none', 'loopback', 'host', 'bridge', 'portmap', 'host-local', 'firewall', 'tuning', 'bandwidth', 'dnsname'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

export const PLUGIN_ENTRIES: Record<PluginName, string> = {
  none: './plugins/none/main.ts',
  loopback: './plugins/none/main.ts',
  host: './plugins/host/main.ts',
  bridge: './plugins/bridge/main.ts',
  portmap: './plugins/portmap/main.ts',
  'host-local': './ipam/host-local/main.ts',
  firewall: './plugins/firewall/main.ts',
  tuning: './plugins/tuning/main.ts',
  bandwidth: './plugins/bandwidth/main.ts',
  dnsname: './plugins/dnsname/main.ts',
};
export const CLI_ENTRY = './cli/main.ts';
/** VERSION of any plugin, answered without loading the plugin (see main.ts). */
export const VERSION_ENTRY = './lib/skel/version-main.ts';
/** Entry points the others import by their embedded path, only when needed (lib/sys embeddedModule). */
export const LAZY_ENTRIES: readonly string[] = ['./lib/log/pino.ts', VERSION_ENTRY];

export function isPlugin(name: string | undefined): name is PluginName {
  return name !== undefined && (PLUGIN_NAMES as readonly string[]).includes(name);
}
