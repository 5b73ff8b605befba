// The nfnetlink element batch against the real kernel, in a lab host
// namespace, with nft itself as the judge: what the batch writes must read
// back through `nft -j list` as the same text nft would have been given.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { Lab } from '../../test/lab.ts';
import { withNetns } from '../netns/index.ts';
import { applyBatch, encodeChange, deleteUnusedChains, BatchUnsupported, type ElemChange } from './nfnetlink.ts';
import { encodeRule } from './nft-rules.ts';
import { parseIP } from '../ip/index.ts';

const TYPES = new Map([
  ['own', 'ipv4_addr : ipv6_addr'],
  ['ports', 'inet_proto . inet_service : ipv4_addr . inet_service'],
  ['portsip', 'ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service'],
  ['masq', 'ipv4_addr : verdict'],
  ['bridges', 'ifname'],
  ['missing', 'ipv4_addr'],
]);

const TABLE = `table inet nfnl {
  map own { type ipv4_addr : ipv6_addr; }
  map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map portsip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  map masq { type ipv4_addr : verdict; }
  set bridges { type ifname; }
  chain masq-a { }
}
`;

let lab: Lab;

function nft(args: string[], input?: string): string {
  const r = lab.exec('nft', args, { input });
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Elements of a set as nft lists them (text, one per line). */
function listed(set: string): string {
  const text = nft(['list', TYPES.get(set)!.includes(' : ') ? 'map' : 'set', 'inet', 'nfnl', set]);
  const m = /elements = \{ ([^}]*) \}/s.exec(text);
  return (m?.[1] ?? '').replace(/\s+/g, ' ').trim();
}

const batch = (changes: ElemChange[]) => withNetns(lab.hostPath, () => applyBatch('nfnl', TYPES, changes));

beforeAll(() => {
  lab = Lab.create();
  nft(['-f', '-'], TABLE);
});
afterAll(() => lab?.destroy());

