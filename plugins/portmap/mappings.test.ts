import { describe, it, expect } from 'vitest';
import { CniError } from '../../lib/skel/index.ts';
import { normalize, clash, checkConflicts, choosePorts, containerAddresses, type Published, type HoldersOf } from './mappings.ts';

/** An index holding these ports, each for its own container. */
const holding = (...ports: [Published, string][]): HoldersOf => (protocol, port) =>
  ports.filter(([q]) => q.protocol === protocol && q.hostPort === port).map(([q, id]) => ({ network: 'n1', containerId: id, port: q }));
const none: HoldersOf = () => [];

const p = (hostPort: number, protocol: Published['protocol'] = 'tcp', hostIP = ''): Published => ({ hostIP, hostPort, containerPort: 80, protocol });

describe('portmap mappings', () => {
  it('normalizes protocols and host addresses and expands ranges', () => {
    expect(normalize([{ hostPort: 8000, containerPort: 80, range: 3, protocol: 'UDP', hostIP: '::FFFF:0:1' }])).toEqual([
      { hostIP: '::ffff:0:1', hostPort: 8000, containerPort: 80, protocol: 'udp' },
      { hostIP: '::ffff:0:1', hostPort: 8001, containerPort: 81, protocol: 'udp' },
      { hostIP: '::ffff:0:1', hostPort: 8002, containerPort: 82, protocol: 'udp' },
    ]);
    expect(normalize([{ hostPort: 1, containerPort: 2 }])[0]).toMatchObject({ protocol: 'tcp', hostIP: '' });
    expect(() => normalize([{ hostPort: 1, containerPort: 2, hostIP: 'nope' }])).toThrow(/hostIP "nope"/);
    expect(() => normalize([{ hostPort: 0, containerPort: 80, range: 2 }])).toThrow(CniError);
    expect(() => normalize([{ hostPort: 65535, containerPort: 80, range: 2 }])).toThrow(/past 65535/);
  });

  it('knows which published ports receive the same packets', () => {
    expect(clash(p(80), p(80))).toBe(true);
    expect(clash(p(80), p(80, 'udp'))).toBe(false);
    expect(clash(p(80, 'tcp', '10.0.0.1'), p(80, 'tcp', '10.0.0.2'))).toBe(false);
    expect(clash(p(80, 'tcp', '10.0.0.1'), p(80))).toBe(true);
    expect(clash(p(80, 'tcp', '0.0.0.0'), p(80, 'tcp', '10.0.0.1'))).toBe(true);
    // Every IPv4 address does not overlap an IPv6 one.
    expect(clash(p(80, 'tcp', '0.0.0.0'), p(80, 'tcp', '::1'))).toBe(false);
  });

  it('names the holder of a conflicting port, and refuses a port mapped twice', () => {
    const holders = holding([p(8080), 'web1']);
    expect(() => checkConflicts([p(8080)], holders)).toThrow(/8080\/tcp is already published by container web1 \(network n1\)/);
    expect(() => checkConflicts([p(8081), p(8081)], none)).toThrow(/mapped twice/);
    expect(() => checkConflicts([p(8080, 'udp')], holders)).not.toThrow();
  });

  it('chooses free host ports in the range, skipping reserved, bound and published ones', () => {
    const space = { low: 100, high: 104, reserved: new Set([100]), bound: (_: string, port: number) => port === 101, holdersOf: holding([p(102), 'c']) };
    const chosen = choosePorts([p(0), p(0)], space, () => 0);
    expect(chosen.map((c) => c.hostPort)).toEqual([103, 104]);
    expect(() => choosePorts([p(0), p(0), p(0)], space, () => 0)).toThrow(/no free host port left in 100-104/);
  });

  it('takes one container address per family from the sandbox interfaces of the prevResult', () => {
    const prev = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'br0' }, { name: 'eth0', sandbox: '/run/netns/x' }],
      ips: [
        { address: '10.0.0.1/24', interface: 0 },
        { address: '10.0.0.5/24', interface: 1 },
        { address: '10.0.0.6/24', interface: 1 },
        { address: 'fd00::5/64', interface: 1 },
      ],
    };
    expect(containerAddresses(prev).map((a) => a.ip.family)).toEqual([4, 6]);
    expect(containerAddresses(prev)[0]!.ip.value).toBe(0x0a000005n);
  });
});
