// Traffic control: the pure encoding (struct layouts, the reference's token
// bucket arithmetic) and, inside a lab namespace, qdiscs and filters made
// through lib/netlink and read back with `tc -j`, as an operator would.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Lab } from '../../test/lab.ts';
import { Netlink, NetlinkError, TC_H_ROOT, TC_H_INGRESS, INGRESS_HANDLE, tcHandle, tbfParams, tbfAsReported, parsePsched } from './index.ts';
import { tbfQdiscMessage, ingressQdiscMessage, redirectFilterMessage, decodeQdisc, decodeFilter, TC_ACT_STOLEN, TCA_EGRESS_REDIR } from './tc.ts';
import { parseAttrs, readStr } from './codec.ts';

// This kernel's clock (and every kernel since 2.6.31 with high-resolution timers): 1000/64 ticks per µs.
const CLOCK = parsePsched('000003e8 00000040 000f4240 3b9aca00\n');

describe('tc encoding', () => {
  it('reads the psched clock as iproute2 does', () => {
    expect(CLOCK.tickInUsec).toBe(15.625);
    // A 1 GHz clock word means the first word is stale: the ratio is then 1.
    expect(parsePsched('00000001 00000040 3b9aca00 3b9aca00').tickInUsec).toBe(1000);
    expect(() => parsePsched('garbage')).toThrow(/psched/);
  });

  it('computes rate, limit and buffer with the reference plugin\'s arithmetic', () => {
    // 10 Mbit/s, burst 80,000 bits: 1,250,000 B/s; 10,000 B = 8 ms = 125,000 ticks; limit = 25 ms at rate + burst.
    expect(tbfParams(10_000_000, 80_000, CLOCK)).toEqual({ rate: 1_250_000, limit: 31_250 + 10_000, buffer: 125_000 });
    // Bits that do not make a whole byte are dropped, as Go's integer division does.
    expect(tbfParams(1_007, 15, CLOCK)).toEqual({ rate: 125, limit: 3 + 1, buffer: Math.trunc(Math.trunc(1e6 / 125) * 15.625) });
  });

  it('saturates at 32 bits where the reference would wrap, and reports the buffer the kernel keeps', () => {
    // containerd passes a burst of 2^32-1 bits for "no burst limit".
    const p = tbfParams(10_000_000, 0xffffffff, CLOCK);
    expect(p.buffer).toBe(0xffffffff);
    // The kernel keeps the buffer in ns capped at 2^32-1: 67,108,863 ticks of 64 ns.
    expect(tbfAsReported(p).buffer).toBe(67_108_863);
    expect(tbfAsReported(tbfParams(10_000_000, 80_000, CLOCK)).buffer).toBe(125_000);
  });

  it('encodes a root tbf qdisc as struct tcmsg + TCA_KIND + TCA_OPTIONS{TCA_TBF_PARMS}', () => {
    const msg = tbfQdiscMessage(7, { rate: 1_250_000, limit: 41_250, buffer: 125_000 });
    const dv = new DataView(msg.buffer);
    expect(dv.getInt32(4, true)).toBe(7);
    expect(dv.getUint32(8, true)).toBe(0x00010000);
    expect(dv.getUint32(12, true)).toBe(TC_H_ROOT);
    const a = parseAttrs(msg, 20);
    expect(readStr(a.get(1))).toBe('tbf');
    const parms = parseAttrs(a.get(2)!).get(1)!;
    expect(parms.length).toBe(36);
    const p = new DataView(parms.buffer, parms.byteOffset, parms.byteLength);
    expect([p.getUint32(8, true), p.getUint32(20, true), p.getUint32(24, true), p.getUint32(28, true), p.getUint32(32, true)]).toEqual([1_250_000, 0, 41_250, 125_000, 0]);
    expect(decodeQdisc(msg)).toEqual({ ifindex: 7, handle: 0x00010000, parent: TC_H_ROOT, kind: 'tbf', tbf: { rate: 1_250_000, limit: 41_250, buffer: 125_000 } });
  });

  it('adds TCA_TBF_RATE64 for a rate beyond 32 bits of bytes/s', () => {
    const rate = 2 ** 33 + 5;
    const msg = tbfQdiscMessage(3, { rate, limit: 1, buffer: 1 });
    const opts = parseAttrs(parseAttrs(msg, 20).get(2)!);
    expect(opts.get(4)!.length).toBe(8);
    expect(decodeQdisc(msg).tbf!.rate).toBe(rate);
  });

  it('encodes the ingress qdisc at ffff: under TC_H_INGRESS', () => {
    const q = decodeQdisc(ingressQdiscMessage(9));
    expect(q).toEqual({ ifindex: 9, handle: INGRESS_HANDLE, parent: TC_H_INGRESS, kind: 'ingress' });
  });

  it('encodes a u32 match-all filter with a mirred egress redirect', () => {
    const msg = redirectFilterMessage(4, INGRESS_HANDLE, 12);
    const dv = new DataView(msg.buffer);
    // prio 1 in the upper half of tcm_info, ETH_P_ALL in network order in the lower.
    expect(dv.getUint32(16, true)).toBe(0x00010300);
    const opts = parseAttrs(parseAttrs(msg, 20).get(2)!);
    const sel = opts.get(5)!;
    expect(sel.length).toBe(32);
    expect([sel[0], sel[2]]).toEqual([1 /* TC_U32_TERMINAL */, 1 /* one key */]);
    expect(sel.subarray(16).every((b) => b === 0)).toBe(true);
    const action = parseAttrs(opts.get(7)!).get(1)!;
    const act = parseAttrs(action);
    expect(readStr(act.get(1))).toBe('mirred');
    const mirred = parseAttrs(act.get(2)!).get(2)!;
    const m = new DataView(mirred.buffer, mirred.byteOffset, mirred.byteLength);
    expect([m.getInt32(8, true), m.getInt32(20, true), m.getUint32(24, true)]).toEqual([TC_ACT_STOLEN, TCA_EGRESS_REDIR, 12]);
    expect(decodeFilter(msg)).toEqual({ ifindex: 4, handle: 0, parent: INGRESS_HANDLE, kind: 'u32', prio: 1, protocol: 3, redirectTo: 12 });
  });
});

