// `npm run build`: dist/cnikit, one standalone executable (bun build
// --compile), and dist/bin/ with a link per plugin name.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PLUGIN_NAMES, PLUGIN_ENTRIES, CLI_ENTRY, LAZY_ENTRIES } from '../plugins/names.ts';
import { COMPILE_FLAGS } from './compile-flags.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'bin'), { recursive: true });

// main.ts and, as entry points of their own, each plugin's executable and
// the CLI: every one bundled whole, so an exec loads main.ts and its one
// entry (not split into shared chunks: ~1 ms more per exec, measured).
const entries = [...new Set([...Object.values(PLUGIN_ENTRIES), CLI_ENTRY, ...LAZY_ENTRIES])];
const r = spawnSync(
  process.execPath,
  ['build', ...COMPILE_FLAGS, 'main.ts', ...entries, '--outfile', join(dist, 'cnikit')],
  { stdio: 'inherit', cwd: root },
);
if (r.status !== 0) process.exit(r.status ?? 1);

for (const name of [...PLUGIN_NAMES, 'cnikit']) symlinkSync('../cnikit', join(dist, 'bin', name));
console.log(`dist/cnikit and dist/bin/{${[...PLUGIN_NAMES, 'cnikit'].join(',')}}`);
