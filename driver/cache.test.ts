import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ResultCache } from './cache.ts';

describe('libcni result cache', () => {
  let dir: string;
  let cache: ResultCache;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cnikit-cache-'));
    cache = new ResultCache(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const config = Buffer.from('{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge"}]}');
  const result = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24', interface: 0 }] };

  it('writes cachedInfo\'s keys in Go\'s order to results/<net>-<cid>-<ifname>, 0600 in 0700 dirs', () => {
    cache.write({ containerId: 'c1', config, ifName: 'eth0', networkName: 'net', netns: '/run/netns/x', cniArgs: [['K', 'V']], capabilityArgs: { portMappings: [] }, result });
    const file = join(dir, 'results', 'net-c1-eth0');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'results')).mode & 0o777).toBe(0o700);
    const text = readFileSync(file, 'utf8');
    expect(Object.keys(JSON.parse(text))).toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns', 'cniArgs', 'capabilityArgs', 'result']);
    expect(JSON.parse(text)).toEqual({
      kind: 'cniCacheV1', containerId: 'c1', config: config.toString('base64'), ifName: 'eth0', networkName: 'net',
      netns: '/run/netns/x', cniArgs: [['K', 'V']], capabilityArgs: { portMappings: [] }, result,
    });
  });

  it('leaves out what Go\'s omitempty leaves out', () => {
    cache.write({ containerId: 'c1', config, ifName: 'eth0', networkName: 'net', netns: '', cniArgs: [], capabilityArgs: {} });
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'results', 'net-c1-eth0'), 'utf8')))).toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName']);
  });

  it('reads an entry libcni wrote, and a pre-v1 file (the bare result); not something else', () => {
    mkdirSync(join(dir, 'results'), { recursive: true });
    // As Go's encoding/json writes it: no spaces, HTML characters escaped.
    writeFileSync(join(dir, 'results', 'net-podman1-eth0'), `{"kind":"cniCacheV1","containerId":"podman1","config":"${config.toString('base64')}","ifName":"eth0","networkName":"net","netns":"/run/netns/p","result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}],"dns":{"domain":"\\u003cx\\u003e"}}}`);
    expect(cache.read('net', 'podman1', 'eth0')).toMatchObject({ containerId: 'podman1', netns: '/run/netns/p', result: { ips: [{ address: '10.1.0.5/24' }], dns: { domain: '<x>' } } });
    writeFileSync(join(dir, 'results', 'net-old-eth0'), JSON.stringify(result));
    expect(cache.read('net', 'old', 'eth0')).toMatchObject({ containerId: 'old', ifName: 'eth0', networkName: 'net', result });
    writeFileSync(join(dir, 'results', 'net-junk-eth0'), '{');
    expect(cache.read('net', 'junk', 'eth0')).toBeUndefined();
    writeFileSync(join(dir, 'results', 'net-other-eth0'), '{"kind":"cniCacheV2"}');
    expect(cache.read('net', 'other', 'eth0')).toBeUndefined();
    expect(cache.read('net', 'missing', 'eth0')).toBeUndefined();
  });

  it('lists the v1 entries of one network in file name order, not those of a network whose name it prefixes', () => {
    cache.write({ containerId: 'b', config, ifName: 'eth0', networkName: 'net' });
    cache.write({ containerId: 'a', config, ifName: 'eth0', networkName: 'net' });
    cache.write({ containerId: 'x', config, ifName: 'eth0', networkName: 'net-2' });
    writeFileSync(join(dir, 'results', 'net-legacy-eth0'), JSON.stringify(result));
    expect(cache.list('net').map((e) => e.containerId)).toEqual(['a', 'b']);
    expect(cache.list().map((e) => `${e.networkName}/${e.containerId}`)).toEqual(['net-2/x', 'net/a', 'net/b']); // file name order: net-2-x-eth0 sorts first
    expect(new ResultCache(join(dir, 'none')).list('net')).toEqual([]);
  });

  it('removes an entry, and refuses a key that would leave the dir', () => {
    cache.write({ containerId: 'a', config, ifName: 'eth0', networkName: 'net' });
    cache.remove('net', 'a', 'eth0');
    cache.remove('net', 'a', 'eth0');
    expect(cache.read('net', 'a', 'eth0')).toBeUndefined();
    expect(() => cache.read('net', '../x', 'eth0')).toThrow(/invalid cache key/);
  });
});
