import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pickVersion, parseList, loadDir, findNetwork, loadListFile, ConfigError } from './conflist.ts';

describe('pickVersion', () => {
  it('takes the highest of cniVersion and cniVersions that cnikit speaks', () => {
    expect(pickVersion({ name: 'n', cniVersion: '0.4.0', cniVersions: ['0.3.1', '1.0.0', '2.0.0'] })).toBe('1.0.0');
    // cniVersion is one of the candidates, not only the fallback (SPEC, libcni).
    expect(pickVersion({ name: 'n', cniVersion: '1.1.0', cniVersions: ['0.4.0'] })).toBe('1.1.0');
    expect(pickVersion({ name: 'n', cniVersions: ['0.3.0', '1.1.0', '0.4.0'] })).toBe('1.1.0');
    expect(pickVersion({ name: 'n', cniVersion: '0.4.0' })).toBe('0.4.0');
  });

  it('falls back to cniVersion as written when none is spoken, and refuses a list with no usable version', () => {
    expect(pickVersion({ name: 'n', cniVersion: '0.2.0', cniVersions: ['9.0.0'] })).toBe('0.2.0');
    expect(() => pickVersion({ name: 'n', cniVersions: ['9.0.0'] })).toThrow(ConfigError);
    expect(() => pickVersion({ name: 'n' })).toThrow(/no cniVersion/);
  });
});

describe('parseList', () => {
  it('reads keys as libcni (Go) does: case-insensitively, the exact spelling first', () => {
    const l = parseList(Buffer.from('{"CNIVersion":"1.0.0","Name":"n","DisableCheck":true,"Plugins":[{"Type":"bridge","Capabilities":{"portMappings":true}}]}'));
    expect(l.conf).toMatchObject({ cniVersion: '1.0.0', name: 'n', disableCheck: true, plugins: [{ type: 'bridge', capabilities: { portMappings: true } }] });
    expect(parseList(Buffer.from('{"name":"n","NAME":"m","cniVersion":"1.0.0","plugins":[{"type":"x"}]}')).conf.name).toBe('n');
    const single = parseList(Buffer.from('{"CNIVersion":"1.0.0","Name":"n","Type":"bridge"}'));
    expect(single.conf.plugins).toEqual([{ cniVersion: '1.0.0', name: 'n', type: 'bridge' }]);
  });
  it('turns a single plugin config into a list of one, whose bytes are that list', () => {
    const l = parseList(Buffer.from('{"cniVersion":"1.0.0","name":"n","type":"bridge"}'));
    expect(l.conf.plugins).toEqual([{ cniVersion: '1.0.0', name: 'n', type: 'bridge' }]);
    expect(JSON.parse(l.bytes.toString())).toEqual({ cniVersion: '1.0.0', name: 'n', plugins: [{ cniVersion: '1.0.0', name: 'n', type: 'bridge' }] });
    expect(l.version).toBe('1.0.0');
  });

  it('keeps a list\'s bytes as read', () => {
    const text = '{ "cniVersion": "1.0.0",\n  "name": "n", "plugins": [ {"type": "x"} ] }';
    expect(parseList(Buffer.from(text)).bytes.toString()).toBe(text);
  });

  it('refuses what is not a list, naming the file and the field (code 7)', () => {
    expect(() => parseList(Buffer.from('{"name":"n","plugins":[]}'), 'x.conflist')).toThrow(/x.conflist: invalid network configuration list/);
    expect(() => parseList(Buffer.from('{'), 'y.conf')).toThrow(/y.conf: not JSON/);
    expect(() => parseList(Buffer.from('[]'))).toThrow(/JSON object/);
    expect(() => parseList(Buffer.from('{"cniVersion":"1.0.0","name":"bad/name","plugins":[{"type":"x"}]}'))).toThrow(/"name"/);
    try {
      parseList(Buffer.from('{"name":"n","cniVersion":"1.0.0","plugins":[{}]}'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).code).toBe(7);
      expect((e as Error).message).toMatch(/plugins.0.type/);
    }
  });

  it('reads "true"/"false" strings for disableCheck and disableGC, as libcni does', () => {
    const l = parseList(Buffer.from('{"cniVersion":"1.0.0","name":"n","disableCheck":"True","disableGC":"false","plugins":[{"type":"x"}]}'));
    expect(l.conf.disableCheck).toBe(true);
    expect(l.conf.disableGC).toBe(false);
    expect(() => parseList(Buffer.from('{"cniVersion":"1.0.0","name":"n","disableGC":"yes","plugins":[{"type":"x"}]}'))).toThrow(/"disableGC" must be true or false/);
  });
});

