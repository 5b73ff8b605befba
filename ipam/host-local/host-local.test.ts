// Pure logic of host-local: defaults, validation, and the allocator against
// an in-memory store.
import { describe, it, expect } from 'vitest';
import { CniError } from '../../lib/skel/index.ts';
import { parseIP, formatIP, equalIP, type IPAddr } from '../../lib/ip/index.ts';
import type { HostLocalConf } from '../../lib/spec/index.ts';
import { loadConfig, canonicalRange, placeRequested } from './config.ts';
import { allocate, release, collectGarbage } from './allocator.ts';
import { ownedBy, type LeaseStore, type Lease, type Owner } from './store.ts';
import { parseResolvConf } from './resolv.ts';

class MemoryStore implements LeaseStore {
  readonly map = new Map<string, Lease>();
  readonly last = new Map<number, IPAddr>();
  locked<T>(fn: () => T): T {
    return fn();
  }
  leases(): Lease[] {
    return [...this.map.values()];
  }
  leaseAt(ip: IPAddr): Lease | undefined {
    return this.map.get(formatIP(ip));
  }
  leasesOf(owner: Owner): Lease[] {
    return this.leases().filter((l) => ownedBy(l, owner));
  }
  reserve(ip: IPAddr, owner: Owner, set: number): boolean {
    const k = formatIP(ip);
    if (this.map.has(k)) return false;
    this.map.set(k, { ip, ...owner });
    this.last.set(set, ip);
    return true;
  }
  release(lease: Lease): void {
    this.map.delete(formatIP(lease.ip));
  }
  lastReserved(set: number): IPAddr | undefined {
    return this.last.get(set);
  }
}

const inv = (args: Record<string, string> = {}) => ({ command: 'ADD' as const, containerId: 'c', netns: '/x', ifname: 'eth0', args: new Map(Object.entries(args)), path: [] });
const conf = (ipam: object, extra: object = {}): HostLocalConf => ({ cniVersion: '1.1.0', name: 'net1', type: 'host-local', ipam: { type: 'host-local', ...ipam }, ...extra }) as HostLocalConf;

describe('host-local config', () => {
  it('applies the reference defaults: gateway .1, range from .1 to before broadcast', () => {
    const r = canonicalRange({ subnet: '10.1.2.3/24' }, 'r');
    expect([formatIP(r.subnet.ip), formatIP(r.gateway), formatIP(r.start), formatIP(r.end)]).toEqual(['10.1.2.0', '10.1.2.1', '10.1.2.1', '10.1.2.254']);
    const v6 = canonicalRange({ subnet: 'fd00::/120' }, 'r');
    expect(formatIP(v6.end)).toBe('fd00::ff');
  });

  it('refuses what cannot be allocated from, naming the field', () => {
    expect(() => canonicalRange({ subnet: '10.0.0.0/31' }, 'ipam.ranges[0][0]')).toThrow(/ipam.ranges\[0\]\[0\].subnet 10.0.0.0\/31 is too small/);
    expect(() => canonicalRange({ subnet: 'x' }, 'r')).toThrow(/invalid r.subnet "x"/);
    expect(() => canonicalRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }, 'r')).toThrow(/rangeStart 10.0.1.5 is not in the subnet/);
    expect(() => canonicalRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }, 'r')).toThrow(/after rangeEnd/);
    expect(() => loadConfig(conf({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }), inv())).toThrow(/overlap/);
    expect(() => loadConfig(conf({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }), inv())).toThrow(/mixes IPv4 and IPv6/);
    expect(() => loadConfig(conf({}), inv())).toThrow(/needs "ranges" or "subnet"/);
  });

  it('takes requested addresses from runtimeConfig, then args, then CNI_ARGS; ipRanges come first', () => {
    const c = loadConfig(conf({ subnet: '10.0.0.0/24' }, { runtimeConfig: { ips: ['10.0.0.7/24'], ipRanges: [[{ subnet: '10.9.0.0/24' }]] }, args: { cni: { ips: ['10.0.0.8'] } } }), inv({ IP: '10.0.0.9' }));
    expect(c.requested.map(formatIP)).toEqual(['10.0.0.7']);
    expect(formatIP(c.rangeSets[0]![0]!.subnet.ip)).toBe('10.9.0.0');
    expect(loadConfig(conf({ subnet: '10.0.0.0/24' }, { args: { cni: { ips: ['10.0.0.8'] } } }), inv({ IP: '10.0.0.9' })).requested.map(formatIP)).toEqual(['10.0.0.8']);
    expect(loadConfig(conf({ subnet: '10.0.0.0/24' }), inv({ IP: '10.0.0.9' })).requested.map(formatIP)).toEqual(['10.0.0.9']);
  });

  it('says why a requested address cannot be had', () => {
    const sets = loadConfig(conf({ subnet: '10.0.0.0/24' }), inv()).rangeSets;
    expect(() => placeRequested(sets, parseIP('10.0.0.1'))).toThrow(/is the gateway/);
    expect(() => placeRequested(sets, parseIP('10.0.0.0'))).toThrow(/is the network address/);
    expect(() => placeRequested(sets, parseIP('10.0.0.255'))).toThrow(/is the broadcast address/);
    expect(() => placeRequested(sets, parseIP('10.0.1.5'))).toThrow(/outside every range \(10.0.0.1-10.0.0.254\)/);
    expect(placeRequested(sets, parseIP('10.0.0.5')).set).toBe(0);
  });

  it('reads resolv.conf', () => {
    expect(parseResolvConf('# c\nnameserver 10.0.0.53\nnameserver ::1\nsearch a.example b.example\ndomain a.example\noptions ndots:2\n')).toEqual({
      nameservers: ['10.0.0.53', '::1'], search: ['a.example', 'b.example'], domain: 'a.example', options: ['ndots:2'],
    });
  });
});

