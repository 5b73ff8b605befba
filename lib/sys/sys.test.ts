// Both adapters must behave alike where callers depend on it: running a
// program (input, environment, exit status, a start failure, a timeout) and
// hashing. The node adapter runs here; the bun one in a Bun child.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sys } from './node.ts';

const BUN = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./testdata/run-bun.ts', import.meta.url));

function nodeAnswers() {
  return {
    timeout: sys.run('/bin/sleep', ['5'], { timeoutMs: 200 }),
    missing: sys.run('/nonexistent/program', []),
    cat: sys.run('/bin/cat', [], { input: 'héllo' }),
    env: sys.run('/bin/sh', ['-c', 'echo "$FOO"; echo err >&2; exit 3'], { env: { FOO: 'bar' } }),
    hash: sys.sha256hex('a\0b'),
    strict: sys.setsockoptInt(sys.netlinkSocket(0), 270, 12, 1),
    unknownOption: sys.setsockoptInt(sys.netlinkSocket(0), 270, 999, 1),
  };
}

function bunAnswers(): ReturnType<typeof nodeAnswers> {
  const r = spawnSync(BUN, [SCRIPT], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bun adapter script: ${r.stderr}`);
  return JSON.parse(r.stdout) as ReturnType<typeof nodeAnswers>;
}

describe.each([
  ['node', nodeAnswers],
  ['bun', bunAnswers],
])('the %s adapter', (_name, answers) => {
  const a = answers();
  it('runs a program with input and environment, and reports its exit status and output', () => {
    expect(a.cat).toEqual({ status: 0, stdout: 'héllo', stderr: '' });
    expect(a.env).toEqual({ status: 3, stdout: 'bar\n', stderr: 'err\n' });
  });
  it('says when a program could not start, and when it was killed for its timeout', () => {
    expect(a.missing.failure?.kind).toBe('start');
    expect(a.missing.status).toBeNull();
    expect(a.timeout.failure?.kind).toBe('timeout');
  });
  it('sets an int socket option, and says false for one the kernel does not know', () => {
    expect(a.strict).toBe(true);
    expect(a.unknownOption).toBe(false);
  });
  it('hashes as SHA-256', () => {
    expect(a.hash).toBe('59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138');
  });
});
