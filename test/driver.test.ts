// The chaining driver through `cnikit cni …` (cnitool's commands), run in a
// lab host namespace: a conflist of bridge + portmap as a runtime holds it,
// libcni's result cache, DEL in reverse, CHECK, GC, and a failing plugin
// that leaves nothing of the ones before it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, writeFileSync, readFileSync, statSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { BIN, DIST } from './dist.ts';
import { ping } from './net.ts';

let lab: Lab;
let confDir: string;
let cacheDir: string;
beforeAll(() => {
  lab = Lab.create();
  confDir = join(lab.dir, 'net.d');
  cacheDir = join(lab.dir, 'cache');
  mkdirSync(confDir);
});
afterAll(() => lab?.destroy());

function network(name: string, subnet: string, portmap: Record<string, unknown> = {}) {
  const list = {
    cniVersion: '1.0.0',
    cniVersions: ['0.4.0', '1.0.0', '1.1.0', '9.9.9'],
    name,
    plugins: [
      {
        type: 'bridge', bridge: `dr-${name}`, isGateway: true, isDefaultGateway: true, ipMasq: true,
        dataDir: join(lab.dir, 'state'),
        ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(lab.dir, 'ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true }, dataDir: join(lab.dir, 'state'), ...portmap },
    ],
  };
  writeFileSync(join(confDir, `10-${name}.conflist`), JSON.stringify(list));
  return list;
}

function cni(args: string[], path = BIN) {
  return lab.exec(join(DIST, 'cnikit'), ['cni', ...args, '--config-dir', confDir, '--cache-dir', cacheDir, '--cni-path', path]);
}

const ports = JSON.stringify({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });

function vethCount(): number {
  return (JSON.parse(lab.ip(['-j', '-d', 'link', 'show', 'type', 'veth'])) as unknown[]).length;
}

describe('cnikit cni (the chaining driver)', () => {
  it('ADD runs the list with the highest common version, caches the result as libcni does; CHECK; DEL in reverse', () => {
    const list = network('drv1', '10.90.1.0/24');
    const netns = lab.container();
    const add = cni(['add', 'drv1', netns, '--container-id', 'c1', '--capability-args', ports]);
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    const result = JSON.parse(add.stdout) as { cniVersion: string; ips: { address: string }[]; interfaces: { name: string }[] };
    expect(result.cniVersion).toBe('1.1.0');
    expect(result.ips[0]!.address).toBe('10.90.1.2/24');
    expect(ping(lab, netns, '10.90.1.1')).toBe(true);
    // portmap got the capability argument it declared.
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).toContain('tcp . 8080 : 10.90.1.2 . 80');

    const file = join(cacheDir, 'results', 'drv1-c1-eth0');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cached = JSON.parse(readFileSync(file, 'utf8'));
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: 'c1', ifName: 'eth0', networkName: 'drv1', netns, capabilityArgs: JSON.parse(ports) });
    expect(JSON.parse(Buffer.from(cached.config, 'base64').toString())).toEqual(list);
    expect(cached.result.ips[0].address).toBe('10.90.1.2/24');

    expect(cni(['check', 'drv1', netns, '--container-id', 'c1']).status).toBe(0);
    lab.ip(['addr', 'flush', 'dev', 'eth0'], netns);
    const bad = cni(['check', 'drv1', netns, '--container-id', 'c1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/plugin bridge failed \(check\).*10\.90\.1\.2.*\(CNI error 100\)/);

    expect(cni(['del', 'drv1', netns, '--container-id', 'c1']).status).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(vethCount()).toBe(0);
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).not.toContain('8080');
    // DEL without a cached result still succeeds.
    expect(cni(['del', 'drv1', netns, '--container-id', 'c1']).status).toBe(0);
  });

  it('a failing plugin stops the ADD, names itself and keeps its code, and nothing of the earlier plugins remains', () => {
    network('drv2', '10.90.2.0/24', { conditionsV4: ['-j', 'ACCEPT'] });
    const netns = lab.container();
    const r = cni(['add', 'drv2', netns, '--container-id', 'c2', '--capability-args', ports]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/plugin portmap failed \(add\).*\(CNI error 7\)/);
    expect(vethCount()).toBe(0);
    expect(existsSync(join(lab.dir, 'ipam', 'drv2', '10.90.2.2'))).toBe(false);
    expect(existsSync(join(cacheDir, 'results', 'drv2-c2-eth0'))).toBe(false);
  });

  it('GC deletes the cached attachments that are not valid, then runs GC on each plugin', () => {
    network('drv3', '10.90.3.0/24');
    const a = lab.container();
    const b = lab.container();
    expect(cni(['add', 'drv3', a, '--container-id', 'ga']).status).toBe(0);
    expect(cni(['add', 'drv3', b, '--container-id', 'gb']).status).toBe(0);
    expect(vethCount()).toBe(2);
    const gc = cni(['gc', 'drv3', '--valid', JSON.stringify([{ containerID: 'ga', ifname: 'eth0' }])]);
    expect(gc.stderr).toBe('');
    expect(vethCount()).toBe(1);
    expect(existsSync(join(cacheDir, 'results', 'drv3-gb-eth0'))).toBe(false);
    expect(existsSync(join(lab.dir, 'ipam', 'drv3', '10.90.3.3'))).toBe(false);
    expect(ping(lab, a, '10.90.3.1')).toBe(true);
    expect(cni(['status', 'drv3']).status).toBe(0);
    expect(cni(['del', 'drv3', a, '--container-id', 'ga']).status).toBe(0);
  });

  it('execs the plugins from CNI_PATH with --exec, with the same effect', () => {
    network('drv4', '10.90.4.0/24');
    const netns = lab.container();
    const add = cni(['add', 'drv4', netns, '--container-id', 'c4', '--exec']);
    expect(add.status).toBe(0);
    expect(JSON.parse(add.stdout).ips[0].address).toBe('10.90.4.2/24');
    expect(cni(['del', 'drv4', netns, '--container-id', 'c4', '--exec']).status).toBe(0);
    expect(vethCount()).toBe(0);
  });

  it('kills a plugin that hangs, and says so', () => {
    const dir = join(lab.dir, 'slowbin');
    mkdirSync(dir);
    writeFileSync(join(dir, 'sleeper'), '#!/bin/sh\nexec sleep 30\n');
    chmodSync(join(dir, 'sleeper'), 0o755);
    writeFileSync(join(confDir, '20-slow.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'slow', type: 'sleeper' }));
    const r = cni(['add', 'slow', lab.container(), '--timeout', '500'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/plugin sleeper did not finish within 500 ms/);
  });
});
