// lib/firewall against the real kernel, inside a lab host namespace: the
// same table of cases for both backends. What is checked is what a user
// would look at: the ruleset (iptables-save / nft list ruleset) after add,
// after del, and after del again.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../test/lab.ts';
import { withNetns } from '../netns/index.ts';
import { parseIP, parsePrefix } from '../ip/index.ts';
import { openFirewall, FirewallError, type Backend, type Firewall, type MasqEntry, type AttachmentKey, type PortMappingRequest } from './index.ts';

const WORKER = fileURLToPath(new URL('./testdata/worker.ts', import.meta.url));
const BUN = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));

interface Case {
  backend: Backend;
  /** The whole ruleset of the lab host, without counters. */
  dump(lab: Lab): string;
  /** Remove the masquerade of one address behind the firewall's back. */
  breakMasq(lab: Lab, addr: string): void;
  /** Remove the DNAT of one host port behind the firewall's back. */
  breakPort(lab: Lab, hostPort: number): void;
}

function must(lab: Lab, cmd: string, args: string[], input?: string): string {
  const r = lab.exec(cmd, args, { input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function iptablesDelete(lab: Lab, family: 4 | 6, match: (line: string) => boolean): void {
  const save = family === 4 ? 'iptables-save' : 'ip6tables-save';
  const line = must(lab, save, ['-t', 'nat']).split('\n').find(match);
  if (!line) throw new Error('no such rule to break');
  must(lab, family === 4 ? 'iptables-restore' : 'ip6tables-restore', ['--noflush'], `*nat\n-D${line.slice(2)}\nCOMMIT\n`);
}

const CASES: Case[] = [
  {
    backend: 'iptables',
    dump: (lab) =>
      ['iptables-save', 'ip6tables-save']
        .map((c) => must(lab, c, []))
        .join('')
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
        .join('\n'),
    breakMasq: (lab, addr) => iptablesDelete(lab, addr.includes(':') ? 6 : 4, (l) => l.startsWith('-A CNIK-POSTROUTING') && l.includes(` -s ${addr}/`)),
    breakPort: (lab, port) => iptablesDelete(lab, 4, (l) => l.startsWith('-A CNIK-HOSTPORTS ') && l.includes(`--dport ${port} `)),
  },
  {
    backend: 'nftables',
    // Per-subnet chains (masq-*, psnat-*) are shared by every container of a
    // subnet and stay until GC finds them unused; attachments are elements.
    // Per-subnet chains come and go with their addresses (and are made last when over netlink): not compared.
    dump: (lab) => must(lab, 'nft', ['list', 'ruleset']).replace(/^\tchain (masq|psnat)-[0-9a-f]+ \{\n(?:\t\t.*\n)*\t\}\n/gm, '').replace(/\n{2,}/g, '\n'),
    breakMasq: (lab, addr) => must(lab, 'nft', ['delete', 'element', 'inet', 'cnikit', addr.includes(':') ? 'masq6' : 'masq4', `{ ${addr} }`]),
    breakPort: (lab, port) => must(lab, 'nft', ['delete', 'element', 'inet', 'cnikit', 'ports4', `{ tcp . ${port} }`]),
  },
];

const key = (containerId: string, network = 'net1', ifname = 'eth0'): AttachmentKey => ({ network, containerId, ifname });
const masq = (addr: string, subnet: string): MasqEntry => ({ address: parseIP(addr), subnet: parsePrefix(subnet) });

describe.each(CASES)('firewall backend $backend', (c) => {
  let lab: Lab;
  let fw: Firewall;
  const inLab = <T>(fn: () => T): T => withNetns(lab.hostPath, fn);

  beforeAll(() => {
    lab = Lab.create();
    fw = openFirewall(c.backend);
    // Make the shared infrastructure once, so "gone after del" compares like with like.
    inLab(() => {
      fw.setup([
        { kind: 'masquerade', key: key('warm'), entries: [masq('10.1.0.250', '10.1.0.0/24'), masq('fd01::250', 'fd01::/64')] },
        { kind: 'ports', key: key('warm'), request: { containers: [parsePrefix('10.1.0.250/24'), parsePrefix('fd01::250/64')], mappings: [{ hostPort: 1, containerPort: 1, protocol: 'udp' }] } },
      ]);
      fw.delMasquerade(key('warm'), [masq('10.1.0.250', '10.1.0.0/24'), masq('fd01::250', 'fd01::/64')]);
      fw.delPortMappings(key('warm'), { containers: [parsePrefix('10.1.0.250/24'), parsePrefix('fd01::250/64')], mappings: [{ hostPort: 1, containerPort: 1, protocol: 'udp' }] });
    });
  });
  afterAll(() => lab?.destroy());

  it('runs the tools in the lab namespace, not in the machine’s', () => {
    expect(fw.backend).toBe(c.backend);
    expect(c.dump(lab)).toMatch(c.backend === 'iptables' ? /CNIK-POSTROUTING/ : /table inet cnikit/);
  });

  describe('masquerade', () => {
    const entries = [masq('10.1.0.5', '10.1.0.0/24'), masq('fd01::5', 'fd01::/64')];

    it('add puts the rules in place for both families, del removes exactly them, del again succeeds', () => {
      const before = c.dump(lab);
      inLab(() => fw.addMasquerade(key('a'), entries));
      const during = c.dump(lab);
      expect(during).not.toBe(before);
      expect(during).toContain('10.1.0.5');
      expect(during).toContain('fd01::5');
      inLab(() => fw.checkMasquerade(key('a'), entries));
      inLab(() => fw.delMasquerade(key('a'), entries));
      expect(c.dump(lab)).toBe(before);
      inLab(() => fw.delMasquerade(key('a'), entries));
      expect(c.dump(lab)).toBe(before);
    });

    it('a repeated add is idempotent: one del removes everything', () => {
      const before = c.dump(lab);
      inLab(() => fw.addMasquerade(key('b'), entries));
      const once = c.dump(lab);
      inLab(() => fw.addMasquerade(key('b'), entries));
      expect(c.dump(lab)).toBe(once);
      inLab(() => fw.delMasquerade(key('b'), entries));
      expect(c.dump(lab)).toBe(before);
    });

    it('check names the missing rule after it was removed behind its back', () => {
      inLab(() => fw.addMasquerade(key('c'), entries));
      c.breakMasq(lab, '10.1.0.5');
      expect(() => inLab(() => fw.checkMasquerade(key('c'), entries))).toThrow(FirewallError);
      expect(() => inLab(() => fw.checkMasquerade(key('c'), entries))).toThrow(/10\.1\.0\.5|masq/);
      // DEL still cleans up what is left.
      inLab(() => fw.delMasquerade(key('c'), entries));
      expect(() => inLab(() => fw.checkMasquerade(key('c'), entries))).toThrow(FirewallError);
    });

    it('del of a different attachment leaves an address alone that has moved to a new owner', () => {
      const before = c.dump(lab);
      const e = [masq('10.1.0.9', '10.1.0.0/24')];
      inLab(() => fw.addMasquerade(key('old'), e));
      inLab(() => fw.addMasquerade(key('new'), e));
      inLab(() => fw.delMasquerade(key('old'), e));
      inLab(() => fw.checkMasquerade(key('new'), e));
      inLab(() => fw.delMasquerade(key('new'), e));
      // iptables keeps one rule per attachment, so 'old' was removed by its own spec; nft replaced the owner.
      expect(c.dump(lab)).toBe(before);
    });

    it('gc removes the attachments of the network not in the valid list, and only those', () => {
      const before = c.dump(lab);
      inLab(() => {
        fw.addMasquerade(key('g1'), [masq('10.1.0.21', '10.1.0.0/24')]);
        fw.addMasquerade(key('g2'), [masq('10.1.0.22', '10.1.0.0/24'), masq('fd01::22', 'fd01::/64')]);
        fw.addMasquerade(key('g3'), [masq('10.1.0.23', '10.1.0.0/24')]);
        fw.addMasquerade(key('x1', 'othernet'), [masq('10.2.0.21', '10.2.0.0/24')]);
      });
      const removed = inLab(() => fw.gcMasquerade('net1', [{ containerId: 'g2', ifname: 'eth0' }]));
      expect(removed.map((r) => r.addresses.length).sort()).toEqual([1, 1]);
      inLab(() => fw.checkMasquerade(key('g2'), [masq('10.1.0.22', '10.1.0.0/24'), masq('fd01::22', 'fd01::/64')]));
      inLab(() => fw.checkMasquerade(key('x1', 'othernet'), [masq('10.2.0.21', '10.2.0.0/24')]));
      expect(() => inLab(() => fw.checkMasquerade(key('g1'), [masq('10.1.0.21', '10.1.0.0/24')]))).toThrow(FirewallError);
      inLab(() => {
        fw.gcMasquerade('net1', []);
        fw.gcMasquerade('othernet', []);
      });
      expect(c.dump(lab)).toBe(before);
      // GC also drops per-subnet chains nothing uses any more.
      expect(must(lab, c.backend === 'nftables' ? 'nft' : 'iptables-save', c.backend === 'nftables' ? ['list', 'ruleset'] : [])).not.toMatch(/chain masq-/);
    });

    it('refuses names and addresses that could not become safe rules', () => {
      expect(() => inLab(() => fw.addMasquerade(key('bad"; drop'), entries))).toThrow(/container ID/);
      expect(() => inLab(() => fw.addMasquerade(key('a', 'net 1'), entries))).toThrow(/network name/);
      expect(() => inLab(() => fw.addMasquerade(key('a'), [masq('10.9.0.5', '10.1.0.0/24')]))).toThrow(/not inside/);
      expect(() => inLab(() => fw.ensureNetwork({ bridge: 'br+', subnets: [], isolate: true, icc: true }))).toThrow(/bridge name/);
    });
  });

  describe('network policy', () => {
    const p = { bridge: 'cbr0', subnets: [parsePrefix('10.3.0.0/24'), parsePrefix('fd03::/64')], isolate: true, icc: true };

    it('ensureNetwork is idempotent, a changed policy replaces the old one, removeNetwork restores the ruleset', () => {
      const before = c.dump(lab);
      inLab(() => fw.ensureNetwork(p));
      const once = c.dump(lab);
      expect(once).toContain('cbr0');
      inLab(() => fw.ensureNetwork(p));
      expect(c.dump(lab)).toBe(once);
      inLab(() => fw.checkNetwork(p));
      const p2 = { ...p, isolate: false, icc: false };
      expect(() => inLab(() => fw.checkNetwork(p2))).toThrow(FirewallError);
      inLab(() => fw.ensureNetwork(p2));
      inLab(() => fw.checkNetwork(p2));
      expect(() => inLab(() => fw.checkNetwork(p))).toThrow(FirewallError);
      inLab(() => fw.ensureNetwork(p));
      expect(c.dump(lab)).toBe(once);
      inLab(() => fw.removeNetwork('cbr0'));
      inLab(() => fw.removeNetwork('cbr0'));
      const after = c.dump(lab);
      expect(after).not.toContain('cbr0');
      // Only the (empty) shared infrastructure may remain.
      inLab(() => fw.ensureNetwork(p));
      inLab(() => fw.removeNetwork('cbr0'));
      expect(c.dump(lab)).toBe(after);
      void before;
    });

    it('setup applies a network policy and a masquerade in one call', () => {
      const e = [masq('10.3.0.5', '10.3.0.0/24')];
      inLab(() => fw.setup([{ kind: 'network', policy: p }, { kind: 'masquerade', key: key('s1', 'n3'), entries: e }]));
      inLab(() => fw.checkNetwork(p));
      inLab(() => fw.checkMasquerade(key('s1', 'n3'), e));
      inLab(() => fw.delMasquerade(key('s1', 'n3'), e));
      inLab(() => fw.removeNetwork('cbr0'));
    });
  });

  describe('port mappings', () => {
    const req: PortMappingRequest = {
      containers: [parsePrefix('10.4.0.5/24'), parsePrefix('fd04::5/64')],
      mappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
        { hostPort: 9999, containerPort: 9, protocol: 'sctp' },
        { hostIP: parseIP('127.0.0.1'), hostPort: 8053, containerPort: 53, protocol: 'udp' },
        { hostIP: parseIP('::'), hostPort: 8443, containerPort: 443, protocol: 'tcp' },
      ],
    };

    it('an address that moved to a new owner takes the old owner\'s host ports along: nothing is left after both DELs', () => {
      // The stress run's leak: A's DEL was killed, its address went to B, A's DEL came again.
      const before = c.dump(lab);
      const on = (port: number): PortMappingRequest => ({ containers: [parsePrefix('10.4.0.40/24')], mappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] });
      inLab(() => fw.addPortMappings(key('moved-a'), on(18001)));
      inLab(() => fw.addPortMappings(key('moved-b'), on(18002)));
      inLab(() => fw.checkPortMappings(key('moved-b'), on(18002)));
      inLab(() => fw.delPortMappings(key('moved-a'), on(18001)));
      inLab(() => fw.checkPortMappings(key('moved-b'), on(18002)));
      inLab(() => fw.delPortMappings(key('moved-b'), on(18002)));
      expect(c.dump(lab)).not.toContain('18001');
      expect(c.dump(lab)).toBe(before);
    });

    it.runIf(c.backend === 'nftables')('gc removes host-port and masquerade elements no owner element claims', () => {
      const before = c.dump(lab);
      inLab(() => fw.addPortMappings(key('kept'), { containers: [parsePrefix('10.4.0.42/24')], mappings: [{ hostPort: 18006, containerPort: 80, protocol: 'tcp' }] }));
      const withKept = c.dump(lab);
      must(lab, 'nft', ['-f', '-'], [
        'add element inet cnikit ports4 { tcp . 18005 : 10.4.0.41 . 80 }',
        'add element inet cnikit ports4ip { 127.0.0.1 . tcp . 18007 : 10.4.0.41 . 80 }',
      ].join('\n'));
      expect(c.dump(lab)).toContain('18005');
      inLab(() => fw.gcPortMappings('net1', [{ containerId: 'kept', ifname: 'eth0' }]));
      inLab(() => fw.gcMasquerade('net1', [{ containerId: 'kept', ifname: 'eth0' }]));
      expect(c.dump(lab)).toBe(withKept);
      inLab(() => fw.delPortMappings(key('kept'), { containers: [parsePrefix('10.4.0.42/24')], mappings: [{ hostPort: 18006, containerPort: 80, protocol: 'tcp' }] }));
      expect(c.dump(lab)).toBe(before);
    });

    it('add, check, del, del again', () => {
      const before = c.dump(lab);
      inLab(() => fw.addPortMappings(key('p1'), req));
      const during = c.dump(lab);
      expect(during).toContain('8080');
      expect(during).toContain('8443');
      inLab(() => fw.checkPortMappings(key('p1'), req));
      inLab(() => fw.addPortMappings(key('p1'), req));
      expect(c.dump(lab)).toBe(during);
      inLab(() => fw.delPortMappings(key('p1'), req));
      expect(c.dump(lab)).toBe(before);
      inLab(() => fw.delPortMappings(key('p1'), req));
      expect(c.dump(lab)).toBe(before);
    });

    it('a repeated add with changed mappings replaces the old ones', () => {
      const before = c.dump(lab);
      const r1: PortMappingRequest = { containers: [parsePrefix('10.4.0.31/24')], mappings: [{ hostPort: 7200, containerPort: 80, protocol: 'tcp' }] };
      const r2: PortMappingRequest = { containers: [parsePrefix('10.4.0.31/24')], mappings: [{ hostPort: 7200, containerPort: 81, protocol: 'tcp' }] };
      inLab(() => fw.addPortMappings(key('r1'), r1));
      inLab(() => fw.addPortMappings(key('r1'), r2));
      inLab(() => fw.checkPortMappings(key('r1'), r2));
      expect(() => inLab(() => fw.checkPortMappings(key('r1'), r1))).toThrow(FirewallError);
      inLab(() => fw.delPortMappings(key('r1'), r2));
      expect(c.dump(lab)).toBe(before);
    });

    it('check names a removed mapping', () => {
      inLab(() => fw.addPortMappings(key('p2'), req));
      c.breakPort(lab, 8080);
      expect(() => inLab(() => fw.checkPortMappings(key('p2'), req))).toThrow(/8080/);
      inLab(() => fw.delPortMappings(key('p2'), req));
    });

    it('gc removes the mappings of attachments not in the valid list', () => {
      const before = c.dump(lab);
      const r1: PortMappingRequest = { containers: [parsePrefix('10.4.0.11/24')], mappings: [{ hostPort: 7001, containerPort: 80, protocol: 'tcp' }] };
      const r2: PortMappingRequest = { containers: [parsePrefix('10.4.0.12/24')], mappings: [{ hostPort: 7002, containerPort: 80, protocol: 'tcp' }] };
      inLab(() => {
        fw.addPortMappings(key('q1'), r1);
        fw.addPortMappings(key('q2'), r2);
      });
      const removed = inLab(() => fw.gcPortMappings('net1', [{ containerId: 'q2', ifname: 'eth0' }]));
      expect(removed).toHaveLength(1);
      inLab(() => fw.checkPortMappings(key('q2'), r2));
      expect(() => inLab(() => fw.checkPortMappings(key('q1'), r1))).toThrow(FirewallError);
      inLab(() => fw.gcPortMappings('net1', []));
      expect(c.dump(lab)).toBe(before);
    });

    if (c.backend === 'nftables') {
      it('a host port published by another container is refused, and nothing of the second add remains', () => {
        const r1: PortMappingRequest = { containers: [parsePrefix('10.4.0.21/24')], mappings: [{ hostPort: 7100, containerPort: 80, protocol: 'tcp' }] };
        const r2: PortMappingRequest = { containers: [parsePrefix('10.4.0.22/24')], mappings: [{ hostPort: 7100, containerPort: 80, protocol: 'tcp' }] };
        inLab(() => fw.addPortMappings(key('k1'), r1));
        const held = c.dump(lab);
        expect(() => inLab(() => fw.addPortMappings(key('k2'), r2))).toThrow(/7100\/tcp.*already published/);
        expect(c.dump(lab)).toBe(held);
        inLab(() => fw.delPortMappings(key('k2'), r2));
        inLab(() => fw.checkPortMappings(key('k1'), r1));
        inLab(() => fw.delPortMappings(key('k1'), r1));
      });
    }
  });

  const runWorker = (netns: string, op: string, i: number) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn('nsenter', [`--net=${netns}`, '--', BUN, WORKER, c.backend, op, String(i), 'ports'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => resolve({ code, err }));
    });

  it('parallel first adds on a namespace without any rules create the shared chains once', async () => {
    const fresh = `/run/netns/${lab.addNetns('fresh')}`;
    const adds = await Promise.all(Array.from({ length: 10 }, (_, i) => runWorker(fresh, 'add', i + 1)));
    expect(adds.filter((r) => r.code !== 0)).toEqual([]);
    if (c.backend === 'iptables') {
      const nat = lab.exec('iptables-save', ['-t', 'nat'], { netns: fresh }).stdout;
      expect(nat.match(/-j CNIK-POSTROUTING/g)).toHaveLength(1);
      expect(nat.match(/-A CNIK-POSTROUTING -s/g)).toHaveLength(10);
    } else {
      const post = lab.exec('nft', ['list', 'chain', 'inet', 'cnikit', 'postrouting'], { netns: fresh }).stdout;
      expect(post.match(/vmap/g)).toHaveLength(4);
    }
    lab.deleteNetns(fresh);
  });

  it('parallel adds and dels from separate processes all succeed', async () => {
    const before = c.dump(lab);
    const N = 12;
    const run = (op: string, i: number) => runWorker(lab.hostPath, op, i);
    const adds = await Promise.all(Array.from({ length: N }, (_, i) => run('add', i + 1)));
    expect(adds.filter((r) => r.code !== 0)).toEqual([]);
    const during = c.dump(lab);
    for (let i = 1; i <= N; i++) {
      expect(during).toContain(`10.77.0.${i}`);
      expect(during).toContain(`${20000 + i}`);
      inLab(() => fw.checkMasquerade(key(`c${i}`, 'par'), [masq(`10.77.0.${i}`, '10.77.0.0/16'), masq(`fd77::${(i + 1).toString(16)}`, 'fd77::/64')]));
    }
    const dels = await Promise.all(Array.from({ length: N }, (_, i) => run('del', i + 1)));
    expect(dels.filter((r) => r.code !== 0)).toEqual([]);
    expect(c.dump(lab)).toBe(before);
  });
});
