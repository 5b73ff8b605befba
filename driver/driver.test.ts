import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pickVersion, parseList, loadDir, findNetwork, ConfigError } from './conflist.ts';
import { pluginConfig } from './index.ts';

describe('driver config', () => {
  it('picks the highest version of cniVersions that cnikit speaks, else cniVersion', () => {
    expect(pickVersion({ name: 'n', cniVersion: '0.4.0', cniVersions: ['0.3.1', '1.0.0', '2.0.0'], plugins: [{ type: 'x' }] })).toBe('1.0.0');
    expect(pickVersion({ name: 'n', cniVersion: '0.4.0', plugins: [{ type: 'x' }] })).toBe('0.4.0');
    expect(() => pickVersion({ name: 'n', cniVersions: ['9.0.0'], plugins: [{ type: 'x' }] })).toThrow(ConfigError);
  });

  it('turns a single-plugin config into a list of one, and refuses what is not a list', () => {
    const l = parseList(Buffer.from('{"cniVersion":"1.0.0","name":"n","type":"bridge"}'));
    expect(l.conf.plugins).toEqual([{ cniVersion: '1.0.0', name: 'n', type: 'bridge' }]);
    expect(() => parseList(Buffer.from('{"name":"n","plugins":[]}'), 'x.conflist')).toThrow(/x.conflist: invalid network configuration list/);
    expect(() => parseList(Buffer.from('{'), 'y.conf')).toThrow(/y.conf: not JSON/);
  });

  it('gives a plugin only the capability arguments it declares, with the list name, version and prevResult', () => {
    const list = parseList(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'net', plugins: [{ type: 'a', capabilities: { portMappings: true, mac: false } }] })));
    const conf = pluginConfig(list, list.conf.plugins[0], { containerId: 'c', netns: '/x', ifname: 'eth0', capabilityArgs: { portMappings: [1], mac: 'm', ips: ['1.2.3.4'] } }, { cniVersion: '1.1.0' });
    expect(conf).toEqual({ type: 'a', name: 'net', cniVersion: '1.1.0', capabilities: { portMappings: true, mac: false }, runtimeConfig: { portMappings: [1] }, prevResult: { cniVersion: '1.1.0' } });
  });

  it('finds a network in a config dir in file name order, skipping what it cannot load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cnikit-netd-'));
    try {
      writeFileSync(join(dir, '20-b.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'same', plugins: [{ type: 'second' }] }));
      writeFileSync(join(dir, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'same', plugins: [{ type: 'first' }] }));
      writeFileSync(join(dir, '05-broken.conf'), '{');
      writeFileSync(join(dir, 'README.txt'), 'not a config');
      expect(loadDir(dir).map((l) => l.conf.plugins[0].type)).toEqual(['first', 'second']);
      expect(findNetwork(dir, 'same').conf.plugins[0].type).toBe('first');
      expect(() => findNetwork(dir, 'other')).toThrow(/no network named other/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
