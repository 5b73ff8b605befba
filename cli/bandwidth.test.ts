import { describe, it, expect } from 'vitest';
import { parseRate, defaultBurst, bandwidthArgs, BandwidthError } from './bandwidth.ts';

describe('--bandwidth-in/--bandwidth-out', () => {
  it('reads SI rates in bits per second', () => {
    expect(parseRate('10mbit', 'f')).toBe(10_000_000);
    expect(parseRate('10M', 'f')).toBe(10_000_000);
    expect(parseRate('1.5g', 'f')).toBe(1_500_000_000);
    expect(parseRate('500k', 'f')).toBe(500_000);
    expect(parseRate('2500', 'f')).toBe(2_500);
  });

  it('refuses what is not a rate, naming the flag', () => {
    for (const s of ['fast', '10mbps', '-1m', '', '7']) expect(() => parseRate(s, '--bandwidth-in')).toThrow(BandwidthError);
    expect(() => parseRate('fast', '--bandwidth-out')).toThrow(/--bandwidth-out "fast"/);
  });

  it('gives each rate a burst of a tenth of a second, at least 64 KiB', () => {
    expect(defaultBurst(100_000_000)).toBe(10_000_000);
    expect(defaultBurst(1_000_000)).toBe(524_288);
    expect(bandwidthArgs('10m', undefined)).toEqual({ ingressRate: 10_000_000, ingressBurst: 1_000_000 });
    expect(bandwidthArgs(undefined, '1m')).toEqual({ egressRate: 1_000_000, egressBurst: 524_288 });
    expect(bandwidthArgs(undefined, undefined)).toBeUndefined();
  });
});
