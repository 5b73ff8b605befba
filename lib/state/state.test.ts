// Record files: created without a temporary, rewritten in place, and read
// back whole in every case the plugins rely on.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFile, rewriteFile, writeFileAtomic } from './index.ts';
import { AttachmentStore } from './attachments.ts';
import { hostStateDir, hostNamespaceId } from './scope.ts';

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
    writeFileSync(join(store.dir, 'c2@eth0.json'), '');
    // A temporary of a writer that died before its rename, and one of a live writer (this process).
    writeFileSync(join(store.dir, '.tmp-999999999-deadbeef'), '{}');
    writeFileSync(join(store.dir, `.tmp-${process.pid}-cafe`), '{}');
    expect(store.read({ containerId: 'c2', ifname: 'eth0' })).toBeUndefined();
    expect(store.list().map((r) => r.containerId)).toEqual(['c1']);
    // GC sweeps the empty leftover and the dead writer's temporary, and only them.
    store.sweepEmpty();
    expect(readdirSync(store.dir).sort()).toEqual([`.tmp-${process.pid}-cafe`, 'c1@eth0.json']);
    // DEL removes an empty record too.
    writeFileSync(join(store.dir, 'c2@eth0.json'), '');
    store.remove({ containerId: 'c2', ifname: 'eth0' });
    expect(existsSync(join(store.dir, 'c2@eth0.json'))).toBe(false);
  });
});

describe('lib/state per host network namespace', () => {
  it('keeps records under <dataDir>/ns-<inode of this process\'s netns>', () => {
    const dir = scratch();
    const store = new AttachmentStore<{ containerId: string; ifname: string }>(dir, 'portmap', 'net1');
    expect(store.dir).toBe(join(dir, `ns-${statSync('/proc/self/ns/net').ino}`, 'portmap', 'net1'));
    expect(hostStateDir(dir)).toBe(join(dir, `ns-${hostNamespaceId()}`));
  });

  it('adopts a record of the old layout when read by key, and in list() only those the caller claims', () => {
    const dir = scratch();
    mkdirSync(join(dir, 'bridge/net1'), { recursive: true });
    for (const id of ['old1', 'old2', 'old3']) writeFileSync(join(dir, `bridge/net1/${id}@eth0.json`), JSON.stringify({ containerId: id, ifname: 'eth0', mine: id !== 'old3' }));
    const store = new AttachmentStore<{ containerId: string; ifname: string; mine: boolean }>(dir, 'bridge', 'net1');
    expect(store.read({ containerId: 'old1', ifname: 'eth0' })?.mine).toBe(true);
    expect(existsSync(join(store.dir, 'old1@eth0.json'))).toBe(true);
    expect(existsSync(join(dir, 'bridge/net1/old1@eth0.json'))).toBe(false);
    // Without a claim the old layout is not listed (it may be another host's).
    expect(store.list().map((r) => r.containerId)).toEqual(['old1']);
    expect(store.list((r) => r.mine).map((r) => r.containerId).sort()).toEqual(['old1', 'old2']);
    expect(readdirSync(join(dir, 'bridge/net1'))).toEqual(['old3@eth0.json']);
    store.remove({ containerId: 'old1', ifname: 'eth0' });
    store.remove({ containerId: 'old2', ifname: 'eth0' });
    expect(store.list()).toEqual([]);
  });
});
