// containerd's CRI calling pattern (go-cni), which a Kubernetes node depends
// on: Go-style capability keys, loopback as its own network, DEL over the
// list with the netns and prevResult (StopPodSandbox) and then again with
// CNI_NETNS="" and no prevResult (RemovePodSandbox), and DEL without
// prevResult after a failed ADD. The first DEL error would wedge the sandbox
// for good, so every DEL must succeed and leave nothing.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN } from './dist.ts';
import { startPeerServer, tcpAsk, addOutside, UPLINK } from './net.ts';

let lab: Lab;
let outside: string;
const servers: ChildProcess[] = [];

beforeAll(() => {
  lab = Lab.create();
  outside = addOutside(lab);
});

afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

const K8S_ARGS = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=u';

let nets = 0;
let ids = 0;

/** A kubenet-style conflist (bridge + host-local + portmap) and containerd's loopback network. */
function node(backend: 'iptables' | 'nftables') {
  const n = nets++;
  const name = `k8s${n}`;
  const stateDir = join(lab.dir, 'state');
  const ipamDir = join(lab.dir, 'ipam');
  const bridge = {
    type: 'bridge',
    bridge: `tdbr${n}`,
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipMasqBackend: backend,
    dataDir: stateDir,
    ipam: { type: 'host-local', ranges: [[{ subnet: `10.244.${n}.0/24` }]], dataDir: ipamDir },
  };
  const portmap = { type: 'portmap', backend, dataDir: stateDir, capabilities: { portMappings: true } };
  const conf = (plugin: object, extra: object = {}) => ({ cniVersion: '1.0.0', name, ...plugin, ...extra });
  const loopback = { cniVersion: '0.3.1', name: 'cni-loopback', type: 'loopback' };
  const exec = (plugin: string, command: string, id: string, netns: string, config: object) =>
    lab.plugin(bin(plugin), { command, containerId: id, netns, ifname: plugin === 'loopback' ? 'lo' : 'eth0', args: K8S_ARGS, path: BIN, config });

  const leases = () => {
    const dir = join(ipamDir, name);
    return existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9.]+$/.test(f)) : [];
  };
  const records = () => {
    const out: string[] = [];
    for (const p of ['bridge', 'portmap']) {
      const dir = join(stateDir, p, name);
      if (existsSync(dir)) out.push(...readdirSync(dir).map((f) => `${p}/${f}`));
    }
    return out;
  };
  const hostVeths = () => {
    const links = JSON.parse(lab.ip(['-j', '-d', 'link', 'show', 'master', `tdbr${n}`])) as { ifname: string }[];
    return links.map((l) => l.ifname);
  };
  return { name, bridge, portmap, conf, loopback, exec, leases, records, hostVeths };
}

/** DNAT rules and nft map elements that name this address. */
function dnatMentioning(address: string): string[] {
  const ipt = (lab.exec('iptables-save', ['-t', 'nat']).stdout).split('\n').filter((l) => /DNAT|CNIK-P-/.test(l));
  const nft = ['ports4', 'ports4ip'].flatMap((m) => lab.exec('nft', ['list', 'map', 'inet', 'cnikit', m]).stdout.split('\n'));
  const re = new RegExp(`${address.replace(/[.]/g, '\\.')}(?![0-9.])`);
  return [...ipt, ...nft].filter((l) => re.test(l));
}

/** go-cni's portMappings: Go struct field names, no JSON tags. */
const goPort = (hostPort: number, containerPort = 80) => ({ HostPort: hostPort, ContainerPort: containerPort, Protocol: 'tcp', HostIP: '' });

