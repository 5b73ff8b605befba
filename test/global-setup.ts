import { RUN_PREFIX, sweepNamespaces } from './lab.ts';

export function setup(): void {
  // Workers inherit the prefix so the teardown sweep finds everything they made.
  process.env.CNIKIT_TEST_PREFIX = RUN_PREFIX;
}

export function teardown(): void {
  const left = sweepNamespaces(RUN_PREFIX);
  if (left.length > 0) process.stderr.write(`lab sweep removed leftover namespaces: ${left.join(' ')}\n`);
}
