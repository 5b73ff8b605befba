// Record files: created without a temporary, rewritten in place, and read
// back whole in every case the plugins rely on.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFile, rewriteFile, writeFileAtomic } from './index.ts';
import { AttachmentStore } from './attachments.ts';

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-state-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('lib/state files', () => {
  it('creates a file 0600 in a new 0700 directory, and replaces one that exists', () => {
    const dir = scratch();
    const path = join(dir, 'a/b/rec.json');
    createFile(path, '{"n":1}');
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'a/b')).mode & 0o777).toBe(0o700);
    const inode = statSync(path).ino;
    createFile(path, '{"n":2}');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ n: 2 });
    // The existing one was replaced whole (a new inode), not written into.
    expect(statSync(path).ino).not.toBe(inode);
    expect(readdirSync(join(dir, 'a/b'))).toEqual(['rec.json']);
  });

  it('rewrites in place: same inode, shorter content padded to valid JSON, a missing file created', () => {
    const dir = scratch();
    const path = join(dir, 'rec.json');
    createFile(path, JSON.stringify({ ips: ['10.0.0.2/24', '10.0.0.3/24'] }));
    const inode = statSync(path).ino;
    rewriteFile(path, JSON.stringify({ ips: ['10.0.0.2/24'] }));
    expect(statSync(path).ino).toBe(inode);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ ips: ['10.0.0.2/24'] });
    rewriteFile(path, JSON.stringify({ ips: ['10.0.0.2/24'], masq: 'nftables', more: 'x'.repeat(100) }));
    expect(JSON.parse(readFileSync(path, 'utf8')).masq).toBe('nftables');
    const missing = join(dir, 'new/rec.json');
    rewriteFile(missing, '{"n":3}');
    expect(JSON.parse(readFileSync(missing, 'utf8'))).toEqual({ n: 3 });
  });

  it('falls back to a whole replacement for content over a page', () => {
    const dir = scratch();
    const path = join(dir, 'big.json');
    const big = JSON.stringify({ pad: 'y'.repeat(5000) });
    createFile(path, big);
    expect(readFileSync(path, 'utf8')).toBe(big);
    rewriteFile(path, '{"n":1}');
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}');
    writeFileAtomic(path, '{"n":2}');
    expect(readFileSync(path, 'utf8')).toBe('{"n":2}');
  });

  it('reads a record left empty by a writer killed between create and write as no record', () => {
    const dir = scratch();
    const store = new AttachmentStore<{ containerId: string; ifname: string; n: number }>(dir, 'bridge', 'net1');
    store.create({ containerId: 'c1', ifname: 'eth0', n: 1 });
    expect(store.read({ containerId: 'c1', ifname: 'eth0' })?.n).toBe(1);
    writeFileSync(join(dir, 'bridge/net1/c2@eth0.json'), '');
    expect(store.read({ containerId: 'c2', ifname: 'eth0' })).toBeUndefined();
    expect(store.list().map((r) => r.containerId)).toEqual(['c1']);
    // GC sweeps the empty leftover, and only it.
    store.sweepEmpty();
    expect(readdirSync(join(dir, 'bridge/net1'))).toEqual(['c1@eth0.json']);
  });
});
