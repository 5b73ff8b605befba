import { RUN_PREFIX, sweepNamespaces } from './lab.ts';
import { sweepNodes } from './cri/sweep.ts';

export function setup(): void {
  // Workers inherit the prefix so the teardown sweep finds everything they made.
  process.env.CNIKIT_TEST_PREFIX = RUN_PREFIX;
}

export async function teardown(): Promise<void> {
  const killed = await sweepNodes(RUN_PREFIX);
  if (killed > 0) process.stderr.write(`lab sweep killed ${killed} leftover containerd node process(es)\n`);
  const left = sweepNamespaces(RUN_PREFIX);
  if (left.length > 0) process.stderr.write(`lab sweep removed leftover namespaces: ${left.join(' ')}\n`);
}
