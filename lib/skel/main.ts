// What a plugin executable does: one CNI invocation on this process's stdin
// and environment, then exit with its status.
import type { NetConf } from '../spec/index.ts';
import { sys } from '../sys/index.ts';
import { runPlugin, type Plugin } from './index.ts';

export async function runAndExit<C extends NetConf>(plugin: Plugin<C>): Promise<never> {
  const code = await runPlugin(plugin);
  // At once: every write of a plugin is synchronous (lib/fs, pino's sync destination).
  return sys.exit(code);
}
