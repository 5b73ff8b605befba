// The `cnikit` command.
import { Command } from 'commander';
import { SUPPORTED_VERSIONS, CniError } from '../lib/skel/index.ts';
import { PLUGIN_NAMES } from '../plugins/names.ts';
import { install } from './install.ts';
import { registerCni } from './cni.ts';
import { registerLab } from './lab.ts';
import { registerConformance } from './conformance.ts';
import { registerDns } from './dns.ts';
import { registerFirewall } from './firewall.ts';

export async function runCli(argv: string[]): Promise<number> {
  const program = new Command('cnikit')
    .description('CNI plugins (bridge, host-local, portmap, host, none/loopback) and a network-namespace lab')
    .exitOverride();
  program
    .command('version')
    .description('print the version and the CNI versions spoken')
    .action(() => {
      process.stdout.write(`cnikit 0.1.0 (CNI ${SUPPORTED_VERSIONS.join(', ')})\n`);
    });
  program
    .command('plugins')
    .description('list the plugins this executable provides (run one as `cnikit <plugin>` or through a link named after it)')
    .action(() => {
      process.stdout.write(PLUGIN_NAMES.join('\n') + '\n');
    });
  program
    .command('install')
    .description('install the executable and a link per plugin into a CNI bin directory')
    .option('--dir <dir>', 'CNI bin directory', '/opt/cni/bin')
    .option('--force', 'replace plugins of the same names that are not cnikit\'s')
    .action((opts: { dir: string; force?: boolean }) => {
      const r = install(process.execPath, opts.dir, { force: opts.force });
      process.stdout.write(`installed ${r.executable} and ${PLUGIN_NAMES.join(', ')}\n`);
    });
  registerCni(program);
  registerLab(program);
  registerConformance(program);
  registerDns(program);
  registerFirewall(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    // `exec` passes on its command's status.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    // Commander has already printed its own usage errors.
    const code = (e as { exitCode?: unknown }).exitCode;
    if (typeof code === 'number') return code;
    const cniCode = e instanceof CniError ? ` (CNI error ${e.code})` : '';
    process.stderr.write(`cnikit: ${e instanceof Error ? e.message : String(e)}${cniCode}\n`);
    return 1;
  }
}
