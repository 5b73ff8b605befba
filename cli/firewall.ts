// `cnikit firewall reload`: every rule of every live attachment back from the
// plugins' records, after something else flushed them (`nft flush ruleset`,
// a firewalld reload, an iptables service restart). Idempotent: run it as
// often as such a reload happens (see README, "Firewall reloads").
import type { Command } from 'commander';
import { join } from 'node:path';
import { loadDir } from '../driver/index.ts';
import { DEFAULT_DATA_DIR } from '../lib/state/attachments.ts';
import { openFirewall, addMacSpoofCheck } from '../lib/firewall/index.ts';
import { reloadForwardAccepts } from '../lib/firewall/forward.ts';
import { reloadNftIngress } from '../lib/firewall/ingress-nft.ts';
import { collectLive } from '../plugins/live.ts';
import { paths } from './paths.ts';

interface ReloadOptions {
  dataDir: string[];
  configDir: string;
  quiet?: boolean;
}

/** Where records are: the default data dir, the CLI's, --data-dir, and every dataDir a network of the config dir names. */
export function recordDirs(configDir: string, extra: readonly string[]): string[] {
  const dirs = [DEFAULT_DATA_DIR, ...extra];
  const own = paths().dataDir;
  if (own) dirs.push(join(own, 'plugins'));
  for (const list of loadDir(configDir)) {
    for (const p of list.conf.plugins as { type?: string; dataDir?: unknown }[]) {
      if ((p.type === 'bridge' || p.type === 'portmap' || p.type === 'firewall') && typeof p.dataDir === 'string') dirs.push(p.dataDir);
    }
  }
  return [...new Set(dirs)];
}

export interface ReloadReport {
  live: number;
  stale: number;
  backends: string[];
  errors: string[];
}

export function reloadFirewall(dirs: readonly string[]): ReloadReport {
  const live = collectLive(dirs);
  const report: ReloadReport = { live: live.live, stale: live.stale.length, backends: [], errors: [] };
  for (const [backend, ops] of live.ops) {
    try {
      openFirewall(backend).reload(ops);
      report.backends.push(`${backend} (${ops.length} operations)`);
    } catch (e) {
      report.errors.push(`${backend}: ${(e as Error).message}`);
    }
  }
  // After the NAT rules: a FORWARD accept is only of use to a connection they let in.
  if (live.forward.length > 0) {
    try {
      reloadForwardAccepts(live.forward);
      report.backends.push(`iptables FORWARD accepts (${live.forward.length} attachment(s))`);
    } catch (e) {
      report.errors.push(`FORWARD accepts: ${(e as Error).message}`);
    }
  }
  if (live.ingress.length > 0) {
    try {
      reloadNftIngress(live.ingress);
      report.backends.push(`nftables ingress policies (${live.ingress.length} attachment(s))`);
    } catch (e) {
      report.errors.push(`ingress policies: ${(e as Error).message}`);
    }
  }
  for (const s of live.spoofChecks) {
    try {
      addMacSpoofCheck(s.port, s.mac);
    } catch (e) {
      report.errors.push(`MAC spoof check of ${s.port}: ${(e as Error).message}`);
    }
  }
  return report;
}

export function registerFirewall(program: Command): void {
  const fw = program.command('firewall').description("cnikit's firewall rules");
  fw.command('reload')
    .description('rebuild the rules of every live attachment from the plugins\' records (after a firewall flush or reload)')
    .option('--data-dir <dir>', 'one more plugin data dir to read records from (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--config-dir <dir>', 'network config dir whose networks name data dirs', process.env.CNIKIT_CONFIG_DIR ?? '/etc/cni/net.d')
    .option('-q, --quiet', 'print nothing unless something failed')
    .action((o: ReloadOptions) => {
      const r = reloadFirewall(recordDirs(o.configDir, o.dataDir));
      if (!o.quiet) {
        process.stdout.write(`reloaded ${r.live} live attachment(s)${r.backends.length ? `: ${r.backends.join(', ')}` : ''}; ${r.stale} stale record(s) left to DEL and GC\n`);
      }
      if (r.errors.length > 0) throw new Error(`firewall reload failed: ${r.errors.join('; ')}`);
    });
}
