// Podman as a real client: its CNI backend runs cnikit's plugins (dist/bin)
// on a network made by `cnikit network create` and on one made by `podman
// network create` (Podman's own conflist: bridge, portmap, firewall, tuning),
// for a busybox httpd container with -p 8080:80, also on a lab host whose
// FORWARD policy drops. Podman runs inside the lab host namespace
// (nsenter, not `ip netns exec`, which remounts /sys) with all its state in
// the lab's temporary dir.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, copyFileSync, symlinkSync, readdirSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { BIN, DIST } from './dist.ts';
import { addOutside, startPeerServer, UPLINK } from './net.ts';

const CACHE = '/var/lib/cni/results';
const PODMAN_NET = `${RUN_PREFIX}-pnet`;
const RECORDS = '/run/cni/cnikit';
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
  // Podman's own conflist has no dataDir: host-local keeps its leases in the default place.
  rmSync(join('/var/lib/cni/networks', PODMAN_NET), { recursive: true, force: true });
  // Records are per host namespace (lib/state): the lab host's directory goes with the lab.
  if (lab) rmSync(lab.hostState(RECORDS), { recursive: true, force: true });
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

function podman(args: string[]) {
  return lab.exec('podman', args, { env });
}

function runHttpd(suffix: string, network = 'podnet'): string {
  const name = `${RUN_PREFIX}-${suffix}`;
  names.push(name);
  const r = podman([
    'run', '-d', '--name', name, '--network', network, '-p', '8080:80',
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

/** Lines of the lab host's iptables (every table) and nftables rules and elements that name the address. */
function firewallLinesFor(ip: string): string[] {
  const re = new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}([^0-9]|$)`);
  const text = [lab.exec('iptables-save', []).stdout, lab.exec('nft', ['list', 'ruleset']).stdout].join('\n');
  return text.split('\n').filter((l) => re.test(l));
}

function recordsOf(network: string): string[] {
  const out: string[] = [];
  for (const plugin of ['bridge', 'portmap', 'firewall', 'tuning']) {
    const dir = join(lab.hostState(RECORDS), plugin, network);
    if (existsSync(dir)) out.push(...readdirSync(dir).map((f) => `${plugin}/${f}`));
  }
  return out;
}

describe("Podman's own conflist (podman network create) on cnikit", () => {
  const podLeases = () => {
    const dir = join('/var/lib/cni/networks', PODMAN_NET);
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('10.')) : [];
  };

  /** One container's life on Podman's network: what a user checks. */
  function lifecycle(suffix: string): void {
    const name = `${RUN_PREFIX}-${suffix}`;
    const id = runHttpd(suffix, PODMAN_NET);
    const leased = podLeases();
    expect(leased).toHaveLength(1);
    const ip = leased[0]!;
    // The address Podman reports is the one cnikit's host-local leased.
    const inspect = JSON.parse(podman(['inspect', name]).stdout) as { NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }[];
    expect(inspect[0]!.NetworkSettings.Networks[PODMAN_NET]!.IPAddress).toBe(ip);
    expect(httpGet()).toMatch(/^HTTP\/1\.[01] 200 OK[\s\S]*hello from busybox/);
    const out = podman(['exec', name, '/bin/busybox', 'nc', UPLINK.outside4, '9000']);
    expect(out.stdout.trim()).toBe(UPLINK.host4);
    // tuning as Podman writes it has no options: it changes nothing and keeps no record.
    expect(recordsOf(PODMAN_NET).sort()).toEqual(['bridge', 'firewall', 'portmap'].map((p) => `${p}/${id}@eth0.json`));

    expect(podman(['rm', '-f', '-t', '0', name]).status).toBe(0);
    expect(podLeases()).toEqual([]);
    expect(veths()).toEqual([]);
    expect(firewallLinesFor(ip)).toEqual([]);
    expect(recordsOf(PODMAN_NET)).toEqual([]);
    expect(httpGet()).toBeUndefined();
  }

  it('podman network create writes bridge, portmap, firewall and tuning, all run from cnikit', () => {
    const created = podman(['network', 'create', '--subnet', '10.98.0.0/24', PODMAN_NET]);
    expect(created.stderr).toBe('');
    expect(created.status).toBe(0);
    const conflist = JSON.parse(readFileSync(join(lab.dir, 'net.d', `${PODMAN_NET}.conflist`), 'utf8')) as { plugins: { type: string }[] };
    expect(conflist.plugins.map((p) => p.type)).toEqual(expect.arrayContaining(['bridge', 'portmap', 'firewall', 'tuning']));
    lifecycle('pod1');
  });

  it('the same on a host whose FORWARD policy drops: outbound flows and the published port answers from outside', () => {
    expect(lab.exec('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
    try {
      lifecycle('pod2');
    } finally {
      lab.exec('iptables', ['-P', 'FORWARD', 'ACCEPT']);
    }
  });
});
