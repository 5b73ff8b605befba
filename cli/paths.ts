// Where the CLI keeps things; each can be moved by an environment variable
// (the tests put all of them under their lab's temporary dir).
export interface Paths {
  /** Network conflists (CNI's /etc/cni/net.d, read by Podman and containerd too). */
  configDir: string;
  /** The lab's containers. */
  stateDir: string;
  /** libcni's result cache. */
  cacheDir: string;
  /** When set, the plugins' data dirs (leases, records) of networks created from here. */
  dataDir?: string;
  cniPath: string[];
  /** CNIKIT_EXEC_PLUGINS=1: exec every plugin from CNI_PATH, cnikit's own too (e.g. to drive the reference plugins). */
  execPlugins: boolean;
}

export function paths(): Paths {
  const env = process.env;
  const p: Paths = {
    configDir: env.CNIKIT_CONFIG_DIR ?? '/etc/cni/net.d',
    stateDir: env.CNIKIT_STATE_DIR ?? '/var/lib/cnikit',
    cacheDir: env.CNIKIT_CACHE_DIR ?? '/var/lib/cni',
    cniPath: (env.CNI_PATH ?? '/opt/cni/bin').split(':').filter(Boolean),
    execPlugins: env.CNIKIT_EXEC_PLUGINS === '1',
  };
  if (env.CNIKIT_DATA_DIR) p.dataDir = env.CNIKIT_DATA_DIR;
  return p;
}
