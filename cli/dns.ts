// `cnikit dns serve`: the resident name responder (dns/), normally started
// by the dnsname plugin's first ADD; startable by hand too.
import type { Command } from 'commander';

function integer(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got ${v}`);
  return n;
}

export function registerDns(program: Command): void {
  const dns = program.command('dns').description('the name responder of the dnsname plugin');
  dns
    .command('serve')
    .description('answer container names on every network gateway of this host network namespace until no names are left')
    .option('--dir <dir>', 'records directory root (default: this network namespace\'s under /run/cni/cnikit/dnsname)')
    .option('--lock-fd <fd>', 'an fd that holds the responder lock already (how the plugin starts it)', integer)
    .option('--resolv-conf <path>', 'upstream resolvers (default: $CNIKIT_DNS_RESOLV_CONF, else /etc/resolv.conf)')
    .option('--port <port>', 'port to listen on', integer, 53)
    .action(async (o: { dir?: string; lockFd?: number; resolvConf?: string; port: number }) => {
      const { serve } = await import('../dns/serve.ts');
      process.exitCode = await serve({ dir: o.dir, lockFd: o.lockFd, resolvConf: o.resolvConf, port: o.port });
    });
}
