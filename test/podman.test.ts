// Podman as a real client: its CNI backend runs cnikit's plugins (dist/bin)
// on a network made by `cnikit network create`, for a busybox httpd
// container with -p 8080:80. Podman runs inside the lab host namespace
// (nsenter, not `ip netns exec`, which remounts /sys) with all its state in
// the lab's temporary dir.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, copyFileSync, symlinkSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { BIN, DIST } from './dist.ts';
import { addOutside, startPeerServer, UPLINK } from './net.ts';

const CACHE = '/var/lib/cni/results';
let lab: Lab;
let outside: string;
let env: NodeJS.ProcessEnv;
let rootfs: string;
const servers: ChildProcess[] = [];
const names: string[] = [];

beforeAll(async () => {
  lab = Lab.create();
  outside = addOutside(lab);
  const w = lab.dir;
  rootfs = join(w, 'rootfs');
  for (const d of ['bin', 'www', 'proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  symlinkSync('busybox', join(rootfs, 'bin/sh'));
  writeFileSync(join(rootfs, 'www/index.html'), 'hello from busybox\n');
  for (const d of ['net.d', 'graph', 'run', 'tmp']) mkdirSync(join(w, d));
  writeFileSync(join(w, 'containers.conf'), `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${BIN}"]\nnetwork_config_dir = "${join(w, 'net.d')}"\n[engine]\nruntime = "runc"\ntmp_dir = "${join(w, 'tmp')}"\n`);
  writeFileSync(join(w, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${join(w, 'run')}"\ngraphroot = "${join(w, 'graph')}"\n`);
  env = {
    ...process.env,
    CONTAINERS_CONF: join(w, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(w, 'storage.conf'),
    CNIKIT_CONFIG_DIR: join(w, 'net.d'),
    CNIKIT_DATA_DIR: join(w, 'data'),
    CNIKIT_STATE_DIR: join(w, 'state'),
    NODE_EXTRA_CA_CERTS: '',
  };
  const created = lab.exec(join(DIST, 'cnikit'), ['network', 'create', '--subnet', '10.99.0.0/24', 'podnet'], { env });
  expect(created.stderr).toBe('');
  await startPeerServer(outside, 'tcp', UPLINK.outside4, 9000, servers);
}, 120_000);

afterAll(() => {
  for (const n of names) podman(['rm', '-f', '-t', '0', n]);
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

function podman(args: string[]) {
  return lab.exec('podman', args, { env });
}

function runHttpd(suffix: string): string {
  const name = `${RUN_PREFIX}-${suffix}`;
  names.push(name);
  const r = podman([
    'run', '-d', '--name', name, '--network', 'podnet', '-p', '8080:80',
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--stop-signal', 'SIGKILL',
    '--rootfs', rootfs, '/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www',
  ]);
  expect(r.stderr.replace(/time=.*level=warning.*\n/g, '')).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.trim();
}

function httpGet(): string | undefined {
  const r = lab.exec('timeout', ['3', 'bash', '-c', `exec 3<>/dev/tcp/${UPLINK.host4}/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`], { netns: outside });
  return r.status === 0 ? r.stdout : undefined;
}

const leases = () => readdirSync(join(lab.dir, 'data', 'networks', 'podnet')).filter((f) => f.startsWith('10.'));
const veths = () => (JSON.parse(lab.ip(['-j', 'link', 'show', 'type', 'veth'])) as { ifname: string }[]).filter((l) => l.ifname !== 'uplink0');

describe('Podman on cnikit', () => {
  it('runs a busybox httpd: an address from our IPAM, the published port answers from outside, outbound is masqueraded; podman rm leaves nothing', () => {
    const id = runHttpd('httpd1');
    expect(leases()).toHaveLength(1);
    expect(httpGet()).toMatch(/^HTTP\/1\.[01] 200 OK[\s\S]*hello from busybox/);
    const out = podman(['exec', `${RUN_PREFIX}-httpd1`, '/bin/busybox', 'nc', UPLINK.outside4, '9000']);
    expect(out.stdout.trim()).toBe(UPLINK.host4);
    // Podman cached the result in libcni's format.
    expect(JSON.parse(readFileSync(join(CACHE, `podnet-${id}-eth0`), 'utf8'))).toMatchObject({ kind: 'cniCacheV1', containerId: id, networkName: 'podnet' });

    expect(podman(['rm', '-f', '-t', '0', `${RUN_PREFIX}-httpd1`]).status).toBe(0);
    expect(leases()).toEqual([]);
    expect(veths()).toEqual([]);
    expect(httpGet()).toBeUndefined();
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).not.toContain('8080');
    expect(existsSync(join(CACHE, `podnet-${id}-eth0`))).toBe(false);
  });

  it('`cnikit cni del` removes an attachment from the cache entry Podman wrote', () => {
    const id = runHttpd('httpd2');
    expect(httpGet()).toMatch(/hello from busybox/);
    const del = lab.exec(join(DIST, 'cnikit'), ['cni', 'del', 'podnet', '--container-id', id, '--cache-dir', '/var/lib/cni', '--config-dir', join(lab.dir, 'net.d')], { env });
    expect(del.stderr).toBe('');
    expect(del.status).toBe(0);
    expect(leases()).toEqual([]);
    expect(veths()).toEqual([]);
    expect(httpGet()).toBeUndefined();
    expect(existsSync(join(CACHE, `podnet-${id}-eth0`))).toBe(false);
    // Podman's own DEL afterwards finds nothing to do and still succeeds.
    expect(podman(['rm', '-f', '-t', '0', `${RUN_PREFIX}-httpd2`]).status).toBe(0);
  });
});
