// The committed types and validators must be what `npm run gen` makes now.
import { it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from '../scripts/gen.ts';
import { ROOT } from './dist.ts';

it('lib/spec generated files are up to date (run `npm run gen`)', async () => {
  const files = await generate();
  expect(files.size).toBeGreaterThanOrEqual(3);
  for (const [path, content] of files) expect(readFileSync(join(ROOT, path), 'utf8'), path).toBe(content);
});
