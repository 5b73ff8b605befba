// rtnetlink against the real kernel, inside a lab namespace; every change is
// read back with `ip -j`, as an operator would look at it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../../test/lab.ts';
import { withNetns } from '../netns/index.ts';
import { parseIP, parsePrefix } from '../ip/index.ts';
import { Netlink, NetlinkError, readSysctl, writeSysctl } from './index.ts';
import { NetlinkSocket } from './socket.ts';

let lab: Lab;
beforeAll(() => {
  lab = Lab.create();
});
afterAll(() => lab.destroy());

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean; isolated?: boolean } };
}

function ipLink(name: string, netns?: string): IpLink | undefined {
  const r = lab.exec('ip', ['-j', '-d', 'link', 'show', 'dev', name], { netns });
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as IpLink[])[0];
}

function inLab<T>(fn: (nl: Netlink) => T, netns = lab.hostPath): T {
  return Netlink.inNetns(netns, fn);
}

describe('lib/netlink', () => {
  it('lists links and finds lo; an absent name is undefined', () => {
    const links = inLab((nl) => nl.links());
    expect(links.map((l) => l.name)).toContain('lo');
    const lo = inLab((nl) => nl.link('lo'))!;
    expect(lo.index).toBe(ipLink('lo')!.ifindex);
    expect(lo.up).toBe(true);
    expect(inLab((nl) => nl.link('nope0'))).toBeUndefined();
    expect(inLab((nl) => nl.linkByIndex(99999))).toBeUndefined();
  });

  it('creates a bridge with MTU and MAC, brings it up and down, renames and deletes it', () => {
    inLab((nl) => nl.createBridge('tbr0', { mtu: 1400, mac: '02:42:ac:11:00:01' }));
    let seen = ipLink('tbr0')!;
    expect(seen.linkinfo?.info_kind).toBe('bridge');
    expect(seen.mtu).toBe(1400);
    expect(seen.address).toBe('02:42:ac:11:00:01');
    const br = inLab((nl) => nl.link('tbr0'))!;
    expect(br.kind).toBe('bridge');
    inLab((nl) => nl.setUp(br.index));
    expect(ipLink('tbr0')!.flags).toContain('UP');
    inLab((nl) => nl.setDown(br.index));
    expect(ipLink('tbr0')!.flags).not.toContain('UP');
    inLab((nl) => {
      nl.setMtu(br.index, 1300);
      nl.setMac(br.index, '02:00:00:00:00:aa');
      nl.rename(br.index, 'tbr1');
    });
    seen = ipLink('tbr1')!;
    expect([seen.mtu, seen.address, seen.ifindex]).toEqual([1300, '02:00:00:00:00:aa', br.index]);
    expect(inLab((nl) => nl.link('tbr1'))!.alias).toBeUndefined();
    inLab((nl) => nl.setAlias(br.index, 'some alias'));
    expect(inLab((nl) => nl.link('tbr1'))!.alias).toBe('some alias');
    expect((ipLink('tbr1') as { ifalias?: string }).ifalias).toBe('some alias');
    expect(() => inLab((nl) => nl.createBridge('tbr1'))).toThrow(/EEXIST/);
    inLab((nl) => nl.deleteLink(br.index));
    expect(ipLink('tbr1')).toBeUndefined();
  });

  it('creates a veth whose peer is born in another namespace, enslaves it, sets hairpin and isolation', () => {
    const ctr = lab.container();
    inLab((nl) => nl.createBridge('tbr2'));
    const fd = openSync(ctr, 'r');
    try {
      inLab((nl) => nl.createVeth({ name: 'vethtest0', peerName: 'eth0', peerNetnsFd: fd, mtu: 1450, peerMac: '02:11:22:33:44:55' }));
    } finally {
      closeSync(fd);
    }
    const host = ipLink('vethtest0')!;
    expect(host.linkinfo?.info_kind).toBe('veth');
    expect(host.mtu).toBe(1450);
    const peer = ipLink('eth0', ctr)!;
    expect(peer.address).toBe('02:11:22:33:44:55');
    expect(peer.mtu).toBe(1450);
    const v = inLab((nl) => nl.link('vethtest0'))!;
    expect(v.kind).toBe('veth');
    expect(v.linkIndex).toBe(peer.ifindex);
    expect(v.linkNetnsId).toBeGreaterThanOrEqual(0);
    // The peer name is taken in that namespace now: the whole pair is refused.
    const fd2 = openSync(ctr, 'r');
    try {
      expect(() => inLab((nl) => nl.createVeth({ name: 'vethtest1', peerName: 'eth0', peerNetnsFd: fd2 }))).toThrow(/EEXIST/);
    } finally {
      closeSync(fd2);
    }
    expect(ipLink('vethtest1')).toBeUndefined();

    inLab((nl) => {
      const br = nl.link('tbr2')!;
      nl.setMaster(v.index, br.index);
      nl.setHairpin(v.index, true);
      nl.setBridgePortIsolated(v.index, true);
      expect(nl.isBridgePort(nl.link('vethtest0')!)).toBe(true);
    });
    const port = ipLink('vethtest0')!;
    expect(port.master).toBe('tbr2');
    expect(port.linkinfo?.info_slave_data?.hairpin).toBe(true);
    expect(port.linkinfo?.info_slave_data?.isolated).toBe(true);
    inLab((nl) => nl.setMaster(v.index, 0));
    expect(ipLink('vethtest0')!.master).toBeUndefined();
    // Deleting one end removes the pair, in both namespaces.
    inLab((nl) => nl.deleteLink(v.index));
    expect(ipLink('eth0', ctr)).toBeUndefined();
  });

  it('creates a veth already enslaved and up, in the one request', () => {
    inLab((nl) => nl.createBridge('tbr3'));
    const br = inLab((nl) => nl.link('tbr3')!);
    inLab((nl) => nl.createVeth({ name: 'vethtest2', peerName: 'vethtest3', masterIndex: br.index, up: true }));
    const host = ipLink('vethtest2')!;
    expect(host.master).toBe('tbr3');
    expect(host.flags).toContain('UP');
    // The peer is left as it was: down, on no bridge.
    const peer = ipLink('vethtest3')!;
    expect(peer.flags).not.toContain('UP');
    expect(peer.master).toBeUndefined();
    inLab((nl) => nl.deleteLink(nl.link('vethtest2')!.index));
    inLab((nl) => nl.deleteLink(br.index));
  });

  it('deletes a veth pair from a child and returns with both ends gone; the kernel refusing comes back as its error', () => {
    const ctr = lab.container();
    const marker = join(lab.dir, 'relay-ran');
    // A relay that leaves a mark, then is cat: shows the request went through the child.
    const relay = join(lab.dir, 'relay');
    writeFileSync(relay, `#!/bin/sh\necho ran > ${marker}\nexec cat\n`, { mode: 0o755 });
    const fd = openSync(ctr, 'r');
    try {
      inLab((nl) => nl.createVeth({ name: 'tquick0', peerName: 'tquick1', peerNetnsFd: fd, up: true }));
    } finally {
      closeSync(fd);
    }
    inLab((nl) => nl.deleteLinkUnwaited(nl.link('tquick0')!.index, { program: relay }));
    expect(ipLink('tquick0')).toBeUndefined();
    expect(ipLink('tquick1', ctr)).toBeUndefined();
    expect(readFileSync(marker, 'utf8')).toBe('ran\n');
    // lo cannot be deleted: EOPNOTSUPP, read back from the child's socket
    // (with no patience left to fall back on, a missed refusal would hang the test).
    const err = (() => {
      try {
        inLab((nl) => nl.deleteLinkUnwaited(1, { patienceMs: 3_600_000 }));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).errno).toBe(95);
    expect(ipLink('lo')).toBeDefined();
  });

  it('deletes the link itself when the child cannot start or never sends the request', () => {
    // No patience for the one that cannot start: only giving up on it at once passes.
    for (const [program, patienceMs] of [['/nonexistent/cat', 3_600_000], ['/bin/true', 100]] as const) {
      inLab((nl) => nl.createVeth({ name: 'tquick2', peerName: 'tquick3' }));
      inLab((nl) => nl.deleteLinkUnwaited(nl.link('tquick2')!.index, { program, patienceMs }));
      expect(ipLink('tquick2')).toBeUndefined();
      expect(ipLink('tquick3')).toBeUndefined();
    }
  });

  it('moves a link to another namespace', () => {
    const ctr = lab.container();
    // Bridges are netns-local; a veth end can move.
    inLab((nl) => nl.createVeth({ name: 'tmove0', peerName: 'tmove1' }));
    const index = inLab((nl) => nl.link('tmove0')!.index);
    const fd = openSync(ctr, 'r');
    try {
      inLab((nl) => nl.setNetnsFd(index, fd));
    } finally {
      closeSync(fd);
    }
    expect(ipLink('tmove0')).toBeUndefined();
    expect(ipLink('tmove0', ctr)?.linkinfo?.info_kind).toBe('veth');
    expect(ipLink('tmove1')?.linkinfo?.info_kind).toBe('veth');
  });

  it('adds, lists and deletes IPv4 and IPv6 addresses', () => {
    const ctr = lab.container();
    inLab((nl) => {
      const lo = nl.link('lo')!;
      nl.setUp(lo.index);
      nl.createBridge('taddr0');
      const br = nl.link('taddr0')!;
      nl.setUp(br.index);
      nl.addAddress(br.index, parsePrefix('10.99.0.1/24'));
      nl.addAddress(br.index, parsePrefix('fd99::1/64'), { noDad: true });
      expect(() => nl.addAddress(br.index, parsePrefix('10.99.0.1/24'))).toThrow(NetlinkError);
      const mine = nl.addresses({ index: br.index });
      expect(mine.map((a) => a.cidr)).toEqual(expect.arrayContaining(['10.99.0.1/24', 'fd99::1/64']));
      expect(nl.addresses({ index: br.index, family: 4 }).map((a) => a.cidr)).toEqual(['10.99.0.1/24']);
    }, ctr);
    const shown = JSON.parse(lab.ip(['-j', 'addr', 'show', 'dev', 'taddr0'], ctr)) as { addr_info: { local: string; prefixlen: number; broadcast?: string }[] }[];
    const v4 = shown[0]!.addr_info.find((a) => a.local === '10.99.0.1')!;
    expect(v4.broadcast).toBe('10.99.0.255');
    inLab((nl) => {
      const br = nl.link('taddr0')!;
      nl.deleteAddress(br.index, parsePrefix('10.99.0.1/24'));
      expect(nl.addresses({ index: br.index, family: 4 })).toEqual([]);
    }, ctr);
  });

  it("asks the kernel for one link's addresses only (strict dump filter), not every link's", () => {
    const ctr = lab.container();
    const RTM_GETADDR = 22;
    const indexes = (strict: boolean, index: number) => withNetns(ctr, () => {
      const sock = NetlinkSocket.open(0);
      try {
        expect(sock.strict(strict)).toBe(true);
        const body = new Uint8Array(8);
        new DataView(body.buffer).setUint32(4, index, true);
        return sock.dump('addresses', RTM_GETADDR, body).map((m) => new DataView(m.body.buffer, m.body.byteOffset).getUint32(4, true));
      } finally {
        sock.close();
      }
    });
    const br = inLab((nl) => {
      nl.setUp(nl.link('lo')!.index);
      nl.createBridge('tflt0');
      const b = nl.link('tflt0')!;
      nl.addAddress(b.index, parsePrefix('10.98.0.1/24'));
      return b;
    }, ctr);
    expect(new Set(indexes(false, br.index)).size).toBeGreaterThan(1);
    expect(indexes(true, br.index)).toEqual([br.index]);
    expect(inLab((nl) => nl.addresses({ index: br.index }).map((a) => a.cidr), ctr)).toEqual(['10.98.0.1/24']);
  });

  it('adds, lists and deletes routes, including a default route with MTU', () => {
    const ctr = lab.container();
    inLab((nl) => {
      nl.createBridge('troute0');
      const br = nl.link('troute0')!;
      nl.setUp(br.index);
      nl.addAddress(br.index, parsePrefix('10.98.0.2/24'));
      nl.addRoute({ dst: parsePrefix('10.97.0.0/16'), gw: parseIP('10.98.0.1'), index: br.index });
      nl.addRoute({ gw: parseIP('10.98.0.1'), index: br.index, mtu: 1400 });
      expect(() => nl.addRoute({ gw: parseIP('10.98.0.1'), index: br.index })).toThrow(/EEXIST/);
      const routes = nl.routes({ family: 4, index: br.index });
      expect(routes.find((r) => r.dst === undefined)).toMatchObject({ gw: parseIP('10.98.0.1'), mtu: 1400 });
      expect(routes.find((r) => r.dst?.length === 16)).toMatchObject({ gw: parseIP('10.98.0.1') });
    }, ctr);
    const shown = JSON.parse(lab.ip(['-j', 'route', 'show'], ctr)) as { dst: string; gateway?: string; metrics?: { mtu: number }[] }[];
    expect(shown).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.98.0.1' }));
    expect(shown).toContainEqual(expect.objectContaining({ dst: '10.97.0.0/16', gateway: '10.98.0.1' }));
    inLab((nl) => {
      const br = nl.link('troute0')!;
      nl.deleteRoute({ dst: parsePrefix('10.97.0.0/16'), gw: parseIP('10.98.0.1'), index: br.index });
      expect(nl.routes({ family: 4 }).some((r) => r.dst?.length === 16)).toBe(false);
    }, ctr);
  });

  it('reads and writes sysctls of the namespace it runs in, not the machine', () => {
    const ctr = lab.container();
    const machine = readSysctl('net.ipv4.ip_forward');
    withNetns(ctr, () => {
      writeSysctl('net.ipv4.ip_forward', '1');
      expect(readSysctl('net/ipv4/ip_forward')).toBe('1');
    });
    expect(lab.exec('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: ctr }).stdout.trim()).toBe('1');
    expect(readSysctl('net.ipv4.ip_forward')).toBe(machine);
  });
});
