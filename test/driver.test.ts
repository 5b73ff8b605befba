// The chaining driver through `cnikit cni …` (cnitool's commands), exec'd in
// a lab host namespace so every plugin it runs, and every rule they write,
// stays there. Chains of cnikit's plugins (in-process), of the reference
// plugins from /usr/lib/cni with cnikit's loopback, and of a recording
// script plugin that shows exactly what each plugin is given.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, writeFileSync, readFileSync, statSync, existsSync, chmodSync, symlinkSync, rmSync, copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Lab, type PluginCall } from './lab.ts';
import { BIN, REFERENCE_BIN, bin } from './dist.ts';
import { ping } from './net.ts';

let lab: Lab;
/** A copy of the built executable and its plugin links: a rebuild during the run cannot pull it away. */
let cnikit: string;
let ownBin: string;
let confDir: string;
let cacheDir: string;
/** Test plugins: recorder, sleeper. */
let scriptBin: string;
/** cnikit's loopback, then the reference plugins: a mixed CNI_PATH. */
let mixedPath: string;

const RECORDER = `#!${process.execPath}
// Logs every call (command, CNI_* and stdin) to conf.log; ADD passes
// prevResult on (or makes an empty result), or prints conf.emit as it is;
// conf.fail = a command makes that command fail with conf.failCode, and
// conf.silent = a command makes it print nothing.
const fs = require('node:fs');
const env = process.env;
const text = fs.readFileSync(0, 'utf8');
if (env.CNI_COMMAND === 'VERSION') {
  process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] }));
  process.exit(0);
}
const conf = JSON.parse(text);
fs.appendFileSync(conf.log, JSON.stringify({
  command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS, ifname: env.CNI_IFNAME,
  args: env.CNI_ARGS, path: env.CNI_PATH, conf,
}) + '\\n');
if (conf.fail === env.CNI_COMMAND) {
  process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: conf.failCode, msg: 'told to fail', details: 'by the test' }));
  process.exit(1);
}
if (conf.silent === env.CNI_COMMAND) process.exit(0);
if (env.CNI_COMMAND === 'ADD' && conf.emit) {
  process.stdout.write(JSON.stringify(conf.emit));
} else if (env.CNI_COMMAND === 'ADD') {
  const r = conf.prevResult ?? { cniVersion: conf.cniVersion, interfaces: [], ips: [] };
  r.cniVersion = conf.cniVersion;
  r.seen = [...(r.seen ?? []), conf.tag];
  process.stdout.write(JSON.stringify(r));
}
`;

beforeAll(() => {
  lab = Lab.create();
  confDir = join(lab.dir, 'net.d');
  cacheDir = join(lab.dir, 'cache');
  scriptBin = join(lab.dir, 'scriptbin');
  const mixed = join(lab.dir, 'mixbin');
  ownBin = join(lab.dir, 'bin');
  mkdirSync(ownBin);
  cnikit = join(ownBin, 'cnikit');
  copyFileSync(bin('cnikit'), cnikit);
  chmodSync(cnikit, 0o755);
  for (const name of readdirSync(BIN)) if (name !== 'cnikit') symlinkSync('cnikit', join(ownBin, name));
  mkdirSync(confDir);
  mkdirSync(scriptBin);
  mkdirSync(mixed);
  writeFileSync(join(scriptBin, 'recorder'), RECORDER);
  // Ignores SIGTERM, as a wedged plugin may: only SIGKILL ends it.
  writeFileSync(join(scriptBin, 'sleeper'), `#!/bin/sh\ntrap '' TERM\necho $$ > "${join(lab.dir, 'sleeper.pid')}"\nexec sleep 30\n`);
  for (const s of ['recorder', 'sleeper']) chmodSync(join(scriptBin, s), 0o755);
  symlinkSync(cnikit, join(mixed, 'loopback'));
  mixedPath = `${mixed}:${scriptBin}:${REFERENCE_BIN}`;
});
afterAll(() => lab?.destroy());

function writeList(name: string, list: Record<string, unknown>): string {
  const file = join(confDir, `10-${name}.conflist`);
  // Indented on purpose: the cache must hold the bytes as written.
  writeFileSync(file, JSON.stringify({ name, ...list }, null, 2));
  return file;
}

