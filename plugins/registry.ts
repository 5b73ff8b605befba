// Every plugin the executable answers to, by the name a runtime execs.
// Loaded on demand so an invocation parses only its own plugin's code.
import type { Plugin } from '../lib/skel/index.ts';
import type { NetConf } from '../lib/spec/index.ts';

type Loader = () => Promise<Plugin<NetConf>>;

export const PLUGINS: Record<string, Loader> = {
  none: async () => (await import('./none/index.ts')).nonePlugin,
  loopback: async () => (await import('./none/index.ts')).nonePlugin,
  host: async () => (await import('./host/index.ts')).hostPlugin,
  bridge: async () => (await import('./bridge/index.ts')).bridgePlugin,
  portmap: async () => (await import('./portmap/index.ts')).portmapPlugin,
  'host-local': async () => (await import('../ipam/host-local/index.ts')).hostLocalPlugin,
};

export const PLUGIN_NAMES = Object.keys(PLUGINS);

export function isPlugin(name: string | undefined): name is string {
  return name !== undefined && Object.hasOwn(PLUGINS, name);
}

/** cnikit's own plugins as an in-process resolver for lib/invoke. */
export const ownPlugins = async (type: string): Promise<Plugin<NetConf> | undefined> => (isPlugin(type) ? PLUGINS[type]!() : undefined);
