import { describe, it, expect } from 'vitest';
import {
  parseIP, tryParseIP, formatIP, ipToBytes, ipFromBytes, parsePrefix, tryParsePrefix, formatPrefix,
  networkOf, lastAddress, contains, overlaps, addToIP, compareIP, isNetworkAddress,
} from './index.ts';

describe('lib/ip', () => {
  it('round-trips IPv4 and formats IPv6 per RFC 5952', () => {
    expect(formatIP(parseIP('10.1.2.3'))).toBe('10.1.2.3');
    expect(formatIP(parseIP('2001:DB8:0:0:0:0:0:1'))).toBe('2001:db8::1');
    expect(formatIP(parseIP('2001:db8:0:1:0:0:0:1'))).toBe('2001:db8:0:1::1');
    expect(formatIP(parseIP('2001:0:0:1:0:0:0:1'))).toBe('2001:0:0:1::1');
    expect(formatIP(parseIP('2001:db8:1:1:1:1:0:1'))).toBe('2001:db8:1:1:1:1:0:1');
    expect(formatIP(parseIP('::'))).toBe('::');
    expect(formatIP(parseIP('::1'))).toBe('::1');
    expect(formatIP(parseIP('fe80::'))).toBe('fe80::');
    expect(formatIP(parseIP('::ffff:10.0.0.1'))).toBe('::ffff:a00:1');
    expect(formatIP(parseIP('ABCD:0:0:0:0:0:0:EF01'))).toBe('abcd::ef01');
    expect(formatIP(parseIP('0.0.0.0'))).toBe('0.0.0.0');
    expect(formatIP(parseIP('255.255.255.255'))).toBe('255.255.255.255');
  });

  it('rejects what is not an address', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.1.1.1', '1.2.3.4/24', ':::', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '1::2:', ':1::2', '1:2:3:4:5:6:7:8:', '1.2.3.-4', '1.2..3', ' 1.2.3.4', '1::2 ']) {
      expect(tryParseIP(s), s).toBeUndefined();
    }
    expect(() => parseIP('nope')).toThrow(/"nope" is not an IP address/);
  });

  it('encodes to network-order bytes and back', () => {
    expect([...ipToBytes(parseIP('192.168.1.2'))]).toEqual([192, 168, 1, 2]);
    const v6 = parseIP('fd00::1:2');
    expect(ipToBytes(v6)).toHaveLength(16);
    expect(ipFromBytes(ipToBytes(v6))).toEqual(v6);
  });

  it('does prefix arithmetic', () => {
    const p = parsePrefix('10.0.0.5/24');
    expect(formatPrefix(networkOf(p))).toBe('10.0.0.0/24');
    expect(isNetworkAddress(p)).toBe(false);
    expect(formatIP(lastAddress(p))).toBe('10.0.0.255');
    expect(contains(p, parseIP('10.0.0.255'))).toBe(true);
    expect(contains(p, parseIP('10.0.1.0'))).toBe(false);
    expect(contains(p, parseIP('::1'))).toBe(false);
    expect(overlaps(parsePrefix('172.16.0.0/12'), parsePrefix('172.17.5.0/24'))).toBe(true);
    expect(overlaps(parsePrefix('172.17.0.0/16'), parsePrefix('172.18.0.0/16'))).toBe(false);
    expect(formatIP(addToIP(parseIP('10.0.0.255'), 1n))).toBe('10.0.1.0');
    expect(() => addToIP(parseIP('255.255.255.255'), 1n)).toThrow(RangeError);
    expect(formatPrefix(networkOf(parsePrefix('fd00:1:2:3::9/64')))).toBe('fd00:1:2:3::/64');
    expect(tryParsePrefix('10.0.0.0/33')).toBeUndefined();
    expect(tryParsePrefix('10.0.0.0/024')).toBeUndefined();
    expect(compareIP(parseIP('10.0.0.1'), parseIP('::1'))).toBeLessThan(0);
  });
});