function cni(args: string[], path = ownBin) {
  return lab.exec(cnikit, ['cni', ...args, '--config-dir', confDir, '--cache-dir', cacheDir, '--cni-path', path]);
}

function ok(r: { status: number | null; stdout: string; stderr: string }) {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

/** Host-side veths on a bridge (0 when the bridge is gone): each test looks only at its own. */
function vethsOn(bridge: string): number {
  const r = lab.exec('ip', ['-j', 'link', 'show', 'master', bridge, 'type', 'veth']);
  return r.status === 0 ? (JSON.parse(r.stdout || '[]') as unknown[]).length : 0;
}

function addressesIn(netns: string, dev: string): string[] {
  const links = JSON.parse(lab.ip(['-j', 'addr', 'show', 'dev', dev], netns)) as { addr_info: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

function isUp(netns: string, dev: string): boolean {
  const [link] = JSON.parse(lab.ip(['-j', 'link', 'show', 'dev', dev], netns)) as { flags: string[] }[];
  return link!.flags.includes('UP');
}

function natRules(): string {
  return lab.exec('iptables-save', ['-t', 'nat']).stdout;
}

function cacheFile(net: string, cid: string, ifname = 'eth0'): string {
  return join(cacheDir, 'results', `${net}-${cid}-${ifname}`);
}

const ports = (hostPort: number) => JSON.stringify({ portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] });

describe('cnikit cni with cnikit\'s plugins (in-process)', () => {
  function network(name: string, subnet: string, portmap: Record<string, unknown> = {}) {
    return writeList(name, {
      cniVersion: '1.0.0',
      cniVersions: ['0.4.0', '1.0.0', '1.1.0', '9.9.9'],
      plugins: [
        {
          type: 'bridge', bridge: `dr-${name}`, isGateway: true, isDefaultGateway: true, ipMasq: true,
          dataDir: join(lab.dir, 'state'),
          ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(lab.dir, 'ipam') },
        },
        { type: 'portmap', capabilities: { portMappings: true }, dataDir: join(lab.dir, 'state'), ...portmap },
      ],
    });
  }

  it('ADD runs the list with the highest common version and caches the result as libcni does; CHECK; DEL in reverse', () => {
    const file = network('drv1', '10.90.1.0/24');
    const netns = lab.container();
    const result = JSON.parse(ok(cni(['add', 'drv1', netns, '--container-id', 'c1', '--capability-args', ports(8080)]))) as { cniVersion: string; ips: { address: string }[] };
    expect(result.cniVersion).toBe('1.1.0');
    expect(result.ips[0]!.address).toBe('10.90.1.2/24');
    expect(ping(lab, netns, '10.90.1.1')).toBe(true);
    // portmap got the capability argument it declared.
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).toContain('tcp . 8080 : 10.90.1.2 . 80');

    const cached = JSON.parse(readFileSync(cacheFile('drv1', 'c1'), 'utf8'));
    expect(statSync(cacheFile('drv1', 'c1')).mode & 0o777).toBe(0o600);
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: 'c1', ifName: 'eth0', networkName: 'drv1', netns, capabilityArgs: JSON.parse(ports(8080)) });
    expect(Buffer.from(cached.config, 'base64').equals(readFileSync(file))).toBe(true);
    expect(cached.result).toEqual(result);

    ok(cni(['check', 'drv1', netns, '--container-id', 'c1']));
    lab.ip(['addr', 'flush', 'dev', 'eth0'], netns);
    const bad = cni(['check', 'drv1', netns, '--container-id', 'c1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/plugin type="bridge" failed \(check\): .*10\.90\.1\.2.*\(CNI error 100\)/);

    ok(cni(['del', 'drv1', netns, '--container-id', 'c1']));
    expect(existsSync(cacheFile('drv1', 'c1'))).toBe(false);
    expect(vethsOn('dr-drv1')).toBe(0);
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).not.toContain('8080');
    // DEL without a cached result still succeeds.
    ok(cni(['del', 'drv1', netns, '--container-id', 'c1']));
  });

  it('a failing plugin stops the ADD, names itself and keeps its code, and nothing of the earlier plugins remains', () => {
    network('drv2', '10.90.2.0/24', { conditionsV4: ['-j', 'ACCEPT'] });
    const netns = lab.container();
    const r = cni(['add', 'drv2', netns, '--container-id', 'c2', '--capability-args', ports(8080)]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/plugin type="portmap" failed \(add\): .*\(CNI error 7\)/);
    expect(vethsOn('dr-drv2')).toBe(0);
    expect(lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status).not.toBe(0);
    expect(existsSync(join(lab.dir, 'ipam', 'drv2', '10.90.2.2'))).toBe(false);
    expect(existsSync(cacheFile('drv2', 'c2'))).toBe(false);
  });

  it('GC deletes the cached attachments that are not valid, then runs GC on each plugin', () => {
    network('drv3', '10.90.3.0/24');
    const a = lab.container();
    const b = lab.container();
    ok(cni(['add', 'drv3', a, '--container-id', 'ga']));
    ok(cni(['add', 'drv3', b, '--container-id', 'gb']));
    expect(vethsOn('dr-drv3')).toBe(2);
    ok(cni(['gc', 'drv3', '--valid', JSON.stringify([{ containerID: 'ga', ifname: 'eth0' }])]));
    expect(vethsOn('dr-drv3')).toBe(1);
    expect(existsSync(cacheFile('drv3', 'gb'))).toBe(false);
    expect(existsSync(join(lab.dir, 'ipam', 'drv3', '10.90.3.3'))).toBe(false);
    expect(ping(lab, a, '10.90.3.1')).toBe(true);
    ok(cni(['status', 'drv3']));
    ok(cni(['del', 'drv3', a, '--container-id', 'ga']));
    expect(vethsOn('dr-drv3')).toBe(0);
  });

  it('execs the plugins from CNI_PATH with --exec, with the same effect', () => {
    network('drv4', '10.90.4.0/24');
    const netns = lab.container();
    const add = JSON.parse(ok(cni(['add', 'drv4', netns, '--container-id', 'c4', '--exec'])));
    expect(add.ips[0].address).toBe('10.90.4.2/24');
    ok(cni(['del', 'drv4', netns, '--container-id', 'c4', '--exec']));
    expect(vethsOn('dr-drv4')).toBe(0);
  });
});

