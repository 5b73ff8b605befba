import { describe, it, expect } from 'vitest';
import { sysctlPath } from './sysctl.ts';

describe('tuning sysctl keys', () => {
  it('maps dotted and slashed net.* keys, IFNAME standing for the interface', () => {
    expect(sysctlPath('net.ipv4.conf.eth0.arp_notify', 'eth0')).toBe('net/ipv4/conf/eth0/arp_notify');
    expect(sysctlPath('net.ipv4.conf.IFNAME.arp_notify', 'net1')).toBe('net/ipv4/conf/net1/arp_notify');
    expect(sysctlPath('net/ipv6/conf/eth0.100/disable_ipv6', 'eth0.100')).toBe('net/ipv6/conf/eth0.100/disable_ipv6');
    expect(sysctlPath('net.core.somaxconn', 'eth0')).toBe('net/core/somaxconn');
  });

  it('refuses keys outside net.* or with path tricks', () => {
    for (const key of ['kernel.hostname', 'net', 'net.ipv4', '/net/ipv4/ip_forward', 'net.ipv4.conf.eth0..arp_notify', 'net/ipv4/conf/../../kernel/x',
      'net/ipv4/conf/eth0/../../x', 'net.ipv4.conf.eth0.arp_notify.extra', 'net/core/x y', 'net.core.', 'net//core/x', 'net/ipv4/conf/./arp_notify']) {
      expect(typeof sysctlPath(key, 'eth0'), key).toBe('object');
    }
  });
});
