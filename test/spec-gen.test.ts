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

it('every precompiled validator has a key tree (Go-style keys reach every schema, also new ones)', async () => {
  const validators = (await import('../lib/spec/validators.gen.js')) as Record<string, unknown>;
  const { keyTreeOfValidator } = await import('../lib/spec/keys.gen.js');
  const names = Object.keys(validators).filter((n) => n.startsWith('validate'));
  expect(names.length).toBeGreaterThan(5);
  for (const n of names) expect(keyTreeOfValidator.has(validators[n] as never), n).toBe(true);
});
