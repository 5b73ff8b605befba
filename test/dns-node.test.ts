// The responder under Node (the compiled executable runs it under Bun; the
// other dns tests exec that): serve() in this test process, whose main
// thread is moved into the lab host namespace for the whole file (vitest
// runs each file in a process of its own), with records written directly.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Lab } from './lab.ts';
import { askAsync } from './dnsq.ts';
import { sys, CLONE_NEWNET, O_RDONLY } from '../lib/sys/index.ts';
import { writeRecord, removeRecord, type NameRecord } from '../dns/records.ts';
import { serve } from '../dns/serve.ts';
import { upstreamsFrom } from '../dns/forward.ts';
import { Zones, reverseToIP } from '../dns/zone.ts';

let lab: Lab;
let origin = -1;
let root: string;
let served: Promise<number>;

const rec = (r: Partial<NameRecord> & Pick<NameRecord, 'containerId' | 'names' | 'ips'>): NameRecord => ({
  network: 'n1', ifname: 'eth0', domainName: 'dns.test', gateways: ['10.66.0.1', 'fd00:66::1'], internal: false, ...r,
});

beforeAll(() => {
  lab = Lab.create();
  lab.ip(['link', 'add', 'nbr0', 'type', 'bridge']);
  lab.ip(['addr', 'add', '10.66.0.1/24', 'dev', 'nbr0']);
  lab.ip(['addr', 'add', 'fd00:66::1/64', 'dev', 'nbr0', 'nodad']);
  lab.ip(['addr', 'add', '10.67.0.1/24', 'dev', 'nbr0']);
  lab.ip(['link', 'set', 'nbr0', 'up']);
  root = join(lab.dir, 'dns');
  writeFileSync(join(lab.dir, 'resolv.conf'), '');
  writeRecord(root, rec({ containerId: 'c1', names: ['one', 'uno'], ips: ['10.66.0.2/24', 'fd00:66::2/64'] }));
  origin = sys.open('/proc/thread-self/ns/net', O_RDONLY);
  const target = sys.open(lab.hostPath, O_RDONLY);
  sys.setns(target, CLONE_NEWNET);
  sys.close(target);
  served = serve({ dir: root, resolvConf: join(lab.dir, 'resolv.conf'), upstreamTimeoutMs: 300 });
});

afterAll(async () => {
  removeRecord(root, 'n1', 'c1', 'eth0');
  removeRecord(root, 'n2', 'c2', 'eth0');
  await Promise.race([served, new Promise((r) => setTimeout(r, 2000))]);
  if (origin >= 0) sys.setns(origin, CLONE_NEWNET);
  lab?.destroy();
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the responder under Node', () => {
  it('answers A, AAAA and PTR on UDP and TCP, and follows new records', async () => {
    await wait(200);
    expect(await askAsync(lab.hostPath, '10.66.0.1', 'one')).toMatchObject({ rcode: 'NOERROR', aa: true, answers: ['10.66.0.2'] });
    expect(await askAsync(lab.hostPath, 'fd00:66::1', 'uno.dns.test', 'AAAA', 'tcp')).toMatchObject({ rcode: 'NOERROR', answers: ['fd00:66::2'] });
    expect(await askAsync(lab.hostPath, '10.66.0.1', '2.0.66.10.in-addr.arpa', 'PTR')).toMatchObject({ answers: ['one.dns.test'] });
    // No upstream in its resolv.conf: SERVFAIL, not silence.
    expect(await askAsync(lab.hostPath, '10.66.0.1', 'outside.example')).toMatchObject({ rcode: 'SERVFAIL' });

    writeRecord(root, rec({ network: 'n2', containerId: 'c2', names: ['two'], ips: ['10.67.0.2/24'], gateways: ['10.67.0.1'], internal: true }));
    await wait(300);
    expect(await askAsync(lab.hostPath, '10.67.0.1', 'two')).toMatchObject({ rcode: 'NOERROR', answers: ['10.67.0.2'] });
    expect(await askAsync(lab.hostPath, '10.67.0.1', 'one')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(await askAsync(lab.hostPath, '10.67.0.1', 'outside.example')).toMatchObject({ rcode: 'REFUSED' });
  });

  it('answers FORMERR to a readable header with a bad body, and closes TCP connections with impossible lengths', async () => {
    const dgram = await import('node:dgram');
    const s = dgram.createSocket('udp4');
    const reply = new Promise<Buffer>((resolve) => s.on('message', (m) => resolve(m)));
    // ID 0x1234, RD, one question claimed, a label running past the end.
    s.send(Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 40, 0x61]), 53, '10.66.0.1');
    const m = await reply;
    s.close();
    expect(m.readUInt16BE(0)).toBe(0x1234);
    expect(m[2]! & 0x80).toBe(0x80);
    expect(m[3]! & 0x0f).toBe(1);

    const closed = await new Promise<boolean>((resolve) => {
      const c = net.connect(53, '10.66.0.1', () => c.write(Buffer.from([0, 3, 1, 2, 3])));
      c.on('close', () => resolve(true));
      c.on('error', () => undefined);
      setTimeout(() => resolve(false), 2000);
    });
    expect(closed).toBe(true);
  });

  it('exits once the last record is gone', async () => {
    removeRecord(root, 'n1', 'c1', 'eth0');
    removeRecord(root, 'n2', 'c2', 'eth0');
    expect(await Promise.race([served, wait(3000).then(() => 'still running')])).toBe(0);
  });
});

