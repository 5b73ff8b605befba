// cnikit's plugins as in-process implementations, for the chaining driver
// and the CLI. Loaded on demand. (An exec of a plugin does not come here:
// main.ts runs its entry point, plugins/<name>/main.ts.)
import type { Plugin } from '../lib/skel/index.ts';
import type { NetConf } from '../lib/spec/index.ts';
import { isPlugin, type PluginName } from './names.ts';

export { PLUGIN_NAMES, isPlugin } from './names.ts';

type Loader = () => Promise<Plugin<NetConf>>;

export const PLUGINS: Record<PluginName, Loader> = {
  none: async () => (await import('./none/index.ts')).nonePlugin,
  loopback: async () => (await import('./none/index.ts')).nonePlugin,
  host: async () => (await import('./host/index.ts')).hostPlugin,
  bridge: async () => (await import('./bridge/index.ts')).bridgePlugin,
  portmap: async () => (await import('./portmap/index.ts')).portmapPlugin,
  'host-local': async () => (await import('../ipam/host-local/index.ts')).hostLocalPlugin,
  firewall: async () => (await import('./firewall/index.ts')).firewallPlugin,
  tuning: async () => (await import('./tuning/index.ts')).tuningPlugin,
  bandwidth: async () => (await import('./bandwidth/index.ts')).bandwidthPlugin,
  dnsname: async () => (await import('./dnsname/index.ts')).dnsnamePlugin,
};

/** cnikit's own plugins as an in-process resolver for lib/invoke. */
export const ownPlugins = async (type: string): Promise<Plugin<NetConf> | undefined> => (isPlugin(type) ? PLUGINS[type]() : undefined);