describe('nf_tables element batches over netlink', () => {
  it('adds elements of every type the cnikit table uses, read back by nft as written', () => {
    const r = batch([
      { op: 'add', set: 'own', key: '10.1.2.3', data: 'fd00::a:1', comment: 'net x / c1 eth0' },
      { op: 'add', set: 'ports', key: 'tcp . 8080', data: '10.1.2.3 . 80' },
      { op: 'add', set: 'ports', key: 'udp . 53', data: '10.1.2.3 . 5353' },
      { op: 'add', set: 'portsip', key: 'fd00::1 . sctp . 9', data: 'fd00::2 . 99' },
      { op: 'add', set: 'masq', key: '10.1.2.3', data: 'goto masq-a' },
      { op: 'add', set: 'masq', key: '10.1.2.4', data: 'accept' },
      { op: 'add', set: 'bridges', key: '"br-x"' },
    ]);
    expect(r.errors).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(listed('own')).toBe('10.1.2.3 comment "net x / c1 eth0" : fd00::a:1');
    expect(listed('ports')).toMatch(/^(tcp \. 8080 : 10\.1\.2\.3 \. 80, udp \. 53 : 10\.1\.2\.3 \. 5353|udp \. 53 : 10\.1\.2\.3 \. 5353, tcp \. 8080 : 10\.1\.2\.3 \. 80)$/);
    expect(listed('portsip')).toBe('fd00::1 . sctp . 9 : fd00::2 . 99');
    expect(listed('masq')).toMatch(/10\.1\.2\.3 : goto masq-a/);
    expect(listed('masq')).toMatch(/10\.1\.2\.4 : accept/);
    expect(listed('bridges')).toBe('"br-x"');
  });

  it('is one transaction: a refused change (EEXIST for another value) leaves nothing of the batch, and says which', () => {
    const r = batch([
      { op: 'add', set: 'ports', key: 'tcp . 9090', data: '10.1.2.9 . 90' },
      { op: 'add', set: 'own', key: '10.1.2.3', data: '::b:2' },
    ]);
    expect(r.errors).toEqual([0, 17]);
    expect(r.messages[1]).toMatch(/File exists/);
    expect(listed('ports')).not.toMatch(/9090/);
    expect(listed('own')).toMatch(/fd00::a:1/);
  });

  it('re-adding an identical element is a no-op; deleting a missing one is ENOENT; a missing set too', () => {
    expect(batch([{ op: 'add', set: 'own', key: '10.1.2.3', data: 'fd00::a:1' }]).errors).toEqual([0]);
    expect(batch([{ op: 'delete', set: 'own', key: '10.9.9.9' }]).errors).toEqual([2]);
    expect(batch([{ op: 'add', set: 'missing', key: '10.9.9.9' }]).errors).toEqual([2]);
  });

  it('deletes, and hands the socket to a short-lived holder in the same namespace', () => {
    const r = batch([
      { op: 'delete', set: 'ports', key: 'tcp . 8080' },
      { op: 'delete', set: 'own', key: '10.1.2.3' },
    ]);
    expect(r.errors).toEqual([0, 0]);
    expect(listed('ports')).toBe('udp . 53 : 10.1.2.3 . 5353');
    expect(listed('own')).toBe('');
    // The holder: a `sleep` in the lab's namespace holding a netlink socket, with no stdout of ours.
    const labNs = statSync(lab.hostPath).ino;
    const holders = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return cmd[0]!.endsWith('sleep') && statSync(`/proc/${pid}/ns/net`).ino === labNs;
      } catch {
        return false;
      }
    });
    expect(holders.length).toBeGreaterThan(0);
    const fd = (n: number) => readlinkSync(`/proc/${holders[0]}/fd/${n}`);
    expect(fd(3)).toMatch(/^socket:/);
    // A runtime reads a plugin's stdout until every holder closes it: the holder has none of it.
    expect([fd(0), fd(1), fd(2)]).toEqual(['/dev/null', '/dev/null', '/dev/null']);
  });

  it('encodes the values it is given exactly as the text they are written as', () => {
    const cases: ElemChange[] = [
      { op: 'add', set: 'own', key: '10.1.2.3', keyAtoms: [parseIP('10.1.2.3')], data: 'fd00::a:1', dataAtoms: [parseIP('fd00::a:1')], comment: 'c' },
      { op: 'add', set: 'ports', key: 'tcp . 8080', keyAtoms: ['tcp', 8080], data: '10.1.2.3 . 80', dataAtoms: [parseIP('10.1.2.3'), 80] },
      { op: 'add', set: 'portsip', key: 'fd00::1 . sctp . 9', keyAtoms: [parseIP('fd00::1'), 'sctp', 9], data: 'fd00::2 . 99', dataAtoms: [parseIP('fd00::2'), 99] },
      { op: 'add', set: 'masq', key: '10.1.2.3', keyAtoms: [parseIP('10.1.2.3')], data: 'goto masq-a', dataAtoms: ['goto', 'masq-a'] },
      { op: 'delete', set: 'ports', key: 'udp . 53', keyAtoms: ['udp', 53] },
    ];
    for (const c of cases) {
      const { keyAtoms: _k, dataAtoms: _d, ...text } = c;
      expect(encodeChange('nfnl', TYPES, c, 7), c.key).toEqual(encodeChange('nfnl', TYPES, text, 7));
    }
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'ports', key: 'x', keyAtoms: ['tcp', 70000], data: 'y', dataAtoms: [parseIP('10.0.0.1'), 1] }, 1)).toThrow(BatchUnsupported);
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'own', key: 'x', keyAtoms: [parseIP('fd00::1')], data: 'y', dataAtoms: [parseIP('fd00::2')] }, 1)).toThrow(BatchUnsupported);
  });

  it('refuses, before sending anything, what it cannot encode', () => {
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'own', key: 'fd00::1', data: '::1' }, 1)).toThrow(BatchUnsupported);
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'ports', key: 'tcp . 70000', data: '10.0.0.1 . 1' }, 1)).toThrow(BatchUnsupported);
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'masq', key: '10.0.0.1', data: 'goto' }, 1)).toThrow(BatchUnsupported);
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'nosuch', key: '10.0.0.1' }, 1)).toThrow(BatchUnsupported);
    expect(() => encodeChange('nfnl', TYPES, { op: 'add', set: 'own', key: '10.0.0.1' }, 1)).toThrow(BatchUnsupported);
  });

  it('deletes only the chains nothing jumps to, with their rules, each on its own', () => {
    nft(['-f', '-'], 'add chain inet nfnl masq-b { }\nadd rule inet nfnl masq-b masquerade\nadd chain inet nfnl masq-c { }\nadd rule inet nfnl masq-c masquerade\n');
    batch([{ op: 'add', set: 'masq', key: '10.9.9.9', data: 'goto masq-b' }]);
    const deleted = withNetns(lab.hostPath, () => deleteUnusedChains('nfnl', ['masq-b', 'masq-c', 'masq-none']));
    expect(deleted).toEqual(['masq-c']);
    const text = nft(['list', 'table', 'inet', 'nfnl']);
    expect(text).toMatch(/chain masq-b \{\s+masquerade/);
    expect(text).not.toContain('masq-c');
    // Once its last element goes, the chain can go.
    batch([{ op: 'delete', set: 'masq', key: '10.9.9.9' }]);
    expect(withNetns(lab.hostPath, () => deleteUnusedChains('nfnl', ['masq-b']))).toEqual(['masq-b']);
    expect(nft(['list', 'table', 'inet', 'nfnl'])).not.toContain('masq-b');
  });

  it('counts a chain\'s own rules as its own: a chain of several rules goes once nothing jumps to it', () => {
    nft(['-f', '-'], 'add chain inet nfnl psnat-m { }\nadd rule inet nfnl psnat-m ip saddr 10.5.0.0/16 masquerade\nadd rule inet nfnl psnat-m ip saddr 127.0.0.0/8 masquerade\n');
    batch([{ op: 'add', set: 'masq', key: '10.5.0.9', data: 'goto psnat-m' }]);
    expect(withNetns(lab.hostPath, () => deleteUnusedChains('nfnl', ['psnat-m']))).toEqual([]);
    batch([{ op: 'delete', set: 'masq', key: '10.5.0.9' }]);
    expect(withNetns(lab.hostPath, () => deleteUnusedChains('nfnl', ['psnat-m']))).toEqual(['psnat-m']);
    expect(nft(['list', 'table', 'inet', 'nfnl'])).not.toContain('psnat-m');
  });

  // Every rule form cnikit's chains use (nftables.ts), and the prefix lengths
  // where nft loads fewer bytes or masks: nft must print each back as written.
  const RULES = [
    'ip daddr != 10.88.0.0/16 ip daddr != 224.0.0.0/4 masquerade',
    'ip6 daddr != fd00:1::/64 ip6 daddr != ff00::/8 masquerade',
    'ip daddr 10.1.0.0/20 return',
    'ip daddr 10.1.2.3 return',
    'ip saddr 10.80.0.0/12 masquerade',
    'ip saddr 127.0.0.0/8 masquerade',
    'ip6 saddr ::1 masquerade',
    'ip6 daddr fd00::/56 return',
    'ip6 daddr fd00::/60 return',
    'oifname "br-x0" drop',
    'oifname "br-x0" return',
    'oifname @bridges drop',
    'masquerade',
  ];

  it('makes a chain, its comment and its rules in the transaction of the elements that jump to it', () => {
    const rules = RULES.map(encodeRule);
    const r = withNetns(lab.hostPath, () =>
      applyBatch('nfnl', TYPES, [{ op: 'add', set: 'masq', key: '10.7.7.7', data: 'goto masq-new' }], [{ name: 'masq-new', comment: 'masquerade 10.7.0.0/16', rules }]),
    );
    expect(r.errors).toEqual([0]);
    const text = nft(['-t', 'list', 'chain', 'inet', 'nfnl', 'masq-new']);
    const body = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^(table|chain|\})/.test(l));
    expect(body).toEqual(['comment "masquerade 10.7.0.0/16"', ...RULES]);
    expect(listed('masq')).toContain('10.7.7.7 : goto masq-new');
    // Again (a racing ADD): the chain is emptied first, so its rules are not doubled.
    withNetns(lab.hostPath, () => applyBatch('nfnl', TYPES, [], [{ name: 'masq-new', rules: [encodeRule('masquerade')] }]));
    expect(nft(['-t', 'list', 'chain', 'inet', 'nfnl', 'masq-new']).match(/^\s*masquerade$/gm)?.length).toBe(1);
  });

  it('commits nothing when one part is refused: the chain is not made when an element fails', () => {
    const r = withNetns(lab.hostPath, () =>
      applyBatch('nfnl', TYPES, [{ op: 'add', set: 'missing', key: '10.0.0.1' }], [{ name: 'masq-never', rules: [encodeRule('masquerade')] }]),
    );
    expect(r.errors).toEqual([2]);
    expect(nft(['list', 'table', 'inet', 'nfnl'])).not.toContain('masq-never');
  });

  it('refuses rule text outside its grammar, so the caller uses nft', () => {
    for (const bad of ['ip daddr { 10.0.0.0/8, 224.0.0.0/4 } masquerade', 'tcp dport 80 accept', 'ip daddr 10.0.0.0/8', 'oifname != @bridges drop', 'ip daddr fd00::1 return', 'counter masquerade']) {
      expect(() => encodeRule(bad), bad).toThrow(BatchUnsupported);
    }
  });
});
