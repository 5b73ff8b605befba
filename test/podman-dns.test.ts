// Podman 4.3 (CNI backend) with cnikit's dnsname: `podman network create`
// finds a dnsname plugin in the plugin dir and writes it into the conflist
// by itself; containers run with --name and --network-alias resolve each
// other (busybox nslookup), podman rm removes the names, and the responder
// exits after the last. firewall and tuning, which Podman's conflists also
// name, come from the reference plugins until cnikit has its own.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, writeFileSync, copyFileSync, symlinkSync, readFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { BIN } from './dist.ts';
import { DEFAULT_DATA_DIR } from '../lib/state/attachments.ts';
import { namespaceStateDir } from '../lib/state/scope.ts';
import { responderPid as findResponder, alive } from './dnsq.ts';

let lab: Lab;
let env: NodeJS.ProcessEnv;
let rootfs: string;
const names: string[] = [];
const NET = `${RUN_PREFIX}-dnsnet`;
const name = (n: string) => `${RUN_PREFIX}-${n}`;

beforeAll(() => {
  lab = Lab.create();
  const w = lab.dir;
  rootfs = join(w, 'rootfs');
  for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  symlinkSync('busybox', join(rootfs, 'bin/sh'));
  for (const d of ['net.d', 'graph', 'run', 'tmp']) mkdirSync(join(w, d));
  writeFileSync(join(w, 'resolv.conf'), '');
  writeFileSync(join(w, 'containers.conf'), `[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["${BIN}"]\nnetwork_config_dir = "${join(w, 'net.d')}"\n[engine]\nruntime = "runc"\ntmp_dir = "${join(w, 'tmp')}"\n`);
  writeFileSync(join(w, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${join(w, 'run')}"\ngraphroot = "${join(w, 'graph')}"\n`);
  env = {
    ...process.env,
    CONTAINERS_CONF: join(w, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(w, 'storage.conf'),
    // No upstream: only the containers' own names are asked here.
    CNIKIT_DNS_RESOLV_CONF: join(w, 'resolv.conf'),
    NODE_EXTRA_CA_CERTS: '',
  };
}, 60_000);

afterAll(() => {
  for (const n of names) podman(['rm', '-f', '-t', '0', n]);
  podman(['network', 'rm', '-f', NET]);
  const pid = responderPid();
  if (pid) process.kill(pid, 'SIGKILL');
  // The lab host's records directory under the default data dir goes with the lab.
  if (lab) rmSync(recordsRoot(), { recursive: true, force: true });
  // Podman's conflist has no dataDir: host-local keeps the network's leases in the default place.
  rmSync(join('/var/lib/cni/networks', NET), { recursive: true, force: true });
  lab?.destroy();
});

function podman(args: string[]) {
  return lab.exec('podman', args, { env });
}

/** Where the plugin keeps the lab host's names: the default data dir, keyed by that netns. */
function recordsRoot(): string {
  const ino = lab.exec('stat', ['-L', '-c', '%i', lab.hostPath]).stdout.trim();
  return join(namespaceStateDir(DEFAULT_DATA_DIR, ino), 'dnsname');
}

const responderPid = () => findResponder(lab, '/run/cni/cnikit');


function run(n: string, extra: string[] = []): void {
  names.push(name(n));
  const r = podman([
    'run', '-d', '--name', name(n), '--network', NET, ...extra,
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--stop-signal', 'SIGKILL',
    '--rootfs', rootfs, '/bin/busybox', 'sleep', '3600',
  ]);
  expect(r.stderr.replace(/time=.*level=warning.*\n/g, '')).toBe('');
  expect(r.status).toBe(0);
}

function nslookup(from: string, what: string) {
  return podman(['exec', name(from), '/bin/busybox', 'nslookup', what]);
}

describe('Podman with cnikit dnsname', () => {
  it('writes dnsname into the conflist, resolves names and aliases, podman rm removes them, the responder exits after the last', async () => {
    const created = podman(['network', 'create', '--subnet', '10.98.0.0/24', NET]);
    expect(created.status).toBe(0);
    const conflist = JSON.parse(readFileSync(join(lab.dir, 'net.d', `${NET}.conflist`), 'utf8'));
    expect(conflist.plugins).toContainEqual({ type: 'dnsname', domainName: 'dns.podman', capabilities: { aliases: true } });

    run('db');
    run('web', ['--network-alias', 'www']);
    const dbIP = JSON.parse(podman(['inspect', name('db')]).stdout)[0].NetworkSettings.Networks[NET].IPAddress as string;
    const webIP = JSON.parse(podman(['inspect', name('web')]).stdout)[0].NetworkSettings.Networks[NET].IPAddress as string;
    expect(podman(['exec', name('web'), '/bin/busybox', 'cat', '/etc/resolv.conf']).stdout).toMatch(/nameserver 10\.98\.0\.1/);

    const byName = nslookup('web', name('db'));
    expect(byName.status).toBe(0);
    expect(byName.stdout).toContain(`Address: ${dbIP}`);
    expect(nslookup('db', 'www').stdout).toContain(`Address: ${webIP}`);
    expect(nslookup('db', `${name('web')}.dns.podman`).stdout).toContain(`Address: ${webIP}`);
    expect(podman(['exec', name('web'), '/bin/busybox', 'ping', '-c1', '-W2', name('db')]).stdout).toContain(dbIP);

    const pid = responderPid();
    expect(pid).toBeDefined();
    expect(podman(['rm', '-f', '-t', '0', name('db')]).status).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    const gone = nslookup('web', name('db'));
    expect(gone.status).not.toBe(0);
    expect(gone.stdout + gone.stderr).toMatch(/NXDOMAIN/);
    expect(alive(pid!)).toBe(true);

    expect(podman(['rm', '-f', '-t', '0', name('web')]).status).toBe(0);
    for (let i = 0; i < 50 && alive(pid!); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid!)).toBe(false);
    expect(readdirSync(join(recordsRoot(), 'records'))).toEqual([]);
  });
});