describe('cnikit cni with the reference plugins and cnikit\'s loopback', () => {
  // Reference bridge + host-local + portmap (exec'd from /usr/lib/cni, they
  // speak up to 1.0.0) and cnikit's loopback, found first in CNI_PATH and so
  // run in-process.
  function network(name: string, subnet: string, portmap: Record<string, unknown> = {}) {
    return writeList(name, {
      cniVersion: '0.4.0',
      cniVersions: ['1.0.0'],
      plugins: [
        {
          type: 'bridge', bridge: `rf-${name}`, isGateway: true, ipMasq: true,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(lab.dir, 'ipam-ref') },
        },
        { type: 'portmap', capabilities: { portMappings: true }, ...portmap },
        { type: 'loopback' },
      ],
    });
  }
  const lease = (net: string, ip: string) => join(lab.dir, 'ipam-ref', net, ip);

  it('ADD: an address, the port published, lo up, the cache as libcni writes it; CHECK; DEL in reverse removes it all; DEL again', () => {
    const file = network('ref1', '10.91.1.0/24');
    const netns = lab.container();
    const out = ok(cni(['add', 'ref1', netns, '--container-id', 'r1', '--args', 'IgnoreUnknown=1', '--capability-args', ports(8081)], mixedPath));
    const result = JSON.parse(out) as { cniVersion: string; ips: { address: string; gateway: string }[] };
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.ips[0]).toMatchObject({ address: '10.91.1.2/24', gateway: '10.91.1.1' });
    expect(addressesIn(netns, 'eth0')).toContain('10.91.1.2/24');
    expect(isUp(netns, 'lo')).toBe(true);
    expect(ping(lab, netns, '10.91.1.1')).toBe(true);
    expect(readFileSync(lease('ref1', '10.91.1.2'), 'utf8')).toBe('r1\r\neth0');
    // The reference portmap's iptables chains, in the lab host only.
    expect(natRules()).toMatch(/CNI-DN-\S+ .*--dport 8081 -j DNAT --to-destination 10\.91\.1\.2:80/);

    const path = cacheFile('ref1', 'r1');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const cached = JSON.parse(readFileSync(path, 'utf8'));
    expect(Object.keys(cached)).toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns', 'cniArgs', 'capabilityArgs', 'result']);
    expect(cached).toEqual({
      kind: 'cniCacheV1', containerId: 'r1', config: readFileSync(file).toString('base64'), ifName: 'eth0', networkName: 'ref1',
      netns, cniArgs: [['IgnoreUnknown', '1']], capabilityArgs: JSON.parse(ports(8081)), result,
    });

    // CHECK runs bridge (and its host-local), then portmap. The reference
    // portmap 1.1.x checks its IPv4 rules in the ip6tables chain too, so its
    // CHECK fails wherever ip6tables works: that error comes back named.
    const check = cni(['check', 'ref1', netns, '--container-id', 'r1'], mixedPath);
    expect(check.stderr).toMatch(/^cnikit: plugin type="portmap" failed \(check\): could not check ipv6 dnat: .*\(CNI error 999\)$/m);

    ok(cni(['del', 'ref1', netns, '--container-id', 'r1'], mixedPath));
    expect(vethsOn('rf-ref1')).toBe(0);
    expect(existsSync(lease('ref1', '10.91.1.2'))).toBe(false);
    expect(existsSync(path)).toBe(false);
    expect(natRules()).not.toMatch(/8081|CNI-DN-|10\.91\.1\./);
    expect(isUp(netns, 'lo')).toBe(false);
    ok(cni(['del', 'ref1', netns, '--container-id', 'r1'], mixedPath));
  });

  it('CHECK passes through the reference bridge and host-local and cnikit\'s loopback, and names the plugin that finds a fault', () => {
    writeList('ref7', {
      cniVersion: '1.0.0',
      plugins: [
        { type: 'bridge', bridge: 'rf-ref7', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.91.7.0/24' }]], dataDir: join(lab.dir, 'ipam-ref') } },
        { type: 'loopback' },
      ],
    });
    const netns = lab.container();
    ok(cni(['add', 'ref7', netns, '--container-id', 'r7'], mixedPath));
    ok(cni(['check', 'ref7', netns, '--container-id', 'r7'], mixedPath));
    lab.ip(['link', 'set', 'lo', 'down'], netns);
    expect(cni(['check', 'ref7', netns, '--container-id', 'r7'], mixedPath).stderr).toBe(`cnikit: plugin type="loopback" failed (check): lo in ${netns} is not up (CNI error 100)\n`);
    lab.ip(['link', 'set', 'lo', 'up'], netns);
    lab.ip(['addr', 'flush', 'dev', 'eth0'], netns);
    expect(cni(['check', 'ref7', netns, '--container-id', 'r7'], mixedPath).stderr).toMatch(/^cnikit: plugin type="bridge" failed \(check\): .*\(CNI error \d+\)$/m);
    ok(cni(['del', 'ref7', netns, '--container-id', 'r7'], mixedPath));
    expect(vethsOn('rf-ref7')).toBe(0);
    expect(existsSync(lease('ref7', '10.91.7.2'))).toBe(false);
  });

  it('DEL without a cache entry, given the runtime\'s own capability arguments, still removes everything', () => {
    network('ref2', '10.91.2.0/24');
    const netns = lab.container();
    ok(cni(['add', 'ref2', netns, '--container-id', 'r2', '--capability-args', ports(8082)], mixedPath));
    rmSync(cacheFile('ref2', 'r2'));
    // The reference portmap's DEL does nothing without its portMappings:
    // runtimes pass them again from their own records (or libcni's cache).
    ok(cni(['del', 'ref2', netns, '--container-id', 'r2', '--capability-args', ports(8082)], mixedPath));
    expect(vethsOn('rf-ref2')).toBe(0);
    expect(existsSync(lease('ref2', '10.91.2.2'))).toBe(false);
    expect(natRules()).not.toMatch(/8082|10\.91\.2\./);
  });

  it('GC deletes a cached attachment that is not in the valid set and keeps the valid one', () => {
    network('ref3', '10.91.3.0/24');
    const a = lab.container();
    const b = lab.container();
    ok(cni(['add', 'ref3', a, '--container-id', 'keep'], mixedPath));
    ok(cni(['add', 'ref3', b, '--container-id', 'stale'], mixedPath));
    expect(vethsOn('rf-ref3')).toBe(2);
    ok(cni(['gc', 'ref3', '--valid', JSON.stringify([{ containerID: 'keep', ifname: 'eth0' }])], mixedPath));
    expect(vethsOn('rf-ref3')).toBe(1);
    expect(existsSync(lease('ref3', '10.91.3.3'))).toBe(false);
    expect(existsSync(cacheFile('ref3', 'stale'))).toBe(false);
    expect(existsSync(lease('ref3', '10.91.3.2'))).toBe(true);
    expect(addressesIn(a, 'eth0')).toContain('10.91.3.2/24');
    ok(cni(['del', 'ref3', a, '--container-id', 'keep'], mixedPath));
    expect(vethsOn('rf-ref3')).toBe(0);
  });

  it('a bad config for the 2nd plugin: the error names it and keeps its code, and nothing of the 1st remains', () => {
    network('ref4', '10.91.4.0/24', { snat: 'not a boolean' });
    const netns = lab.container();
    // What the reference portmap itself answers to that config.
    const direct = lab.plugin(join(REFERENCE_BIN, 'portmap'), {
      command: 'ADD', containerId: 'x', netns, ifname: 'eth0', path: REFERENCE_BIN,
      config: { cniVersion: '1.0.0', name: 'ref4', type: 'portmap', snat: 'not a boolean' },
    });
    const own = JSON.parse(direct.stdout) as { code: number; msg: string };
    const r = cni(['add', 'ref4', netns, '--container-id', 'r4', '--capability-args', ports(8084)], mixedPath);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`plugin type="portmap" failed (add): ${own.msg}`);
    expect(r.stderr).toContain(`(CNI error ${own.code})`);
    expect(vethsOn('rf-ref4')).toBe(0);
    expect(lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status).not.toBe(0);
    expect(existsSync(lease('ref4', '10.91.4.2'))).toBe(false);
    expect(existsSync(cacheFile('ref4', 'r4'))).toBe(false);
    expect(natRules()).not.toMatch(/10\.91\.4\./);
    expect(isUp(netns, 'lo')).toBe(false);
  });

  it('a plugin that hangs (ignoring SIGTERM) is killed at the timeout, named, and the plugins before it undone', () => {
    writeList('ref5', {
      cniVersion: '1.0.0',
      plugins: [
        { type: 'bridge', bridge: 'rf-ref5', ipam: { type: 'host-local', ranges: [[{ subnet: '10.91.5.0/24' }]], dataDir: join(lab.dir, 'ipam-ref') } },
        { type: 'sleeper' },
      ],
    });
    const netns = lab.container();
    const r = cni(['add', 'ref5', netns, '--container-id', 'r5', '--timeout', '1500'], mixedPath);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/plugin type="sleeper" failed \(add\): did not finish within 1500 ms/);
    const pid = Number(readFileSync(join(lab.dir, 'sleeper.pid'), 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(vethsOn('rf-ref5')).toBe(0);
    expect(lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status).not.toBe(0);
    expect(existsSync(lease('ref5', '10.91.5.2'))).toBe(false);
  });

  it('DELetes an attachment whose cache entry libcni wrote (as Podman\'s CNI backend does)', () => {
    const file = network('ref6', '10.91.6.0/24');
    const list = JSON.parse(readFileSync(file, 'utf8')) as { plugins: Record<string, unknown>[] };
    const netns = lab.container();
    // The runtime's side, by hand: each plugin exec'd with the derived config.
    let prev: unknown;
    for (const p of list.plugins) {
      const conf = { ...p, name: 'ref6', cniVersion: '1.0.0', ...(prev ? { prevResult: prev } : {}), ...(p.capabilities ? { runtimeConfig: JSON.parse(ports(8086)) } : {}) };
      const r = lab.plugin(join(REFERENCE_BIN, p.type as string), { command: 'ADD', containerId: 'podman6', netns, ifname: 'eth0', path: REFERENCE_BIN, config: conf });
      expect(r.status).toBe(0);
      prev = JSON.parse(r.stdout);
    }
    expect(natRules()).toContain('--dport 8086');
    // libcni's cachedInfo as Go's encoding/json writes it: struct order, no spaces.
    mkdirSync(join(cacheDir, 'results'), { recursive: true });
    writeFileSync(cacheFile('ref6', 'podman6'), JSON.stringify({
      kind: 'cniCacheV1', containerId: 'podman6', config: readFileSync(file).toString('base64'), ifName: 'eth0', networkName: 'ref6',
      netns, capabilityArgs: JSON.parse(ports(8086)), result: prev,
    }));
    ok(cni(['del', 'ref6', netns, '--container-id', 'podman6'], mixedPath));
    expect(vethsOn('rf-ref6')).toBe(0);
    expect(existsSync(lease('ref6', '10.91.6.2'))).toBe(false);
    expect(natRules()).not.toMatch(/8086|10\.91\.6\./);
    expect(existsSync(cacheFile('ref6', 'podman6'))).toBe(false);
  });
});

