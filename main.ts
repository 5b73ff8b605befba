// The one executable: a multi-call binary that is every plugin and the
// `cnikit` command. It dispatches on the name it was invoked by
// (dist/bin/<plugin> links), or on its only argument (`cnikit none`).
//
// Each plugin is an entry point of its own in the executable, bundled with
// all it needs (scripts/build.ts), so an exec loads one module besides this
// one: a bundle split into shared chunks cost each exec ~1 ms more, measured.
// The specifier is looked up at run time, so the bundler leaves it to be
// resolved against the executable's embedded entry points.
import { isPlugin, PLUGIN_ENTRIES, CLI_ENTRY, VERSION_ENTRY } from './plugins/names.ts';

// Not node:path's basename: that import alone costs ~0.3 ms per exec.
const invoked = process.argv0.slice(process.argv0.lastIndexOf('/') + 1);
const args = process.argv.slice(2);
const name = isPlugin(invoked) ? invoked : args.length === 1 && isPlugin(args[0]) ? args[0] : undefined;
// VERSION's answer is the same from every plugin: it loads none of them.
const entry = name === undefined ? CLI_ENTRY : process.env.CNI_COMMAND === 'VERSION' ? VERSION_ENTRY : PLUGIN_ENTRIES[name];
await import(entry);