describe('config dirs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cnikit-netd-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, v: unknown) => writeFileSync(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));

  it('finds a network as libcni does: .conflist files first in name order, then .conf and .json', () => {
    write('01-single.conf', { cniVersion: '1.0.0', name: 'same', type: 'from-conf' });
    write('20-b.conflist', { cniVersion: '1.0.0', name: 'same', plugins: [{ type: 'second' }] });
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'same', plugins: [{ type: 'first' }] });
    write('30-c.json', { cniVersion: '1.0.0', name: 'other', type: 'from-json' });
    write('README.txt', 'not a config');
    mkdirSync(join(dir, 'dir.conflist'));
    expect(findNetwork(dir, 'same').conf.plugins[0].type).toBe('first');
    expect(findNetwork(dir, 'other').conf.plugins).toEqual([{ cniVersion: '1.0.0', name: 'other', type: 'from-json' }]);
    expect(() => findNetwork(dir, 'none-such')).toThrow(/no net configuration with name "none-such"/);
  });

  it('finding a network fails on a broken file met on the way (libcni), listing skips it', () => {
    write('05-broken.conflist', '{');
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'x' }] });
    expect(() => findNetwork(dir, 'a')).toThrow(/05-broken.conflist: not JSON/);
    expect(loadDir(dir).map((l) => l.conf.name)).toEqual(['a']);
  });

  it('lists every network once, in file name order across extensions, the first of a name winning', () => {
    write('30-c.json', { cniVersion: '1.0.0', name: 'c', type: 'x' });
    write('10-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'x' }] });
    write('20-b.conf', { cniVersion: '1.0.0', name: 'b', type: 'x' });
    write('40-a.conflist', { cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'later' }] });
    expect(loadDir(dir).map((l) => [l.conf.name, l.conf.plugins[0].type])).toEqual([['a', 'x'], ['b', 'x'], ['c', 'x']]);
    expect(loadDir(join(dir, 'missing'))).toEqual([]);
  });

  it('appends the plugin configs of <dir>/<network>/*.conf, unless loadOnlyInlinedPlugins', () => {
    write('10-n.conflist', { cniVersion: '1.1.0', name: 'n', plugins: [{ type: 'inline' }] });
    write('20-m.conflist', { cniVersion: '1.1.0', name: 'm' });
    write('30-o.conflist', { cniVersion: '1.1.0', name: 'o', loadOnlyInlinedPlugins: true, plugins: [{ type: 'inline' }] });
    for (const net of ['n', 'm', 'o']) {
      mkdirSync(join(dir, net));
      write(`${net}/2-b.conf`, { type: 'b' });
      write(`${net}/1-a.conf`, { type: 'a' });
      write(`${net}/ignored.json`, { type: 'no' });
    }
    expect(loadListFile(join(dir, '10-n.conflist')).conf.plugins.map((p) => p.type)).toEqual(['inline', 'a', 'b']);
    expect(loadListFile(join(dir, '20-m.conflist')).conf.plugins.map((p) => p.type)).toEqual(['a', 'b']);
    expect(loadListFile(join(dir, '30-o.conflist')).conf.plugins.map((p) => p.type)).toEqual(['inline']);
    write('40-p.conflist', { cniVersion: '1.1.0', name: 'p', loadOnlyInlinedPlugins: true });
    expect(() => loadListFile(join(dir, '40-p.conflist'))).toThrow(/loadOnlyInlinedPlugins/);
    write('m/3-bad.conf', { notype: true });
    expect(() => loadListFile(join(dir, '20-m.conflist'))).toThrow(/3-bad.conf: a plugin configuration needs a "type"/);
  });
});
