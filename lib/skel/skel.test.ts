import { describe, it, expect } from 'vitest';
import { parseCniArgs, checkKnownArgs, readInvocation, validateIfname } from './env.ts';
import { convertResult, toCurrent } from './result.ts';
import { compareVersions, requireSupported } from './version.ts';
import { runPlugin, CniError, type Plugin, type Io } from './index.ts';
import type { NetConf, Result } from '../spec/index.ts';
import { validateNetConf } from '../spec/validators.gen.js';

describe('CNI_ARGS', () => {
  it('parses pairs in order', () => {
    expect([...parseCniArgs('IgnoreUnknown=1;IP=10.0.0.5;K8S_POD_NAME=a=b'.replace('a=b', 'ab'))]).toEqual([
      ['IgnoreUnknown', '1'],
      ['IP', '10.0.0.5'],
      ['K8S_POD_NAME', 'ab'],
    ]);
  });
  it('refuses a pair without exactly one =', () => {
    expect(() => parseCniArgs('IP')).toThrow(/KEY=VALUE/);
    expect(() => parseCniArgs('A=1=2')).toThrow(CniError);
    expect(() => parseCniArgs('=1')).toThrow(CniError);
  });
  it('refuses unknown keys unless IgnoreUnknown', () => {
    expect(() => checkKnownArgs(parseCniArgs('FOO=1'), ['IP'])).toThrow(/unknown CNI_ARGS key "FOO"/);
    expect(() => checkKnownArgs(parseCniArgs('IgnoreUnknown=true;FOO=1'), ['IP'])).not.toThrow();
    expect(() => checkKnownArgs(parseCniArgs('IP=1.2.3.4'), ['IP'])).not.toThrow();
  });
});

describe('environment per command', () => {
  const full = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/a:/b' };
  it('DEL needs no netns, GC only a path, STATUS nothing', () => {
    expect(readInvocation({ ...full, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBe('');
    expect(readInvocation({ CNI_COMMAND: 'GC', CNI_PATH: '/p' }).path).toEqual(['/p']);
    expect(() => readInvocation({ CNI_COMMAND: 'GC' })).toThrow(/CNI_PATH/);
    expect(readInvocation({ CNI_COMMAND: 'STATUS' }).command).toBe('STATUS');
  });
  it('names every missing variable at once', () => {
    expect(() => readInvocation({ CNI_COMMAND: 'ADD' })).toThrow('required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing');
  });
  it('validates interface names as the kernel does', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', '0123456789abcdef']) expect(() => validateIfname(bad)).toThrow(CniError);
    for (const good of ['eth0', 'net1', '0123456789abcde', 'a.b-c_d']) expect(() => validateIfname(good)).not.toThrow();
  });
});

describe('versions', () => {
  it('compares numerically', () => {
    expect(compareVersions('0.10.0', '0.4.0')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
  });
  it('refuses what it does not speak with code 1', () => {
    expect(() => requireSupported('0.2.0')).toThrow(expect.objectContaining({ code: 1 }));
    expect(() => requireSupported('abc')).toThrow(expect.objectContaining({ code: 6 }));
  });
});

describe('result conversion', () => {
  const current: Result = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', mtu: 1400, sandbox: '/run/netns/x' }],
    ips: [
      { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
      { address: 'fd00::2/64', interface: 0 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1', mtu: 1400, priority: 5 }],
    dns: { nameservers: ['10.0.0.1'] },
  };
  it('downgrades to 0.4.0 with ip versions and plain routes', () => {
    expect(convertResult(current, '0.4.0')).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', mac: 'aa:bb:cc:dd:ee:ff', sandbox: '/run/netns/x' }],
      ips: [
        { version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
        { version: '6', address: 'fd00::2/64', interface: 0 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
      dns: { nameservers: ['10.0.0.1'] },
    });
  });
  it('round-trips 0.3.1 through the current shape', () => {
    const old = convertResult(current, '0.3.1');
    expect(convertResult(toCurrent(old), '0.3.1')).toEqual(old);
    expect(toCurrent(old).ips?.[0]).toEqual({ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 });
  });
  it('keeps 1.1.0 fields for 1.0.0 and up', () => {
    expect(convertResult(current, '1.0.0')).toEqual({ ...current, cniVersion: '1.0.0' });
  });
});

describe('runPlugin', () => {
  function io(env: NodeJS.ProcessEnv, stdin: string): Io & { out: string[] } {
    const out: string[] = [];
    return { env, readStdin: () => stdin, writeStdout: (t) => void out.push(t), out };
  }
  const calls: string[] = [];
  const plugin: Plugin<NetConf> = {
    name: 'fake',
    validate: validateNetConf,
    add: () => ({ cniVersion: '1.1.0', ips: [{ address: '10.1.0.2/16' }] }),
    check: () => void calls.push('check'),
    del: () => {
      throw new Error('boom');
    },
    gc: (_c, valid) => void calls.push(`gc:${valid.length}`),
    status: () => {
      throw new CniError(50, 'not ready');
    },
  };
  const conf = JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'fake' });
  const env = { CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0', CNI_PATH: '/x' };

  it('a thrown Error becomes code 999 with its message', async () => {
    const i = io({ ...env, CNI_COMMAND: 'DEL' }, conf);
    expect(await runPlugin(plugin, i)).toBe(1);
    expect(JSON.parse(i.out[0]!)).toEqual({ cniVersion: '0.4.0', code: 999, msg: 'boom' });
  });
  it("an error about the environment is answered in the input's version", async () => {
    const i = io({ CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0', CNI_PATH: '/x', CNI_NETNS: '/proc/self/ns/net' }, conf);
    expect(await runPlugin(plugin, i)).toBe(1);
    expect(JSON.parse(i.out[0]!)).toMatchObject({ cniVersion: '0.4.0', code: 4 });
  });
  it('a CniError keeps its code', async () => {
    const i = io({ CNI_COMMAND: 'STATUS' }, JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'fake' }));
    expect(await runPlugin(plugin, i)).toBe(1);
    expect(JSON.parse(i.out[0]!)).toMatchObject({ code: 50, msg: 'not ready' });
  });
  it('GC receives the valid attachments', async () => {
    const i = io({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'fake', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'b' }] }));
    expect(await runPlugin(plugin, i)).toBe(0);
    expect(calls).toContain('gc:1');
    expect(i.out).toEqual([]);
  });
});