interface TcQdisc {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  options?: { rate?: number; burst?: number; lat?: number };
}
interface TcFilter {
  kind: string;
  pref: number;
  protocol: string;
  options?: { flowid?: string; match?: { value: string; mask: string }; actions?: { kind: string; mirred_action: string; direction: string; to_dev: string; control_action: { type: string } }[] };
}

describe('tc through lib/netlink (lab namespace)', () => {
  let lab: Lab;
  beforeAll(() => {
    lab = Lab.create();
  });
  afterAll(() => lab?.destroy());

  const tcJson = <T>(args: string[]): T => JSON.parse(lab.exec('tc', ['-j', ...args]).stdout || '[]') as T;
  const inLab = <T>(fn: (nl: Netlink) => T): T => Netlink.inNetns(lab.hostPath, fn);

  it('makes a tbf, an ifb, the ingress qdisc and a redirect filter that tc reads as the reference\'s; deletes them', () => {
    lab.ip(['link', 'add', 'tcv0', 'type', 'veth', 'peer', 'name', 'tcv1']);
    const ifb = inLab((nl) => {
      nl.createIfb('tcifb0', { mtu: 1400, txqlen: 0 });
      return nl.link('tcifb0')!;
    });
    const seen = JSON.parse(lab.ip(['-j', '-d', 'link', 'show', 'tcifb0'])) as { mtu: number; flags: string[]; linkinfo: { info_kind: string } }[];
    expect(seen[0]).toMatchObject({ mtu: 1400, linkinfo: { info_kind: 'ifb' } });
    expect(seen[0]!.flags).toContain('UP');

    const veth = inLab((nl) => nl.link('tcv0')!);
    const p = tbfParams(10_000_000, 80_000, CLOCK);
    inLab((nl) => {
      nl.addTbf(veth.index, p);
      nl.addIngressQdisc(veth.index);
      nl.addRedirectFilter(veth.index, INGRESS_HANDLE, ifb.index);
      nl.addTbf(ifb.index, p);
    });
    // tc computes burst from buffer and rate, and latency from limit: what `tc qdisc add … tbf rate 10mbit burst 10000 latency 25ms` shows.
    const qd = tcJson<TcQdisc[]>(['qdisc', 'show', 'dev', 'tcv0']);
    expect(qd.find((q) => q.kind === 'tbf')).toMatchObject({ handle: '1:', root: true, options: { rate: 1_250_000, burst: 10_000, lat: 25_000 } });
    expect(qd.find((q) => q.kind === 'ingress')).toMatchObject({ handle: 'ffff:', parent: 'ffff:fff1' });
    expect(tcJson<TcQdisc[]>(['qdisc', 'show', 'dev', 'tcifb0'])[0]).toMatchObject({ kind: 'tbf', handle: '1:', options: { rate: 1_250_000, burst: 10_000, lat: 25_000 } });
    const filters = tcJson<TcFilter[]>(['filter', 'show', 'dev', 'tcv0', 'parent', 'ffff:']);
    const key = filters.find((f) => f.options?.actions);
    expect(key).toMatchObject({ kind: 'u32', pref: 1, protocol: 'all', options: { flowid: '1:1', match: { value: '0', mask: '0' } } });
    expect(key!.options!.actions).toEqual([expect.objectContaining({ kind: 'mirred', mirred_action: 'redirect', direction: 'egress', to_dev: 'tcifb0', control_action: { type: 'stolen' } })]);

    // Read back through lib/netlink too.
    inLab((nl) => {
      expect(nl.qdisc(veth.index)).toMatchObject({ kind: 'tbf', handle: tcHandle(1, 0), tbf: tbfAsReported(p) });
      expect(nl.qdisc(veth.index, TC_H_INGRESS)).toMatchObject({ kind: 'ingress', handle: INGRESS_HANDLE });
      expect(nl.filters(veth.index).some((f) => f.kind === 'u32' && f.redirectTo === ifb.index)).toBe(true);
      // A second root tbf is refused, as `tc qdisc add` refuses it.
      expect(() => nl.addTbf(veth.index, p)).toThrow(NetlinkError);
    });

    inLab((nl) => {
      expect(nl.deleteQdisc(veth.index, TC_H_ROOT)).toBe(true);
      expect(nl.deleteQdisc(veth.index, TC_H_INGRESS)).toBe(true);
      expect(nl.deleteQdisc(veth.index, TC_H_ROOT)).toBe(false);
      expect(nl.deleteQdisc(veth.index, TC_H_INGRESS)).toBe(false);
      expect(nl.qdisc(veth.index)).toBeUndefined();
      expect(nl.qdisc(veth.index, TC_H_INGRESS)).toBeUndefined();
      nl.deleteLink(ifb.index);
    });
    expect(tcJson<TcQdisc[]>(['qdisc', 'show', 'dev', 'tcv0']).filter((q) => q.kind === 'tbf' || q.kind === 'ingress')).toEqual([]);
    expect(lab.exec('ip', ['link', 'show', 'tcifb0']).status).not.toBe(0);
    lab.ip(['link', 'del', 'tcv0']);
  });

  it('reads a veth\'s peer index when the peer has the same index in its own namespace', () => {
    // Two fresh namespaces: lo is 1 in each, so both ends of the pair are 2.
    const a = lab.addNetns('pa');
    const b = lab.addNetns('pb');
    lab.exec('ip', ['link', 'add', 'pv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b], { netns: `/run/netns/${a}` });
    const inB = Netlink.inNetns(`/run/netns/${b}`, (nl) => nl.link('eth0')!);
    const inA = Netlink.inNetns(`/run/netns/${a}`, (nl) => nl.link('pv0')!);
    expect(inB.index).toBe(inA.index);
    expect(inB.linkIndex).toBe(inA.index);
    expect(inB.linkNetnsId).toBeDefined();
  });
});
