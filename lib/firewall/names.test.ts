// Pure checks of what reaches rule text: validation and hashed names.
import { describe, it, expect } from 'vitest';
import { parseIP, parsePrefix } from '../ip/index.ts';
import { validateKey, validateBridge, validateEntries, attachmentChainTag, networkTag, attachmentTag, policyTag, describeKey } from './names.ts';
import { flattenPorts } from './ports.ts';
import { FirewallError } from './types.ts';

describe('firewall names', () => {
  it('accepts CNI names and refuses what could break out of rule text', () => {
    validateKey({ network: 'my_net2', containerId: 'a'.repeat(64), ifname: 'eth0' });
    for (const bad of ['', 'a b', 'a"b', 'a\nb', '-x', 'a;b']) {
      expect(() => validateKey({ network: bad, containerId: 'c', ifname: 'eth0' })).toThrow(FirewallError);
      expect(() => validateKey({ network: 'n', containerId: bad, ifname: 'eth0' })).toThrow(FirewallError);
    }
    for (const bad of ['', 'a/b', 'a:b', 'a b', 'x'.repeat(16), '..']) expect(() => validateKey({ network: 'n', containerId: 'c', ifname: bad })).toThrow(FirewallError);
    validateBridge('cni0');
    validateBridge('br-1234.5@x');
    for (const bad of ['br+', 'br*', 'b"r', 'a b', 'x'.repeat(16), '']) expect(() => validateBridge(bad)).toThrow(FirewallError);
  });

  it('keeps chain names within iptables’ 28 characters and comments free of quotes', () => {
    const key = { network: 'n'.repeat(200), containerId: 'c'.repeat(64), ifname: 'e"th0' };
    expect(`CNIK-A-${attachmentChainTag(key)}`.length).toBeLessThanOrEqual(28);
    expect(`CNIK-N-${'0'.repeat(12)}-${policyTag({ bridge: 'b', subnets: [], isolate: true, icc: false })}`.length).toBeLessThanOrEqual(28);
    expect(describeKey(key)).not.toMatch(/["\\\n]/);
    expect(networkTag('a')).toMatch(/^[0-9a-f]{16}$/);
    expect(attachmentTag('c', 'eth0')).not.toBe(attachmentTag('c', 'eth1'));
  });

  it('refuses a masquerade address outside its subnet and malformed port mappings', () => {
    expect(() => validateEntries([{ address: parseIP('10.0.1.5'), subnet: parsePrefix('10.0.0.0/24') }])).toThrow(/not inside/);
    const containers = [parsePrefix('10.0.0.5/24')];
    expect(() => flattenPorts({ containers, mappings: [{ hostPort: 0, containerPort: 80, protocol: 'tcp' }] })).toThrow(/outside 1-65535/);
    expect(() => flattenPorts({ containers, mappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' as 'tcp' }] })).toThrow(/protocol/);
    expect(() => flattenPorts({ containers, mappings: [{ hostIP: parseIP('::1'), hostPort: 80, containerPort: 80, protocol: 'tcp' }] })).toThrow(/IPv6 container address/);
    expect(() =>
      flattenPorts({ containers, mappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp' }, { hostPort: 80, containerPort: 81, protocol: 'tcp' }] }),
    ).toThrow(/mapped twice/);
    // 0.0.0.0 means every IPv4 address only; no hostIP means both families.
    const both = [parsePrefix('10.0.0.5/24'), parsePrefix('fd00::5/64')];
    expect(flattenPorts({ containers: both, mappings: [{ hostIP: parseIP('0.0.0.0'), hostPort: 80, containerPort: 80, protocol: 'tcp' }] }).map((p) => p.family)).toEqual([4]);
    expect(flattenPorts({ containers: both, mappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp' }] }).map((p) => p.family)).toEqual([4, 6]);
  });
});
