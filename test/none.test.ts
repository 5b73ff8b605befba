// none/loopback as a runtime uses it: a fresh namespace, lo brought up.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Lab } from './lab.ts';
import { bin, BIN, DIST } from './dist.ts';
import { validateResult, validateResult040 } from '../lib/spec/validators.gen.js';

let lab: Lab;
beforeAll(() => {
  lab = Lab.create();
});
afterAll(() => lab.destroy());

function loFlags(netns: string): string[] {
  return (JSON.parse(lab.ip(['-j', 'link', 'show', 'lo'], netns)) as { flags: string[] }[])[0]!.flags;
}

function run(binary: string, command: string, netns: string | undefined, config: object) {
  return lab.plugin(binary, { command, containerId: 'ctr-1', netns, ifname: 'eth0', path: BIN, config });
}

const conf = (v: string, extra: object = {}) => ({ cniVersion: v, name: 'lo-net', type: 'loopback', ...extra });

describe.each(['none', 'loopback'])('%s', (name) => {
  it('ADD brings lo up and prints a valid 1.1.0 result', () => {
    const netns = lab.container();
    expect(loFlags(netns)).not.toContain('UP');
    const r = run(bin(name), 'ADD', netns, conf('1.1.0'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(validateResult(result)).toBe(true);
    expect(result.cniVersion).toBe('1.1.0');
    expect(result.interfaces).toEqual([{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: netns }]);
    expect(result.ips).toContainEqual({ address: '127.0.0.1/8', interface: 0 });
    expect(result.ips).toContainEqual({ address: '::1/128', interface: 0 });
    expect(loFlags(netns)).toContain('UP');
    // A real packet over the loopback it brought up.
    expect(lab.exec('ping', ['-c1', '-W2', '127.0.0.1'], { netns }).status).toBe(0);
  });

  it('prints the 0.4.0 shape for a 0.4.0 config', () => {
    const netns = lab.container();
    const r = run(bin(name), 'ADD', netns, conf('0.4.0'));
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(validateResult040(result)).toBe(true);
    expect(result.cniVersion).toBe('0.4.0');
    expect(result.ips).toContainEqual({ version: '4', address: '127.0.0.1/8', interface: 0 });
    expect(result.ips).toContainEqual({ version: '6', address: '::1/128', interface: 0 });
  });

  it('passes a prevResult through, converted to the config version', () => {
    const netns = lab.container();
    const prevResult = {
      cniVersion: '0.3.1',
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:05', sandbox: netns }],
      ips: [{ version: '4', address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['10.0.0.1'] },
    };
    const r = run(bin(name), 'ADD', netns, conf('0.3.1', { prevResult }));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(prevResult);
    expect(loFlags(netns)).toContain('UP');
  });

  it.each([
    ['an unknown version', { cniVersion: '0.9.9', ips: [] }, 1, 'prevResult'],
    ['an address that is no IP', { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] }, 7, 'prevResult.ips.0.address'],
    ['a route to no CIDR', { cniVersion: '1.0.0', routes: [{ dst: '10.0.0.0/33' }] }, 7, 'prevResult.routes.0.dst'],
  ])('a prevResult with %s: code %i naming it, lo left down; DEL with it still succeeds', (_what, prevResult, code, field) => {
    const netns = lab.container();
    const r = run(bin(name), 'ADD', netns, conf('1.0.0', { prevResult }));
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code, msg: expect.stringContaining(field) });
    expect(loFlags(netns)).not.toContain('UP');
    expect(run(bin(name), 'DEL', netns, conf('1.0.0', { prevResult })).status).toBe(0);
  });

  it('CHECK passes after ADD and fails once lo is down; DEL is idempotent', () => {
    const netns = lab.container();
    expect(run(bin(name), 'ADD', netns, conf('1.1.0')).status).toBe(0);
    expect(run(bin(name), 'CHECK', netns, conf('1.1.0')).status).toBe(0);
    lab.ip(['link', 'set', 'lo', 'down'], netns);
    const bad = run(bin(name), 'CHECK', netns, conf('1.1.0'));
    expect(bad.status).not.toBe(0);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 100, msg: expect.stringContaining('lo') });
    lab.ip(['link', 'set', 'lo', 'up'], netns);
    const del = run(bin(name), 'DEL', netns, conf('1.1.0'));
    expect(del.status).toBe(0);
    expect(del.stdout).toBe('');
    expect(loFlags(netns)).not.toContain('UP');
    expect(run(bin(name), 'DEL', netns, conf('1.1.0')).status).toBe(0);
  });

  it('DEL succeeds when the namespace is gone or not given', () => {
    const netns = lab.container();
    expect(run(bin(name), 'ADD', netns, conf('1.1.0')).status).toBe(0);
    lab.deleteNetns(netns);
    expect(run(bin(name), 'DEL', netns, conf('1.1.0')).status).toBe(0);
    expect(run(bin(name), 'DEL', undefined, conf('1.1.0')).status).toBe(0);
  });

  it('STATUS and GC succeed on 1.1.0', () => {
    expect(lab.plugin(bin(name), { command: 'STATUS', config: conf('1.1.0') }).status).toBe(0);
    const gc = lab.plugin(bin(name), {
      command: 'GC',
      path: BIN,
      config: conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }),
    });
    expect(gc.status).toBe(0);
    expect(gc.stdout).toBe('');
  });
});

describe('the standalone executable', () => {
  it('copied alone to an empty directory runs none ADD', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cnikit-alone-'));
    try {
      const exe = join(dir, 'cnikit');
      copyFileSync(join(DIST, 'cnikit'), exe);
      const netns = lab.container();
      const r = lab.exec(exe, ['none'], {
        input: JSON.stringify(conf('1.1.0')),
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x1', CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: dir },
      });
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).ips).toContainEqual({ address: '127.0.0.1/8', interface: 0 });
      expect(loFlags(netns)).toContain('UP');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes no settings from a .env in the directory the runtime runs it in', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cnikit-dotenv-'));
    try {
      const log = join(dir, 'from-dotenv.log');
      writeFileSync(join(dir, '.env'), `CNIKIT_LOG_FILE=${log}\n`);
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x2', CNI_IFNAME: 'eth0', CNI_PATH: BIN, PATH: process.env.PATH };
      const add = (extra: Record<string, string>) =>
        lab.exec('bash', ['-c', `cd ${dir} && exec ${bin('loopback')}`], { input: JSON.stringify(conf('1.1.0')), env: { ...env, CNI_NETNS: lab.container(), ...extra } });
      expect(add({}).status).toBe(0);
      expect(existsSync(log)).toBe(false);
      // The same setting in the environment does take effect.
      expect(add({ CNIKIT_LOG_FILE: log }).status).toBe(0);
      expect(existsSync(log)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