describe.each(['nftables', 'iptables'] as const)('containerd-style teardown with %s', (backend) => {
  const port = backend === 'nftables' ? 18080 : 18081;

  it('ADD with Go-style keys publishes the port; Stop (DEL with netns + prevResult) then Remove (DEL, CNI_NETNS="", no prevResult) both succeed and leave nothing', async () => {
    const k = node(backend);
    const netns = lab.container();
    const id = `td${ids++}`;
    const rc = { portMappings: [goPort(port)] };

    expect(k.exec('loopback', 'ADD', id, netns, k.loopback).status).toBe(0);
    const b = k.exec('bridge', 'ADD', id, netns, k.conf(k.bridge));
    expect(b.stdout).not.toContain('"code"');
    const prev = JSON.parse(b.stdout) as { ips: { address: string }[] };
    const p = k.exec('portmap', 'ADD', id, netns, k.conf(k.portmap, { runtimeConfig: rc, prevResult: prev }));
    expect(p.stdout).not.toContain('"code"');
    const final = JSON.parse(p.stdout) as object;
    const v4 = prev.ips[0]!.address.split('/')[0]!;

    // The Go-style mapping works: a client outside reaches the pod through the host port.
    await startPeerServer(netns, 'tcp', '0.0.0.0', 80, servers);
    expect(tcpAsk(lab, outside, UPLINK.host4, port)).toBe(UPLINK.outside4);
    expect(dnatMentioning(v4).length).toBeGreaterThan(0);

    // StopPodSandbox: reverse order, netns and the cached result.
    expect(k.exec('portmap', 'DEL', id, netns, k.conf(k.portmap, { runtimeConfig: rc, prevResult: final })).stdout).toBe('');
    expect(k.exec('bridge', 'DEL', id, netns, k.conf(k.bridge, { prevResult: final })).status).toBe(0);
    expect(k.exec('loopback', 'DEL', id, netns, k.loopback).status).toBe(0);
    expect(tcpAsk(lab, outside, UPLINK.host4, port, 1)).toBeUndefined();

    // The runtime removes the netns, then RemovePodSandbox runs the whole round again.
    lab.deleteNetns(netns);
    for (const plugin of ['portmap', 'bridge', 'loopback'] as const) {
      const config = plugin === 'loopback' ? k.loopback : k.conf(plugin === 'portmap' ? k.portmap : k.bridge, plugin === 'portmap' ? { runtimeConfig: rc } : {});
      const r = k.exec(plugin, 'DEL', id, '', config);
      expect(r.stdout + r.stderr, plugin).toBe('');
      expect(r.status, plugin).toBe(0);
    }
    expect(k.hostVeths()).toEqual([]);
    expect(k.leases()).toEqual([]);
    expect(k.records()).toEqual([]);
    expect(dnatMentioning(v4)).toEqual([]);
  });

  it('a failed ADD (host port already published) is followed by DEL without prevResult: success, nothing of the failed pod left, the first pod untouched', async () => {
    const k = node(backend);
    const first = { netns: lab.container(), id: `td${ids++}` };
    const b1 = JSON.parse(k.exec('bridge', 'ADD', first.id, first.netns, k.conf(k.bridge)).stdout) as { ips: { address: string }[] };
    expect(k.exec('portmap', 'ADD', first.id, first.netns, k.conf(k.portmap, { runtimeConfig: { portMappings: [goPort(port + 10)] }, prevResult: b1 })).status).toBe(0);
    await startPeerServer(first.netns, 'tcp', '0.0.0.0', 80, servers);

    const netns = lab.container();
    const id = `td${ids++}`;
    const rc = { portMappings: [goPort(port + 10)] };
    expect(k.exec('loopback', 'ADD', id, netns, k.loopback).status).toBe(0);
    const b = k.exec('bridge', 'ADD', id, netns, k.conf(k.bridge));
    const prev = JSON.parse(b.stdout) as { ips: { address: string }[] };
    const v4 = prev.ips[0]!.address.split('/')[0]!;
    const p = k.exec('portmap', 'ADD', id, netns, k.conf(k.portmap, { runtimeConfig: rc, prevResult: prev }));
    expect(p.status).toBe(1);
    expect(JSON.parse(p.stdout)).toMatchObject({ code: 102 });

    // libcni has no cached result for a failed ADD: DEL goes without prevResult, first with the netns, then without.
    for (const ns of [netns, '']) {
      expect(k.exec('portmap', 'DEL', id, ns, k.conf(k.portmap, { runtimeConfig: rc })).status).toBe(0);
      expect(k.exec('bridge', 'DEL', id, ns, k.conf(k.bridge)).status).toBe(0);
      expect(k.exec('loopback', 'DEL', id, ns, k.loopback).status).toBe(0);
    }
    expect(k.hostVeths().length).toBe(1);
    expect(k.leases().length).toBe(1);
    expect(dnatMentioning(v4)).toEqual([]);
    // The first pod still owns its port.
    expect(tcpAsk(lab, outside, UPLINK.host4, port + 10)).toBe(UPLINK.outside4);

    expect(k.exec('portmap', 'DEL', first.id, first.netns, k.conf(k.portmap, { prevResult: b1 })).status).toBe(0);
    expect(k.exec('bridge', 'DEL', first.id, first.netns, k.conf(k.bridge)).status).toBe(0);
    expect(k.records()).toEqual([]);
    expect(k.leases()).toEqual([]);
  });

  it('DEL with a garbage runtimeConfig and prevResult succeeds and removes what ADD made (DNAT, veth, lease, record)', () => {
    const k = node(backend);
    const netns = lab.container();
    const id = `td${ids++}`;
    const prev = JSON.parse(k.exec('bridge', 'ADD', id, netns, k.conf(k.bridge)).stdout) as { ips: { address: string }[] };
    const v4 = prev.ips[0]!.address.split('/')[0]!;
    expect(k.exec('portmap', 'ADD', id, netns, k.conf(k.portmap, { runtimeConfig: { portMappings: [goPort(port + 20)] }, prevResult: prev })).status).toBe(0);
    expect(dnatMentioning(v4).length).toBeGreaterThan(0);
    expect(k.hostVeths().length).toBe(1);

    const garbage = {
      runtimeConfig: { portMappings: [goPort(port + 20), 'garbage', { HostPort: 'x' }], ips: ['not-an-ip'], mac: 'zz', ipRanges: 'no' },
      prevResult: { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] },
    };
    for (const plugin of ['portmap', 'bridge'] as const) {
      const r = k.exec(plugin, 'DEL', id, netns, k.conf(plugin === 'portmap' ? k.portmap : k.bridge, garbage));
      expect(r.stdout + r.stderr, plugin).toBe('');
      expect(r.status, plugin).toBe(0);
    }
    expect(dnatMentioning(v4)).toEqual([]);
    expect(k.hostVeths()).toEqual([]);
    expect(k.leases()).toEqual([]);
    expect(k.records()).toEqual([]);
    // The same garbage on ADD is refused with 7, and makes nothing.
    const again = lab.container();
    const r = k.exec('bridge', 'ADD', `td${ids++}`, again, k.conf(k.bridge, garbage));
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7 });
    expect(k.hostVeths()).toEqual([]);
    expect(k.leases()).toEqual([]);
  });
});

describe('host and loopback DEL', () => {
  it('succeed with CNI_NETNS="", a garbage runtimeConfig and no prevResult, repeatedly', () => {
    const garbage = { runtimeConfig: { portMappings: ['garbage'] }, prevResult: { cniVersion: '7.0.0' } };
    for (const plugin of ['host', 'loopback', 'none']) {
      for (let i = 0; i < 2; i++) {
        const r = lab.plugin(bin(plugin), { command: 'DEL', containerId: 'gone', netns: '', ifname: 'eth0', path: BIN, config: { cniVersion: '1.0.0', name: 'n', type: plugin, ...garbage } });
        expect(r.stdout + r.stderr, plugin).toBe('');
        expect(r.status, plugin).toBe(0);
      }
    }
  });

  it('loopback DEL of a netns path that is no longer a namespace (unpinned by the runtime) succeeds', () => {
    const path = join(lab.dir, 'unpinned-netns');
    lab.exec('touch', [path]);
    const r = lab.plugin(bin('loopback'), { command: 'DEL', containerId: 'gone', netns: path, ifname: 'lo', path: BIN, config: { cniVersion: '0.3.1', name: 'cni-loopback', type: 'loopback' } });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
