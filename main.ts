// The one executable: a multi-call binary that is every plugin and the
// `cnikit` command. It dispatches on the name it was invoked by
// (dist/bin/<plugin> links), or on its only argument (`cnikit none`).
import { PLUGINS, isPlugin } from './plugins/registry.ts';

async function main(): Promise<number> {
  // Not node:path's basename: that import alone costs ~0.3 ms per exec.
  const invoked = process.argv0.slice(process.argv0.lastIndexOf('/') + 1);
  const args = process.argv.slice(2);
  const name = isPlugin(invoked) ? invoked : args.length === 1 && isPlugin(args[0]) ? args[0] : undefined;
  if (name !== undefined) {
    const { runPlugin } = await import('./lib/skel/index.ts');
    const code = await runPlugin(await PLUGINS[name]!());
    // Every write of a plugin is synchronous (lib/fs, pino's sync destination).
    const { sys } = await import('./lib/sys/index.ts');
    sys.exit(code);
  }
  const { runCli } = await import('./cli/index.ts');
  return runCli(args);
}

// Exit at once: letting the runtime wind down on its own costs ~2 ms per
// exec under Bun, and every write before this point is synchronous.
process.exit(await main());
