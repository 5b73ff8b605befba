// Forwarded answers kept for their TTL: the cache itself with a clock the
// test moves, and the responder asking its upstream once for a repeated name.
import { describe, it, expect } from 'vitest';
import * as dnsPacket from 'dns-packet';
import { AnswerCache, ttlFields } from '../dns/answer-cache.ts';
import { Responder } from '../dns/server.ts';
import { Forwarder } from '../dns/forward.ts';
import { Zones } from '../dns/zone.ts';

const answer = (o: { id?: number; rcode?: number; ttl?: number; tc?: boolean; edns?: boolean } = {}) =>
  dnsPacket.encode({
    type: 'response',
    id: o.id ?? 7,
    flags: dnsPacket.RECURSION_AVAILABLE | (o.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) | (o.rcode ?? 0),
    questions: [{ type: 'A', name: 'www.example.org' }],
    answers: [
      { type: 'CNAME', name: 'www.example.org', ttl: 300, data: 'web.example.org' },
      { type: 'A', name: 'web.example.org', ttl: o.ttl ?? 30, data: '192.0.2.55' },
    ],
    additionals: o.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0x8000, flag_do: true, options: [] }] : [],
  });

describe('the answer cache', () => {
  it('finds every TTL (not the OPT record), and refuses messages that do not walk', () => {
    const f = ttlFields(answer({ edns: true }))!;
    expect(f.offsets).toHaveLength(2);
    expect(f.minTtl).toBe(30);
    const good = answer();
    expect(ttlFields(good.subarray(0, good.length - 1))).toBeUndefined();
    expect(ttlFields(Buffer.concat([good, Buffer.from([0])]))).toBeUndefined();
    // A pointer loop in a name.
    const loop = Buffer.from(good);
    loop[12] = 0xc0;
    loop[13] = 12;
    expect(ttlFields(loop)).toBeUndefined();
  });

  it('answers with the asker ID and TTLs lowered by the age, until the smallest TTL has passed', () => {
    let now = 0;
    const c = new AnswerCache(4096, 1232, 3600, () => now);
    c.put('k', answer({ ttl: 30 }));
    now = 12_500;
    const hit = dnsPacket.decode(c.get('k', 0xbeef)!);
    expect(hit.id).toBe(0xbeef);
    expect(hit.answers!.map((a) => ('ttl' in a ? a.ttl : undefined))).toEqual([288, 18]);
    now = 30_000;
    expect(c.get('k', 1)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('keeps no failure, truncated answer, zero TTL or oversized message, and holds at most its bound', () => {
    const c = new AnswerCache(3, 1232, 3600, () => 0);
    c.put('servfail', answer({ rcode: 2 }));
    c.put('tc', answer({ tc: true }));
    c.put('zero', answer({ ttl: 0 }));
    c.put('big', Buffer.concat([answer(), Buffer.alloc(1300)]));
    c.put('junk', Buffer.from('not a dns message at all'));
    expect(c.size).toBe(0);
    for (let i = 0; i < 10; i++) c.put(`k${i}`, answer());
    expect(c.size).toBe(3);
    expect(c.get('k0', 1)).toBeUndefined();
    expect(c.get('k9', 1)).toBeDefined();
  });
});

class CountingForwarder extends Forwarder {
  asked = 0;
  constructor() {
    super([{ address: '192.0.2.1', port: 53 }]);
  }
  override forward(query: Buffer, done: (answer: Buffer | undefined) => void): void {
    this.asked++;
    done(answer({ id: query.readUInt16BE(0) }));
  }
}

describe('the responder with forwarded answers kept', () => {
  const zones = () => new Zones([{ network: 'n', containerId: 'c', ifname: 'eth0', names: ['db'], domainName: 'dns.test', ips: ['10.9.0.2/24'], gateways: ['10.9.0.1'], internal: false }]);
  const ask = (r: Responder, id: number, name = 'www.example.org') => {
    let got: Buffer | undefined;
    r.handle(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), '10.9.0.1', true, (b) => (got = b));
    return dnsPacket.decode(got!);
  };

  it('asks the upstream once for a repeated name, again after a reload, and never caches local names', () => {
    const f = new CountingForwarder();
    const r = new Responder(f);
    r.zones = zones();
    expect(ask(r, 1)).toMatchObject({ id: 1, rcode: 'NOERROR' });
    expect(ask(r, 2)).toMatchObject({ id: 2, answers: [{ type: 'CNAME' }, { type: 'A', data: '192.0.2.55' }] });
    expect(f.asked).toBe(1);
    expect(r.stats.forwardCacheHits).toBe(1);
    // Another name is asked upstream.
    ask(r, 3, 'other.example.org');
    expect(f.asked).toBe(2);
    // A reload may make a forwarded name a container's: nothing kept survives it.
    r.zones = zones();
    ask(r, 4);
    expect(f.asked).toBe(3);
    expect(ask(r, 5, 'db')).toMatchObject({ rcode: 'NOERROR', answers: [{ data: '10.9.0.2' }] });
    expect(f.asked).toBe(3);
  });
});