describe('host-local allocator', () => {
  const owner = (id: string) => ({ containerId: id, ifname: 'eth0' });

  it('gives one address per range set, skipping the gateway, round robin after the last one', () => {
    const store = new MemoryStore();
    const c = loadConfig(conf({ ranges: [[{ subnet: '10.0.0.0/29' }], [{ subnet: 'fd00::/125' }]] }), inv());
    const a = allocate(store, c, owner('a'));
    expect(a.map((x) => formatIP(x.ip))).toEqual(['10.0.0.2', 'fd00::2']);
    const b = allocate(store, c, owner('b'));
    expect(b.map((x) => formatIP(x.ip))).toEqual(['10.0.0.3', 'fd00::3']);
    release(store, owner('a'));
    // The freed .2 is not reused at once.
    expect(formatIP(allocate(store, c, owner('c'))[0]!.ip)).toBe('10.0.0.4');
  });

  it('wraps around and reports exhaustion with code 101 naming the range; all or nothing', () => {
    const store = new MemoryStore();
    const c = loadConfig(conf({ ranges: [[{ subnet: '10.0.0.0/29', rangeEnd: '10.0.0.3' }], [{ subnet: '10.1.0.0/29', rangeEnd: '10.1.0.2' }]] }), inv());
    allocate(store, c, owner('a'));
    let err: unknown;
    try {
      allocate(store, c, owner('b'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(101);
    expect((err as CniError).message).toMatch(/10.1.0.1-10.1.0.2/);
    // b got nothing, not even from the first set.
    expect(store.leases().map((l) => l.containerId)).toEqual(['a', 'a']);
  });

  it('refuses a requested address already leased (code 103, naming the holder), and a second ADD of one owner', () => {
    const store = new MemoryStore();
    const c = loadConfig(conf({ subnet: '10.0.0.0/24' }, { runtimeConfig: { ips: ['10.0.0.9'] } }), inv());
    expect(formatIP(allocate(store, c, owner('a'))[0]!.ip)).toBe('10.0.0.9');
    expect(() => allocate(store, c, owner('b'))).toThrow(/10.0.0.9 is already leased to container a/);
    const plain = loadConfig(conf({ subnet: '10.0.0.0/24' }), inv());
    expect(() => allocate(store, plain, owner('a'))).toThrow(/already leased to a/);
  });

  it('GC keeps exactly the valid attachments', () => {
    const store = new MemoryStore();
    const c = loadConfig(conf({ subnet: '10.0.0.0/24' }), inv());
    for (const id of ['a', 'b', 'c']) allocate(store, c, owner(id));
    const removed = collectGarbage(store, [owner('b')]);
    expect(removed.map((l) => l.containerId).sort()).toEqual(['a', 'c']);
    expect(store.leases().map((l) => l.containerId)).toEqual(['b']);
    expect(equalIP(store.leases()[0]!.ip, parseIP('10.0.0.3'))).toBe(true);
  });
});
