// The `cnikit` command.
import { Command } from 'commander';
import { SUPPORTED_VERSIONS } from '../lib/skel/index.ts';
import { PLUGIN_NAMES } from '../plugins/registry.ts';



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
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return typeof code === 'number' ? code : 1;
  }
}
