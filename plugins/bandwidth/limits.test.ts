// Which limits a configuration asks for, and the ones refused (code 7, naming the field).
import { describe, it, expect } from 'vitest';
import { limitsOf, ifbName } from './index.ts';
import { CniError } from '../../lib/skel/index.ts';
import type { BandwidthConf } from '../../lib/spec/index.ts';

const base: BandwidthConf = { cniVersion: '1.1.0', name: 'net', type: 'bandwidth' };

function refused(conf: Partial<BandwidthConf>): CniError {
  try {
    limitsOf({ ...base, ...conf });
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('bandwidth limits', () => {
  it('takes each direction that has a rate and a burst; zeros and absent keys are no limit', () => {
    expect(limitsOf(base)).toEqual({});
    expect(limitsOf({ ...base, ingressRate: 0, ingressBurst: 0, egressRate: 0 })).toEqual({});
    expect(limitsOf({ ...base, egressRate: 8_000, egressBurst: 800 })).toEqual({ egress: { rate: 8_000, burst: 800 } });
  });

  it('uses runtimeConfig.bandwidth in place of the configured keys when it asks for anything', () => {
    const conf = { ...base, ingressRate: 1_000, ingressBurst: 100, egressRate: 1_000, egressBurst: 100 };
    expect(limitsOf({ ...conf, runtimeConfig: { bandwidth: { ingressRate: 2_000, ingressBurst: 200 } } })).toEqual({ ingress: { rate: 2_000, burst: 200 } });
    expect(limitsOf({ ...conf, runtimeConfig: { bandwidth: {} } })).toEqual({ ingress: { rate: 1_000, burst: 100 }, egress: { rate: 1_000, burst: 100 } });
  });

  it('refuses a rate without a burst, a burst without a rate, a 4 GB burst and a rate under a byte per second', () => {
    expect(refused({ ingressRate: 1_000 })).toMatchObject({ code: 7, message: expect.stringContaining('ingressBurst must be set') });
    expect(refused({ egressBurst: 1_000 })).toMatchObject({ code: 7, message: expect.stringContaining('egressRate must be set') });
    expect(refused({ runtimeConfig: { bandwidth: { ingressBurst: 5 } } })).toMatchObject({ code: 7, message: expect.stringContaining('runtimeConfig.bandwidth.ingressRate') });
    expect(refused({ egressRate: 1_000, egressBurst: 0xffffffff * 8 })).toMatchObject({ code: 7, message: expect.stringContaining('4GB') });
    expect(limitsOf({ ...base, egressRate: 1_000, egressBurst: 0xffffffff * 8 - 1 }).egress).toBeDefined();
    expect(refused({ ingressRate: 7, ingressBurst: 100 })).toMatchObject({ code: 7, message: expect.stringContaining('ingressRate 7') });
  });

  it('names the ifb as the reference does: bwp + sha512(network + container ID), 15 characters', () => {
    // sha512("net1c1") begins with the hex digits below (computed independently with sha512sum).
    expect(ifbName('net1', 'c1')).toHaveLength(15);
    expect(ifbName('net1', 'c1')).toBe('bwpc2d892b58e87');
  });
});
