// The tuning meta plugin chained after bridge, as a runtime runs it: what it
// changes is seen inside the container, and DEL puts it back.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN } from './dist.ts';

let lab: Lab;
beforeAll(() => {
  lab = Lab.create();
});
afterAll(() => lab?.destroy());

const NAME = 'tunenet';
let ids = 0;

function conf(extra: Record<string, unknown> = {}) {
  return { cniVersion: '1.0.0', name: NAME, dataDir: join(lab.dir, 'state'), ...extra };
}

function bridgeConf() {
  return conf({ type: 'bridge', bridge: 'tunebr0', isGateway: true, ipam: { type: 'host-local', subnet: '10.72.0.0/24', dataDir: join(lab.dir, 'ipam') } });
}

function run(plugin: string, command: string, id: string, netns: string | undefined, config: object, args?: string) {
  return lab.plugin(bin(plugin), { command, containerId: id, netns, ifname: 'eth0', path: BIN, config, args });
}

interface LinkInfo {
  mtu: number;
  address: string;
  flags: string[];
  txqlen: number;
}

function link(netns: string): LinkInfo {
  return (JSON.parse(lab.ip(['-j', '-d', 'link', 'show', 'eth0'], netns)) as LinkInfo[])[0]!;
}

function sysctl(netns: string, key: string): string {
  return lab.exec('cat', [`/proc/sys/${key.replaceAll('.', '/')}`], { netns }).stdout.trim();
}

function attach() {
  const netns = lab.container();
  const id = `tu${ids++}`;
  const b = run('bridge', 'ADD', id, netns, bridgeConf());
  expect(b.stdout).not.toContain('"code"');
  return { netns, id, prev: JSON.parse(b.stdout) as { interfaces: { name: string; mac: string; sandbox?: string }[] } };
}

const records = () => {
  const dir = join(lab.hostState(join(lab.dir, 'state')), 'tuning', NAME);
  return existsSync(dir) ? readdirSync(dir) : [];
};

