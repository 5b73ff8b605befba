// Both adapters must behave alike where callers depend on it: running a
// program (input, environment, exit status, a start failure, a timeout), a
// detached child, waiting on a pipe, and hashing. The node adapter runs
// here; the bun one in a Bun child.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sys } from './node.ts';
import { fileAnswers } from './testdata/files.ts';
import { childAnswers } from './testdata/children.ts';

const BUN = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));
const SCRIPT = fileURLToPath(new URL('./testdata/run-bun.ts', import.meta.url));

function scratch<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-sys-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function nodeAnswers() {
  return {
    timeout: sys.run('/bin/sleep', ['5'], { timeoutMs: 200 }),
    missing: sys.run('/nonexistent/program', []),
    cat: sys.run('/bin/cat', [], { input: 'héllo' }),
    env: sys.run('/bin/sh', ['-c', 'echo "$FOO"; echo err >&2; exit 3'], { env: { FOO: 'bar' } }),
    hash: sys.sha256hex('a\0b'),
    strict: sys.setsockoptInt(sys.netlinkSocket(0), 270, 12, 1),
    unknownOption: sys.setsockoptInt(sys.netlinkSocket(0), 270, 999, 1),
    files: scratch((dir) => fileAnswers(sys, dir)),
    children: childAnswers(sys),
  };
}

function bunAnswers(): ReturnType<typeof nodeAnswers> {
  const r = scratch((dir) => spawnSync(BUN, [SCRIPT, dir], { encoding: 'utf8' }));
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
  it('reads, writes, links, renames, lists and stats files, with the errno of each failure', () => {
    expect(a.files).toEqual({
      written: 7,
      text: 'héllo\n',
      atEnd: 0,
      sizeAfterTruncate: 3,
      fileIsRegular: true,
      filePerm: 0o600,
      dirIsDir: true,
      devNullIsChar: true,
      sameFileSameIno: true,
      names: ['f', 'h'],
      nsTypeIsNet: true,
      nsTypeOfFile: 25,
      realpath: true,
      linkExists: 17,
      mkdirExists: 17,
      openMissing: 2,
      unlinkMissing: 2,
      readdirMissing: 2,
      accessMissing: 2,
      nulInPath: 22,
    });
  });
  it('starts a detached child on the fds given, says when one cannot start, and waits on a pipe', () => {
    expect(a.children).toEqual({ readyBefore: false, waitedAtLeast15: true, readyAfter: true, echoed: 'ping', missingThrows: true });
  });
  it('hashes as SHA-256', () => {
    expect(a.hash).toBe('59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138');
  });
});
