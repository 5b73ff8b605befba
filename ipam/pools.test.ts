import { describe, it, expect } from 'vitest';
import { parsePrefix, formatPrefix, formatIP } from '../lib/ip/index.ts';
import { nextFreeSubnet, planNetwork, PoolError } from './pools.ts';

const net = (name: string, ...subnets: string[]) => ({ name, subnets: subnets.map(parsePrefix) });

describe('network pools', () => {
  it('takes the next free /16 of 172.17-31, skipping networks and host routes, then /20s of 192.168', () => {
    expect(formatPrefix(nextFreeSubnet(4, [], []))).toBe('172.17.0.0/16');
    expect(formatPrefix(nextFreeSubnet(4, [net('bridge', '172.17.0.0/16')], [parsePrefix('172.18.5.0/24'), parsePrefix('0.0.0.0/0')]))).toBe('172.19.0.0/16');
    const all172 = Array.from({ length: 15 }, (_, i) => net(`n${i}`, `172.${17 + i}.0.0/16`));
    expect(formatPrefix(nextFreeSubnet(4, all172, []))).toBe('192.168.0.0/20');
    expect(formatPrefix(nextFreeSubnet(4, [...all172, net('x', '192.168.0.0/20')], []))).toBe('192.168.16.0/20');
    expect(formatPrefix(nextFreeSubnet(6, [], []))).toBe('fd4e:6b69:7400::/64');
    expect(() => nextFreeSubnet(4, [...all172], [parsePrefix('192.168.0.0/16')])).toThrow(PoolError);
  });

  it('plans a user subnet with gateway, ip-range and aux addresses as host-local ranges', () => {
    const [p] = planNetwork({ subnets: ['172.22.16.0/24'], gateways: ['172.22.16.254'], ipRanges: ['172.22.16.0/26'], auxAddresses: { router: '172.22.16.5' } }, [], []);
    expect(formatIP(p!.gateway)).toBe('172.22.16.254');
    expect(p!.ranges).toEqual([
      { subnet: '172.22.16.0/24', rangeStart: '172.22.16.1', rangeEnd: '172.22.16.4', gateway: '172.22.16.254' },
      { subnet: '172.22.16.0/24', rangeStart: '172.22.16.6', rangeEnd: '172.22.16.63', gateway: '172.22.16.254' },
    ]);
  });

  it('adds an IPv6 subnet from the pool with --ipv6', () => {
    const plan = planNetwork({ ipv6: true }, [net('bridge', '172.17.0.0/16')], []);
    expect(plan.map((p) => formatPrefix(p.subnet))).toEqual(['172.18.0.0/16', 'fd4e:6b69:7400::/64']);
  });

  it.each([
    [{ subnets: ['172.17.5.0/24'] }, /overlaps network bridge/],
    [{ subnets: ['10.0.0.0/24', '10.0.0.128/25'] }, /overlap/],
    [{ subnets: ['nope'] }, /invalid --subnet "nope"/],
    [{ subnets: ['10.0.0.0/24'], gateways: ['10.0.1.1'] }, /--gateway 10.0.1.1 is not in subnet 10.0.0.0\/24/],
    [{ subnets: ['10.0.0.0/24'], gateways: ['10.0.0.255'] }, /broadcast/],
    [{ gateways: ['10.0.0.1'] }, /--gateway needs a --subnet/],
    [{ subnets: ['10.0.0.0/24'], ipRanges: ['10.0.1.0/28'] }, /--ip-range 10.0.1.0\/28 is not inside/],
    [{ subnets: ['10.0.0.0/24'], auxAddresses: { a: '10.9.0.1' } }, /--aux-address a=10.9.0.1 is outside every subnet/],
    [{ subnets: ['10.0.0.0/24'], auxAddresses: { a: '10.0.0.1' } }, /is the gateway/],
    [{ subnets: ['10.0.0.0/31'] }, /too small/],
  ])('refuses %j', (req, msg) => {
    expect(() => planNetwork(req, [net('bridge', '172.17.0.0/16')], [])).toThrow(msg);
  });
});
