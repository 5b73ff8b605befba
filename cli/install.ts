// `cnikit install --dir /opt/cni/bin`: the one executable plus a link per
// plugin name, the way a runtime expects to find plugins in its CNI bin dir.
import { copyFileSync, chmodSync, lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PLUGIN_NAMES } from '../plugins/names.ts';

export interface InstallResult {
  executable: string;
  links: string[];
}

function isOurLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path) === 'cnikit';
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs `self` (the running executable) into dir. A plugin of the same
 * name that is not ours (e.g. the reference bridge) is replaced only with
 * `force`, so an install never silently swaps a runtime's plugins.
 */
export function install(self: string, dir: string, opts: { force?: boolean } = {}): InstallResult {
  mkdirSync(dir, { recursive: true });
  const foreign = PLUGIN_NAMES.filter((n) => exists(join(dir, n)) && !isOurLink(join(dir, n)));
  if (foreign.length > 0 && !opts.force) {
    throw new Error(`${dir} already has other plugins named ${foreign.join(', ')}; use --force to replace them`);
  }
  const exe = join(dir, 'cnikit');
  // Copy then rename: a runtime exec'ing the old file meanwhile is not disturbed.
  const tmp = `${exe}.tmp-${process.pid}`;
  copyFileSync(self, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, exe);
  const links: string[] = [];
  for (const name of PLUGIN_NAMES) {
    const link = join(dir, name);
    if (!isOurLink(link)) {
      rmSync(link, { force: true });
      symlinkSync('cnikit', link);
    }
    links.push(link);
  }
  return { executable: exe, links };
}
