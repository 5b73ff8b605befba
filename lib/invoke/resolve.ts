// Which plugins of a chain cnikit runs in its own process. In-process is an
// optimisation of exec'ing cnikit's own executable, so it must not change
// which plugin runs: a type that CNI_PATH resolves to another binary (the
// reference bridge in /usr/lib/cni, say) is exec'd; one that CNI_PATH
// resolves to cnikit, or does not have at all, runs in-process.
import { realPath, basename } from '../fs/index.ts';
import { sys } from '../sys/index.ts';
import { findPlugin, type InProcessResolver } from './index.ts';

function sameFile(a: string, b: string): boolean {
  try {
    const x = sys.stat(a);
    const y = sys.stat(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

/** True when `file` is cnikit's multi-call executable (dist/bin and installed links point to it). */
export function isCnikitExecutable(file: string): boolean {
  // Under Bun's compiled executable, the running process is cnikit itself (two
  // stat calls, where resolving both paths link by link takes a dozen); under
  // Node (development, tests) the built one is still called `cnikit`.
  if (sameFile(file, '/proc/self/exe')) return true;
  const real = realPath(file);
  return real !== undefined && basename(real) === 'cnikit';
}

/** `own` (cnikit's plugins), unless CNI_PATH finds another binary of that name first. */
export function ownPluginsUnlessShadowed(cniPath: string[], own: InProcessResolver): InProcessResolver {
  return async (type) => {
    let found: string | undefined;
    try {
      found = findPlugin(type, cniPath);
    } catch {
      found = undefined;
    }
    if (found !== undefined && !isCnikitExecutable(found)) return undefined;
    return own(type);
  };
}
