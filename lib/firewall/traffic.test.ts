// Real traffic through the rules, for both backends. Topology, all inside
// namespaces of this run (the lab host stands in for the machine):
//
//   A1 10.20.0.2 fd20::2 ─┐                      ┌─ outside 10.200.0.2 fd00:200::2
//   A2 10.20.0.3 fd20::3 ─┴ tbr-a ─ lab host ─ veth
//   B1 10.21.0.2 fd21::2 ── tbr-b ─┘   (10.20.0.1, 10.21.0.1, 10.200.0.1 and the fdXX::1)
//
// The outside has no route back to the container subnets, so it answers a
// container only when the container's traffic is masqueraded.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { basename } from 'node:path';
import { Lab } from '../../test/lab.ts';
import { withNetns } from '../netns/index.ts';
import { parseIP, parsePrefix } from '../ip/index.ts';
import { openFirewall, type Backend, type Firewall, type MasqEntry, type NetworkPolicy, type PortMappingRequest } from './index.ts';

const PEER = fileURLToPath(new URL('./testdata/peer.mjs', import.meta.url));

describe.each<Backend>(['iptables', 'nftables'])('traffic through the %s backend', (backend) => {
  let lab: Lab;
  let fw: Firewall;
  const ns: Record<'a1' | 'a2' | 'b1' | 'out', string> = { a1: '', a2: '', b1: '', out: '' };
  const servers: ChildProcess[] = [];
  const inLab = <T>(fn: () => T): T => withNetns(lab.hostPath, fn);

  function sysctl(setting: string): void {
    const r = lab.exec('sysctl', ['-q', '-w', setting]);
    if (r.status !== 0) throw new Error(`sysctl ${setting}: ${r.stderr}`);
  }

  /** A container namespace with eth0 on the bridge (veth made in the lab host, peer created in the container). */
  function container(role: 'a1' | 'a2' | 'b1', bridge: string, v4: string, v6: string, gw4: string, gw6: string): void {
    const path = lab.container();
    ns[role] = path;
    const host = `v${role}`;
    lab.ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', basename(path)]);
    lab.ip(['link', 'set', host, 'master', bridge, 'up']);
    // Hairpin mode (the bridge plugin's hairpinMode): with bridge-nf-call-iptables the DNATed
    // frame of a container reaching its own published port is bridged back out of its own port.
    lab.ip(['link', 'set', host, 'type', 'bridge_slave', 'hairpin', 'on']);
    lab.ip(['link', 'set', 'lo', 'up'], path);
    lab.ip(['link', 'set', 'eth0', 'up'], path);
    lab.ip(['addr', 'add', v4, 'dev', 'eth0'], path);
    lab.ip(['addr', 'add', v6, 'dev', 'eth0', 'nodad'], path);
    lab.ip(['route', 'add', 'default', 'via', gw4], path);
    lab.ip(['-6', 'route', 'add', 'default', 'via', gw6], path);
  }

  async function serve(netns: string, proto: 'tcp' | 'udp', port: number, addr = '::'): Promise<void> {
    const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, PEER, 'serve', proto, String(port), addr], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
  }

  /** What the server at host:port saw as our address, "no answer", or "error CODE". */
  function ask(from: string, proto: 'tcp' | 'udp', host: string, port: number): string {
    const r = spawnSync('nsenter', [`--net=${from}`, '--', process.execPath, PEER, 'ask', proto, host, String(port)], { encoding: 'utf8', timeout: 10_000 });
    return r.stdout.trim();
  }

  beforeAll(async () => {
    lab = Lab.create();
    fw = openFirewall(backend);
    sysctl('net.ipv4.ip_forward=1');
    sysctl('net.ipv6.conf.all.forwarding=1');
    for (const [br, v4, v6] of [['tbr-a', '10.20.0.1/24', 'fd20::1/64'], ['tbr-b', '10.21.0.1/24', 'fd21::1/64']] as const) {
      lab.ip(['link', 'add', br, 'type', 'bridge']);
      lab.ip(['link', 'set', br, 'up']);
      lab.ip(['addr', 'add', v4, 'dev', br]);
      lab.ip(['addr', 'add', v6, 'dev', br, 'nodad']);
    }
    container('a1', 'tbr-a', '10.20.0.2/24', 'fd20::2/64', '10.20.0.1', 'fd20::1');
    container('a2', 'tbr-a', '10.20.0.3/24', 'fd20::3/64', '10.20.0.1', 'fd20::1');
    container('b1', 'tbr-b', '10.21.0.2/24', 'fd21::2/64', '10.21.0.1', 'fd21::1');
    ns.out = `/run/netns/${lab.addNetns('out')}`;
    lab.ip(['link', 'add', 'vout', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', basename(ns.out)]);
    lab.ip(['link', 'set', 'vout', 'up']);
    lab.ip(['addr', 'add', '10.200.0.1/24', 'dev', 'vout']);
    lab.ip(['addr', 'add', 'fd00:200::1/64', 'dev', 'vout', 'nodad']);
    lab.ip(['link', 'set', 'lo', 'up'], ns.out);
    lab.ip(['link', 'set', 'eth0', 'up'], ns.out);
    lab.ip(['addr', 'add', '10.200.0.2/24', 'dev', 'eth0'], ns.out);
    lab.ip(['addr', 'add', 'fd00:200::2/64', 'dev', 'eth0', 'nodad'], ns.out);
    // Servers that answer with the address they see.
    await serve(ns.out, 'udp', 5000);
    await serve(ns.out, 'tcp', 5000);
    for (const c of [ns.a1, ns.a2, ns.b1]) {
      await serve(c, 'tcp', 80);
      await serve(c, 'udp', 53);
    }
    await serve(lab.hostPath, 'tcp', 7000);
  });

  afterAll(() => {
    for (const s of servers) s.kill('SIGKILL');
    lab?.destroy();
  });

  const a1Masq: MasqEntry[] = [
    { address: parseIP('10.20.0.2'), subnet: parsePrefix('10.20.0.0/24') },
    { address: parseIP('fd20::2'), subnet: parsePrefix('fd20::/64') },
  ];
  const a1 = { network: 'tnet', containerId: 'a1', ifname: 'eth0' };

  it('masquerade: the outside sees the lab host, a neighbour on the subnet sees the real address', () => {
    expect(ask(ns.a1, 'udp', '10.200.0.2', 5000)).toBe('no answer');
    expect(ask(ns.a1, 'tcp', 'fd00:200::2', 5000)).toBe('no answer');
    inLab(() => fw.addMasquerade(a1, a1Masq));
    expect(ask(ns.a1, 'udp', '10.200.0.2', 5000)).toBe('10.200.0.1');
    expect(ask(ns.a1, 'tcp', '10.200.0.2', 5000)).toBe('10.200.0.1');
    expect(ask(ns.a1, 'tcp', 'fd00:200::2', 5000)).toBe('fd00:200::1');
    expect(ask(ns.a1, 'tcp', '10.20.0.3', 80)).toBe('10.20.0.2');
    expect(ask(ns.a1, 'tcp', 'fd20::3', 80)).toBe('fd20::2');
    // A2 has no masquerade of its own.
    expect(ask(ns.a2, 'udp', '10.200.0.2', 5000)).toBe('no answer');
    inLab(() => fw.delMasquerade(a1, a1Masq));
    expect(ask(ns.a1, 'udp', '10.200.0.2', 5000)).toBe('no answer');
  });

  it('isolation: an isolated bridge reaches neither another bridge nor is reached; icc=false blocks within the bridge', () => {
    const bridgeNf = lab.exec('sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']).stdout.trim();
    const a: NetworkPolicy = { bridge: 'tbr-a', subnets: [parsePrefix('10.20.0.0/24'), parsePrefix('fd20::/64')], isolate: true, icc: true };
    const b: NetworkPolicy = { bridge: 'tbr-b', subnets: [parsePrefix('10.21.0.0/24'), parsePrefix('fd21::/64')], isolate: false, icc: true };
    expect(ask(ns.a1, 'tcp', '10.21.0.2', 80)).toBe('10.20.0.2');
    expect(ask(ns.b1, 'tcp', 'fd20::2', 80)).toBe('fd21::2');
    inLab(() => fw.setup([{ kind: 'network', policy: a }, { kind: 'network', policy: b }]));
    expect(ask(ns.a1, 'tcp', '10.21.0.2', 80)).toBe('no answer');
    expect(ask(ns.a1, 'tcp', 'fd21::2', 80)).toBe('no answer');
    expect(ask(ns.b1, 'tcp', '10.20.0.2', 80)).toBe('no answer');
    expect(ask(ns.b1, 'tcp', 'fd20::2', 80)).toBe('no answer');
    expect(ask(ns.a1, 'tcp', '10.20.0.3', 80)).toBe('10.20.0.2');
    expect(ask(ns.a1, 'tcp', '10.20.0.1', 7000)).toBe('10.20.0.2');
    if (bridgeNf === '1') {
      inLab(() => fw.ensureNetwork({ ...a, icc: false }));
      expect(ask(ns.a1, 'tcp', '10.20.0.3', 80)).toBe('no answer');
      expect(ask(ns.a1, 'tcp', 'fd20::3', 80)).toBe('no answer');
      // The host (gateway) stays reachable.
      expect(ask(ns.a1, 'tcp', '10.20.0.1', 7000)).toBe('10.20.0.2');
    }
    inLab(() => {
      fw.removeNetwork('tbr-a');
      fw.removeNetwork('tbr-b');
    });
    expect(ask(ns.a1, 'tcp', '10.21.0.2', 80)).toBe('10.20.0.2');
    expect(ask(ns.a1, 'tcp', '10.20.0.3', 80)).toBe('10.20.0.2');
  });

  it('port mappings answer from outside, from the host, from 127.0.0.1 and by hairpin; unmapped ports stay closed', () => {
    const req: PortMappingRequest = {
      containers: [parsePrefix('10.20.0.2/24'), parsePrefix('fd20::2/64')],
      mappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
        { hostIP: parseIP('10.200.0.1'), hostPort: 9090, containerPort: 80, protocol: 'tcp' },
      ],
    };
    sysctl('net.ipv4.conf.tbr-a.route_localnet=1');
    expect(ask(ns.out, 'tcp', '10.200.0.1', 8080)).toBe('error ECONNREFUSED');
    inLab(() => fw.addPortMappings(a1, req));
    // From outside: the container sees the real client.
    expect(ask(ns.out, 'tcp', '10.200.0.1', 8080)).toBe('10.200.0.2');
    expect(ask(ns.out, 'udp', '10.200.0.1', 5353)).toBe('10.200.0.2');
    expect(ask(ns.out, 'tcp', 'fd00:200::1', 8080)).toBe('fd00:200::2');
    expect(ask(ns.out, 'udp', 'fd00:200::1', 5353)).toBe('fd00:200::2');
    expect(ask(ns.out, 'tcp', '10.200.0.1', 8081)).toBe('error ECONNREFUSED');
    // A host-address-specific mapping answers only on that address.
    expect(ask(ns.out, 'tcp', '10.200.0.1', 9090)).toBe('10.200.0.2');
    expect(ask(ns.b1, 'tcp', '10.21.0.1', 9090)).toBe('error ECONNREFUSED');
    // From the host itself, and from localhost (SNAT to the bridge address).
    expect(ask(lab.hostPath, 'tcp', '10.200.0.1', 8080)).toBe('10.200.0.1');
    expect(ask(lab.hostPath, 'tcp', '127.0.0.1', 8080)).toBe('10.20.0.1');
    expect(ask(lab.hostPath, 'udp', '127.0.0.1', 5353)).toBe('10.20.0.1');
    // Hairpin: the container itself and its neighbour through a host address.
    expect(ask(ns.a1, 'tcp', '10.200.0.1', 8080)).toBe('10.20.0.1');
    expect(ask(ns.a2, 'tcp', '10.20.0.1', 8080)).toBe('10.20.0.1');
    expect(ask(ns.a1, 'tcp', 'fd20::1', 8080)).toBe('fd20::1');
    // Another bridge's container reaches it routed, with its own address.
    expect(ask(ns.b1, 'tcp', '10.21.0.1', 8080)).toBe('10.21.0.2');
    inLab(() => fw.delPortMappings(a1, req));
    expect(ask(ns.out, 'tcp', '10.200.0.1', 8080)).toBe('error ECONNREFUSED');
    expect(ask(ns.out, 'udp', '10.200.0.1', 5353)).toBe('no answer');
  });
});