describe('pieces', () => {
  it('the plugin under bare Node cannot tell which executable serves names: code 4, no record', async () => {
    const { dnsnamePlugin } = await import('../plugins/dnsname/index.ts');
    const { CniError } = await import('../lib/skel/index.ts');
    const dataDir = join(lab.dir, 'bare');
    const ctx = {
      inv: { command: 'ADD' as const, containerId: 'b1', netns: '/run/netns/x', ifname: 'eth0', args: new Map([['K8S_POD_NAME', 'bare']]), path: [] },
      conf: { cniVersion: '1.0.0', name: 'n1', type: 'dnsname', dataDir },
      prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.66.0.9/24', gateway: '10.66.0.1' }] },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as never,
    };
    const saved = process.env.CNIKIT_EXECUTABLE;
    delete process.env.CNIKIT_EXECUTABLE;
    try {
      await dnsnamePlugin.add(ctx);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CniError);
      expect(e).toMatchObject({ code: 4, message: expect.stringMatching(/CNIKIT_EXECUTABLE/) });
    } finally {
      if (saved !== undefined) process.env.CNIKIT_EXECUTABLE = saved;
    }
    const { listRecords, dnsRoot } = await import('../dns/records.ts');
    expect(listRecords(dnsRoot(dataDir))).toEqual([]);
  });

  it('takes at most 3 upstreams from resolv.conf, none of its own addresses, scoped IPv6 kept', () => {
    const text = 'search x\nnameserver 10.66.0.1\nnameserver 192.0.2.1\n# nameserver 192.0.2.9\nnameserver fe80::1%eth0\nnameserver 192.0.2.1\nnameserver 2001:db8::1\nnameserver 192.0.2.4\nnameserver bogus\n';
    expect(upstreamsFrom(text, ['10.66.0.1'])).toEqual([
      { address: '192.0.2.1', port: 53 }, { address: 'fe80::1%eth0', port: 53 }, { address: '2001:db8::1', port: 53 },
    ]);
  });

  it('reads reverse names of both families and refuses malformed ones', () => {
    expect(reverseToIP('4.3.2.1.in-addr.arpa')).toBe('1.2.3.4');
    const nibbles = 'fd000066000000000000000000000002'.split('').reverse().join('.');
    expect(reverseToIP(`${nibbles}.ip6.arpa`)).toBe('fd00:66::2');
    expect(reverseToIP(`${nibbles.slice(2)}.ip6.arpa`)).toBeUndefined();
    expect(reverseToIP('256.3.2.1.in-addr.arpa')).toBeUndefined();
    expect(reverseToIP('3.2.1.in-addr.arpa')).toBeUndefined();
    expect(reverseToIP('01.3.2.1.in-addr.arpa')).toBeUndefined();
  });

  it('answers for the network of the gateway asked on only', () => {
    const z = new Zones([rec({ containerId: 'a', names: ['web'], ips: ['10.66.0.2/24'] }), rec({ network: 'n2', containerId: 'b', names: ['db'], ips: ['10.67.0.2/24'], gateways: ['10.67.0.1'] })]);
    expect(z.answer('10.66.0.1', 'web.', 'A')).toEqual({ kind: 'local', rcode: 0, a: ['10.66.0.2'] });
    expect(z.answer('10.67.0.1', 'web', 'A')).toMatchObject({ rcode: 3 });
    expect(z.answer('10.67.0.1', 'example.org', 'A')).toEqual({ kind: 'forward' });
    expect(z.answer('192.0.2.1', 'web', 'A')).toMatchObject({ rcode: 5 });
  });
});