/** One logged call: the CNI_* a plugin saw and its stdin. */
interface Call extends Omit<PluginCall, 'env' | 'config'> {
  conf: Record<string, unknown> & { tag: string; prevResult?: { seen?: string[] }; runtimeConfig?: unknown };
}

describe('what each plugin of a chain is given (a recording plugin)', () => {
  let log: string;
  function calls(): Call[] {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    rmSync(log, { force: true });
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Call);
  }
  const order = (cs: Call[]) => cs.map((c) => `${c.command} ${c.conf.tag}`);

  function recorders(name: string, extra: Record<string, unknown> = {}, second: Record<string, unknown> = {}) {
    log = join(lab.dir, `${name}.log`);
    writeList(name, {
      cniVersion: '1.1.0',
      ...extra,
      plugins: [
        { type: 'recorder', name: 'one', tag: 'one', log },
        { type: 'recorder', name: 'two', tag: 'two', log, capabilities: { portMappings: true, mac: false }, ...second },
        { type: 'recorder', name: 'three', tag: 'three', log, capabilities: { ips: true } },
      ],
    });
  }
  const caps = { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'udp' }], mac: '02:00:00:00:00:01' };

  it('ADD in order with name, version, prevResult and only the declared capability arguments; CHECK; DEL in reverse with the cached ones', () => {
    recorders('rec1');
    const netns = lab.container();
    const result = JSON.parse(ok(cni(['add', 'rec1', netns, '--container-id', 'k1', '--args', 'IgnoreUnknown=1;K=V', '--capability-args', JSON.stringify(caps)], scriptBin)));
    expect(result.seen).toEqual(['one', 'two', 'three']);
    const add = calls();
    expect(order(add)).toEqual(['ADD one', 'ADD two', 'ADD three']);
    for (const c of add) {
      expect(c).toMatchObject({ containerId: 'k1', netns, ifname: 'eth0', args: 'IgnoreUnknown=1;K=V', path: scriptBin });
      expect(c.conf).toMatchObject({ name: 'rec1', cniVersion: '1.1.0' });
    }
    expect(add[0]!.conf.prevResult).toBeUndefined();
    expect(add[1]!.conf.prevResult!.seen).toEqual(['one']);
    expect(add[2]!.conf.prevResult!.seen).toEqual(['one', 'two']);
    expect(add[1]!.conf.runtimeConfig).toEqual({ portMappings: caps.portMappings });
    expect(add[0]!.conf.runtimeConfig).toBeUndefined();
    expect(add[2]!.conf.runtimeConfig).toBeUndefined();

    ok(cni(['check', 'rec1', netns, '--container-id', 'k1'], scriptBin));
    const check = calls();
    expect(order(check)).toEqual(['CHECK one', 'CHECK two', 'CHECK three']);
    // CNI_ARGS and capability arguments come back from the cache.
    for (const c of check) expect(c.conf.prevResult).toEqual(result);
    expect(check[1]!.conf.runtimeConfig).toEqual({ portMappings: caps.portMappings });
    expect(check[0]!.args).toBe('IgnoreUnknown=1;K=V');

    ok(cni(['del', 'rec1', netns, '--container-id', 'k1'], scriptBin));
    const del = calls();
    expect(order(del)).toEqual(['DEL three', 'DEL two', 'DEL one']);
    for (const c of del) expect(c).toMatchObject({ args: 'IgnoreUnknown=1;K=V', conf: { prevResult: result } });
    expect(del[1]!.conf.runtimeConfig).toEqual({ portMappings: caps.portMappings });

    // Without a cache entry: no prevResult, and a CHECK has nothing to check against.
    ok(cni(['del', 'rec1', netns, '--container-id', 'k1'], scriptBin));
    expect(calls().map((c) => [c.command, c.conf.prevResult, c.args])).toEqual([['DEL', undefined, undefined], ['DEL', undefined, undefined], ['DEL', undefined, undefined]]);
    const check2 = cni(['check', 'rec1', netns, '--container-id', 'k1'], scriptBin);
    expect(check2.stderr).toMatch(/no cached result for container k1 \(eth0\).*\(CNI error 3\)/);
    expect(calls()).toEqual([]);
  });

  it('a failure in the middle: DEL of the plugins run so far, the failing one included, in reverse; its code kept', () => {
    recorders('rec2', {}, { fail: 'ADD', failCode: 107 });
    const netns = lab.container();
    const r = cni(['add', 'rec2', netns, '--container-id', 'k2'], scriptBin);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('cnikit: plugin type="recorder" name="two" failed (add): told to fail (CNI error 107)\n');
    const cs = calls();
    expect(order(cs)).toEqual(['ADD one', 'ADD two', 'DEL two', 'DEL one']);
    expect(cs[2]!.conf.prevResult!.seen).toEqual(['one']);
    expect(existsSync(cacheFile('rec2', 'k2'))).toBe(false);
  });

  it('an ADD that prints no result is that plugin\'s decoding error (6), and is undone', () => {
    recorders('rec7', {}, { silent: 'ADD' });
    const r = cni(['add', 'rec7', lab.container(), '--container-id', 'k7'], scriptBin);
    expect(r.stderr).toBe('cnikit: plugin type="recorder" name="two" failed (add): returned no result (CNI error 6)\n');
    expect(order(calls())).toEqual(['ADD one', 'ADD two', 'DEL two', 'DEL one']);
    expect(existsSync(cacheFile('rec7', 'k7'))).toBe(false);
  });

  it('results travel in the list\'s version: a plugin that prints 1.1.0 for a 0.4.0 list is converted for the next plugin and the cache', () => {
    const emit = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ address: '10.9.9.2/24', gateway: '10.9.9.1', interface: 0 }, { address: 'fd00::2/64' }] };
    recorders('rec8', { cniVersion: '0.4.0' }, { emit });
    const netns = lab.container();
    const printed = JSON.parse(ok(cni(['add', 'rec8', netns, '--container-id', 'k8'], scriptBin)));
    const as040 = {
      cniVersion: '0.4.0', interfaces: [{ name: 'eth0', sandbox: '/x' }],
      ips: [{ version: '4', address: '10.9.9.2/24', gateway: '10.9.9.1', interface: 0 }, { version: '6', address: 'fd00::2/64' }],
    };
    const cs = calls();
    expect(cs[2]!.conf.prevResult).toEqual(as040);
    expect(printed).toMatchObject(as040);
    expect(JSON.parse(readFileSync(cacheFile('rec8', 'k8'), 'utf8')).result).toMatchObject(as040);
    ok(cni(['del', 'rec8', netns, '--container-id', 'k8'], scriptBin));
    for (const c of calls()) expect(c.conf.prevResult).toMatchObject(as040);
  });

  it('GC: DEL of the stale cached attachments with their own arguments, then the GC verb with the valid ones; STATUS to each', () => {
    recorders('rec3');
    const a = lab.container();
    const b = lab.container();
    ok(cni(['add', 'rec3', a, '--container-id', 'live'], scriptBin));
    ok(cni(['add', 'rec3', b, '--container-id', 'gone', '--ifname', 'net1', '--args', 'IgnoreUnknown=1'], scriptBin));
    calls();
    const valid = [{ containerID: 'live', ifname: 'eth0' }];
    ok(cni(['gc', 'rec3', '--valid', JSON.stringify(valid)], scriptBin));
    const gc = calls();
    expect(order(gc)).toEqual(['DEL three', 'DEL two', 'DEL one', 'GC one', 'GC two', 'GC three']);
    expect(gc[0]).toMatchObject({ containerId: 'gone', ifname: 'net1', netns: b, args: 'IgnoreUnknown=1' });
    for (const c of gc.slice(3)) {
      expect(c.containerId).toBeUndefined();
      expect(c.conf).toMatchObject({ name: 'rec3', cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid });
    }
    expect(existsSync(cacheFile('rec3', 'gone', 'net1'))).toBe(false);
    expect(existsSync(cacheFile('rec3', 'live'))).toBe(true);

    ok(cni(['status', 'rec3'], scriptBin));
    const st = calls();
    expect(order(st)).toEqual(['STATUS one', 'STATUS two', 'STATUS three']);
    expect(st[0]!.containerId).toBeUndefined();
  });

  it('disableCheck and disableGC skip those verbs; before 1.1.0 there is no GC verb or STATUS', () => {
    recorders('rec4', { disableCheck: true, disableGC: 'true' });
    const netns = lab.container();
    ok(cni(['add', 'rec4', netns, '--container-id', 'k4'], scriptBin));
    calls();
    ok(cni(['check', 'rec4', netns, '--container-id', 'k4'], scriptBin));
    ok(cni(['gc', 'rec4'], scriptBin));
    expect(calls()).toEqual([]);
    expect(existsSync(cacheFile('rec4', 'k4'))).toBe(true);

    recorders('rec5', { cniVersion: '1.0.0' });
    ok(cni(['add', 'rec5', netns, '--container-id', 'k5'], scriptBin));
    calls();
    ok(cni(['gc', 'rec5'], scriptBin));
    expect(order(calls())).toEqual(['DEL three', 'DEL two', 'DEL one']);
    ok(cni(['status', 'rec5'], scriptBin));
    expect(calls()).toEqual([]);
  });

  it('takes cnitool\'s environment and container ID; a plugin missing from CNI_PATH is named', () => {
    recorders('rec9');
    const netns = lab.container();
    const env = { ...process.env, CNI_IFNAME: 'net9', CNI_ARGS: 'IgnoreUnknown=1', CAP_ARGS: JSON.stringify(caps) };
    const r = lab.exec(cnikit, ['cni', 'add', 'rec9', netns, '--config-dir', confDir, '--cache-dir', cacheDir, '--cni-path', scriptBin], { env });
    ok(r);
    const [first, second] = calls();
    const cid = `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;
    expect(first).toMatchObject({ containerId: cid, ifname: 'net9', args: 'IgnoreUnknown=1' });
    expect(second!.conf.runtimeConfig).toEqual({ portMappings: caps.portMappings });
    expect(existsSync(cacheFile('rec9', cid, 'net9'))).toBe(true);

    writeList('rec10', { cniVersion: '1.1.0', plugins: [{ type: 'recorder', tag: 'one', log }, { type: 'nosuch' }] });
    const missing = cni(['add', 'rec10', netns, '--container-id', 'k10'], scriptBin);
    expect(missing.stderr).toBe(`cnikit: plugin type="nosuch" failed (add): failed to find plugin "nosuch" in path [${scriptBin}] (CNI error 7)\n`);
    expect(order(calls())).toEqual(['ADD one', 'DEL one']);
  });

  it('refuses a container ID or interface name that could leave the cache dir', () => {
    recorders('rec6');
    const netns = lab.container();
    expect(cni(['add', 'rec6', netns, '--container-id', '../x'], scriptBin).stderr).toMatch(/invalid CNI_CONTAINERID.*\(CNI error 4\)/);
    expect(cni(['del', 'rec6', netns, '--container-id', 'k6', '--ifname', 'a/b'], scriptBin).stderr).toMatch(/invalid CNI_IFNAME.*\(CNI error 4\)/);
    expect(calls()).toEqual([]);
  });
});
