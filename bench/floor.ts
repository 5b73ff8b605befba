// The floor of the process model: an empty program compiled the way
// dist/cnikit is. What a cnikit exec costs above it is cnikit's own work.
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { COMPILE_FLAGS } from '../scripts/compile-flags.ts';

let built: string | undefined;

/** Builds bench/out/floor once per run; returns its path. */
export function buildFloor(root: string): string {
  if (built) return built;
  const dir = join(root, 'bench/out');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'floor.ts'), 'process.exit(0);\n');
  const out = join(dir, 'floor');
  const r = spawnSync(process.execPath, ['build', ...COMPILE_FLAGS, join(dir, 'floor.ts'), '--outfile', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the floor program failed: ${r.stderr}`);
  built = out;
  return out;
}