describe('tuning', () => {
  it('applies sysctl, mac, mtu, promisc, allmulti and txQLen in the container and restores them on DEL', () => {
    const c = attach();
    const before = link(c.netns);
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_notify')).toBe('0');
    const tuning = conf({
      type: 'tuning', prevResult: c.prev,
      sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1', 'net.ipv4.conf.IFNAME.arp_ignore': '2' },
      mac: '02:42:ac:11:00:99', mtu: 1400, promisc: true, allmulti: true, txQLen: 500,
    });
    const add = run('tuning', 'ADD', c.id, c.netns, tuning);
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    const result = JSON.parse(add.stdout) as { interfaces: { name: string; mac: string; sandbox?: string }[] };
    expect(result.interfaces.find((i) => i.sandbox)).toMatchObject({ name: 'eth0', mac: '02:42:ac:11:00:99' });
    const after = link(c.netns);
    expect(after).toMatchObject({ mtu: 1400, address: '02:42:ac:11:00:99', txqlen: 500 });
    expect(after.flags).toEqual(expect.arrayContaining(['PROMISC', 'ALLMULTI']));
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_notify')).toBe('1');
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_ignore')).toBe('2');
    expect(run('tuning', 'CHECK', c.id, c.netns, tuning).status).toBe(0);
    expect(records()).toEqual([`${c.id}@eth0.json`]);

    expect(run('tuning', 'DEL', c.id, c.netns, tuning).status).toBe(0);
    const restored = link(c.netns);
    expect(restored).toMatchObject({ mtu: before.mtu, address: before.address, txqlen: before.txqlen });
    expect(restored.flags).not.toContain('PROMISC');
    expect(restored.flags).not.toContain('ALLMULTI');
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_notify')).toBe('0');
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_ignore')).toBe('0');
    expect(records()).toEqual([]);
    expect(run('tuning', 'DEL', c.id, c.netns, tuning).status).toBe(0);
    expect(run('bridge', 'DEL', c.id, c.netns, bridgeConf()).status).toBe(0);
  });

  it('takes the MAC from runtimeConfig before args.cni before CNI_ARGS', () => {
    const c = attach();
    const base = conf({ type: 'tuning', prevResult: c.prev });
    expect(run('tuning', 'ADD', c.id, c.netns, base, 'IgnoreUnknown=1;MAC=02:00:00:00:00:01').status).toBe(0);
    expect(link(c.netns).address).toBe('02:00:00:00:00:01');
    expect(run('tuning', 'ADD', c.id, c.netns, { ...base, args: { cni: { mac: '02:00:00:00:00:02' } } }, 'IgnoreUnknown=1;MAC=02:00:00:00:00:01').status).toBe(0);
    expect(link(c.netns).address).toBe('02:00:00:00:00:02');
    expect(run('tuning', 'ADD', c.id, c.netns, { ...base, args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02:00:00:00:00:03' } }).status).toBe(0);
    expect(link(c.netns).address).toBe('02:00:00:00:00:03');
    // Repeated ADDs keep the MAC from before the first one for DEL.
    expect(run('tuning', 'DEL', c.id, c.netns, base).status).toBe(0);
    expect(link(c.netns).address).toBe(c.prev.interfaces.find((i) => i.sandbox)!.mac);
    expect(run('bridge', 'DEL', c.id, c.netns, bridgeConf()).status).toBe(0);
  });

  it('refuses sysctls outside net.* or with path tricks with code 7, changing nothing', () => {
    const c = attach();
    const before = link(c.netns);
    for (const key of ['kernel.hostname', 'net.ipv4.conf.eth0..arp_notify', 'net/../kernel/hostname', 'net/ipv4/conf/../../../kernel/hostname', 'net.ipv4.conf.eth0.arp_notify/../x', '/proc/sys/net/ipv4/ip_forward', 'net.ipv4.conf.eth0.no_such_key']) {
      const r = run('tuning', 'ADD', c.id, c.netns, conf({ type: 'tuning', prevResult: c.prev, mtu: 1300, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1', [key]: '1' } }));
      const err = JSON.parse(r.stdout) as { code: number; msg: string };
      expect(err.code, `${key}: ${r.stdout}`).toBe(7);
      expect(err.msg).toContain('sysctl');
      expect(link(c.netns).mtu).toBe(before.mtu);
      expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_notify')).toBe('0');
    }
    // A value the kernel refuses after another key was already set: that one is put back.
    const refused = run('tuning', 'ADD', c.id, c.netns, conf({ type: 'tuning', prevResult: c.prev, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1', 'net.ipv4.conf.eth0.arp_ignore': 'lots' } }));
    expect(JSON.parse(refused.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('arp_ignore') });
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_notify')).toBe('0');
    expect(sysctl(c.netns, 'net.ipv4.conf.eth0.arp_ignore')).toBe('0');
    const badMac = run('tuning', 'ADD', c.id, c.netns, conf({ type: 'tuning', prevResult: c.prev, mac: '01:00:5e:00:00:01' }));
    expect(JSON.parse(badMac.stdout)).toMatchObject({ code: 7 });
    expect(records()).toEqual([]);
    expect(run('bridge', 'DEL', c.id, c.netns, bridgeConf()).status).toBe(0);
  });

  it('without options returns the prevResult and keeps no record; DEL without the netns succeeds', () => {
    const c = attach();
    const add = run('tuning', 'ADD', c.id, c.netns, conf({ type: 'tuning', prevResult: c.prev }));
    expect(JSON.parse(add.stdout)).toEqual(c.prev);
    expect(records()).toEqual([]);
    const tuned = conf({ type: 'tuning', prevResult: c.prev, mtu: 1450 });
    expect(run('tuning', 'ADD', c.id, c.netns, tuned).status).toBe(0);
    expect(records()).toHaveLength(1);
    lab.deleteNetns(c.netns);
    expect(run('tuning', 'DEL', c.id, undefined, conf({ type: 'tuning' })).status).toBe(0);
    expect(records()).toEqual([]);
    expect(run('tuning', 'DEL', c.id, undefined, conf({ type: 'tuning' })).status).toBe(0);
    expect(run('bridge', 'DEL', c.id, undefined, bridgeConf()).status).toBe(0);
  });
});
