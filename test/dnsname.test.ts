// The dnsname plugin executed as a runtime does (dist/bin/dnsname, so the
// responder is the Bun-compiled executable), in a lab host namespace with a
// bridge of its own: results, errors, DEL/CHECK/GC from the records, no
// forwarding for internal networks, upstream failover, a fuzz loop of
// malformed UDP and TCP traffic, and kill -9 of the responder.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, ROOT } from './dist.ts';
import { ask, startUpstream, responderPid as findResponder, alive } from './dnsq.ts';

let lab: Lab;
let container: string;
let dataDir: string;
let env: Record<string, string>;
const children: ChildProcess[] = [];

const GW4 = '10.77.0.1';
const GW6 = 'fd00:77::1';
const INTERNAL_GW = '10.78.0.1';

beforeAll(async () => {
  lab = Lab.create();
  container = lab.container();
  dataDir = join(lab.dir, 'data');
  lab.ip(['link', 'add', 'dnsbr0', 'type', 'bridge']);
  lab.ip(['addr', 'add', `${GW4}/24`, 'dev', 'dnsbr0']);
  lab.ip(['addr', 'add', `${GW6}/64`, 'dev', 'dnsbr0', 'nodad']);
  lab.ip(['link', 'set', 'dnsbr0', 'up']);
  lab.ip(['link', 'add', 'dnsbr1', 'type', 'bridge']);
  lab.ip(['addr', 'add', `${INTERNAL_GW}/24`, 'dev', 'dnsbr1']);
  lab.ip(['link', 'set', 'dnsbr1', 'up']);
  for (const a of ['127.0.0.2/8', '127.0.0.3/8']) lab.ip(['addr', 'add', a, 'dev', 'lo']);
  // Upstreams in the lab host: 127.0.0.2 never answers, 127.0.0.3 fails, 127.0.0.1 knows outside.example.
  await startUpstream(lab.hostPath, '127.0.0.3', {}, children, 2);
  await startUpstream(lab.hostPath, '127.0.0.1', { 'outside.example': '198.51.100.7' }, children);
  writeFileSync(join(lab.dir, 'resolv.conf'), 'search example\nnameserver 127.0.0.2\nnameserver 127.0.0.3\nnameserver 127.0.0.1\n');
  env = { CNIKIT_DNS_RESOLV_CONF: join(lab.dir, 'resolv.conf') };
}, 60_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  const pid = responderPid();
  if (pid) process.kill(pid, 'SIGKILL');
  lab?.destroy();
});

function root(): string {
  const ino = lab.exec('stat', ['-L', '-c', '%i', lab.hostPath]).stdout.trim();
  return join(dataDir, `ns-${ino}`, 'dnsname');
}

const responderPid = () => findResponder(lab, dataDir);


function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let t = 0; t < ms && !cond(); t += 50) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

interface Attach {
  network?: string;
  cid: string;
  name?: string;
  aliases?: Record<string, string[]>;
  ips?: { address: string; gateway?: string }[];
  defaultRoute?: boolean;
  domainName?: string;
  cniVersion?: string;
}

function conf(a: Attach, withPrev = true) {
  const network = a.network ?? 'dnsnet';
  const version = a.cniVersion ?? '1.0.0';
  const ips = a.ips ?? [{ address: '10.77.0.2/24', gateway: GW4 }];
  return {
    cniVersion: version,
    name: network,
    type: 'dnsname',
    ...(a.domainName ? { domainName: a.domainName } : {}),
    capabilities: { aliases: true },
    dataDir,
    ...(a.aliases ? { runtimeConfig: { aliases: a.aliases } } : {}),
    ...(withPrev
      ? {
          prevResult: {
            cniVersion: version,
            interfaces: [{ name: 'dnsbr0' }, { name: 'eth0', sandbox: container }],
            ips: ips.map((i) => ({ ...i, interface: 1 })),
            routes: a.defaultRoute === false ? [] : [{ dst: '0.0.0.0/0' }],
          },
        }
      : {}),
  };
}

function call(command: string, a: Attach, opts: { withPrev?: boolean; netns?: string } = {}) {
  return lab.plugin(bin('dnsname'), {
    command,
    containerId: a.cid,
    netns: opts.netns ?? container,
    ifname: 'eth0',
    path: '/opt/cni/bin',
    args: a.name ? `IgnoreUnknown=1;K8S_POD_NAME=${a.name}` : undefined,
    config: conf(a, opts.withPrev ?? true),
    env,
  });
}

const records = () => (existsSync(join(root(), 'records')) ? readdirSync(join(root(), 'records')) : []);

describe('dnsname plugin', () => {
  it('ADD registers name, aliases and name.domain, and returns the gateways as nameservers with the domain as search', async () => {
    const r = call('ADD', { cid: 'c1', name: 'Alpha', aliases: { dnsnet: ['a1', 'A2'], other: ['nothere'] }, ips: [{ address: '10.77.0.2/24', gateway: GW4 }, { address: 'fd00:77::2/64', gateway: GW6 }] });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.dns).toEqual({ nameservers: [GW4, GW6], search: ['dns.podman'] });
    expect(result.ips).toHaveLength(2);
    expect(await waitFor(() => responderPid() !== undefined)).toBe(true);
    expect(ask(lab, container, GW4, 'alpha')).toBeUndefined(); // the container has no route to the lab bridge
    for (const n of ['alpha', 'a1', 'a2', 'alpha.dns.podman', 'A1.DNS.PODMAN.']) {
      expect(ask(lab, lab.hostPath, GW4, n)).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.2'] });
    }
    expect(ask(lab, lab.hostPath, GW6, 'alpha', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: ['fd00:77::2'] });
    expect(ask(lab, lab.hostPath, GW4, '2.0.77.10.in-addr.arpa', 'PTR')).toMatchObject({ rcode: 'NOERROR', answers: ['alpha.dns.podman'] });
    // An address of the network without a container: NXDOMAIN, not forwarded.
    expect(ask(lab, lab.hostPath, GW4, '9.0.77.10.in-addr.arpa', 'PTR')).toMatchObject({ rcode: 'NXDOMAIN' });
    // An alias given for another network is not this network's.
    expect(ask(lab, lab.hostPath, GW4, 'nothere')).toMatchObject({ rcode: 'NXDOMAIN' });
    // A name known with no address of the type asked: NOERROR, no answers.
    expect(call('ADD', { cid: 'c1v4', name: 'only4', ips: [{ address: '10.77.0.3/24', gateway: GW4 }] }).status).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(ask(lab, lab.hostPath, GW4, 'only4', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: [] });
    expect(call('CHECK', { cid: 'c1', name: 'Alpha', ips: [{ address: '10.77.0.2/24', gateway: GW4 }, { address: 'fd00:77::2/64', gateway: GW6 }] }).status).toBe(0);
  });

  it('forwards other names to the first upstream that answers (a silent one times out, SERVFAIL moves on), never for an internal network', () => {
    const t0 = Date.now();
    expect(ask(lab, lab.hostPath, GW4, 'outside.example')).toMatchObject({ id: 4242, rcode: 'NOERROR', answers: ['198.51.100.7'] });
    expect(Date.now() - t0).toBeGreaterThan(1500); // 127.0.0.2 was waited for first
    expect(ask(lab, lab.hostPath, GW4, 'unknown.example')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(call('ADD', { network: 'intnet', cid: 'c9', name: 'hidden', ips: [{ address: '10.78.0.2/24', gateway: INTERNAL_GW }], defaultRoute: false }).status).toBe(0);
    expect(ask(lab, lab.hostPath, INTERNAL_GW, 'hidden')).toMatchObject({ rcode: 'NOERROR', answers: ['10.78.0.2'] });
    expect(ask(lab, lab.hostPath, INTERNAL_GW, 'outside.example')).toMatchObject({ rcode: 'REFUSED', answers: [] });
    // Each network sees its own names only.
    expect(ask(lab, lab.hostPath, INTERNAL_GW, 'alpha')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, lab.hostPath, GW4, 'hidden')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(call('DEL', { network: 'intnet', cid: 'c9' }, { withPrev: false, netns: '' }).status).toBe(0);
  });

  it('refuses what it cannot serve, naming the field, and leaves nothing behind', () => {
    const before = records();
    const noPrev = call('ADD', { cid: 'e1', name: 'x' }, { withPrev: false });
    expect(noPrev.status).not.toBe(0);
    expect(JSON.parse(noPrev.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/prevResult/) });
    const noGw = call('ADD', { cid: 'e2', name: 'x', ips: [{ address: '10.77.0.9/24' }] });
    expect(JSON.parse(noGw.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/gateway/) });
    const badAlias = call('ADD', { cid: 'e3', name: 'x', aliases: { dnsnet: ['bad name!'] } });
    expect(JSON.parse(badAlias.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/runtimeConfig\.aliases\["dnsnet"\] "bad name!"/) });
    const badName = call('ADD', { cid: 'e4', name: '-x' });
    expect(JSON.parse(badName.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/K8S_POD_NAME/) });
    const badDomain = call('ADD', { cid: 'e5', name: 'x', domainName: 'a..b' });
    expect(JSON.parse(badDomain.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/domainName/) });
    const badAliasesShape = lab.plugin(bin('dnsname'), { command: 'ADD', containerId: 'e6', netns: container, ifname: 'eth0', path: '/x', config: { ...conf({ cid: 'e6' }), runtimeConfig: { aliases: ['flat'] } }, env });
    expect(JSON.parse(badAliasesShape.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/runtimeConfig\.aliases/) });
    expect(records()).toEqual(before);
    const missing = call('CHECK', { cid: 'nope', name: 'x' });
    expect(JSON.parse(missing.stdout)).toMatchObject({ code: 100 });
  });

  it('holds up under 10,000 malformed UDP packets and abusive TCP connections, with bounded memory, and still answers', async () => {
    const pid = responderPid()!;
    const before = rss(pid);
    const FUZZ = `
const dgram = require('node:dgram');
const net = require('node:net');
const dnsPacket = require('dns-packet');
const [host, seedArg] = process.argv.slice(1);
let seed = Number(seedArg);
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
const bytes = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = rnd(256); return b; };
const valid = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'alpha' }] });
function packet(i) {
  switch (i % 8) {
    case 0: return bytes(rnd(600));                                  // noise of any length, 0 included
    case 1: return valid.subarray(0, rnd(valid.length));              // truncated query
    case 2: { const b = Buffer.from(valid); b.writeUInt16BE(65535, 4); return b; } // 65,535 questions claimed
    case 3: { const b = Buffer.from(valid); b[12] = 0xc0; b[13] = 12; return b; }  // compression pointer to itself
    case 4: { const b = Buffer.concat([valid.subarray(0, 12), bytes(rnd(300))]); return b; } // header, garbage body
    case 5: { const b = Buffer.from(valid); b[2] |= 0x80; return b; }  // a response, not a query
    case 6: { const b = Buffer.from(valid); b[2] = (b[2] & 0x87) | (rnd(15) + 1) << 3; return b; } // other opcodes
    default: { const b = Buffer.from(valid); b[13 + rnd(5)] = rnd(256); return b; } // one byte flipped in the name
  }
}
async function udp() {
  const s = dgram.createSocket('udp4');
  s.on('message', () => {});
  for (let i = 0; i < 10000; i++) {
    s.send(packet(i), 53, host);
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 200));
  s.close();
}
function tcpOnce(i) {
  return new Promise((resolve) => {
    const c = net.connect(53, host);
    c.on('error', () => resolve());
    c.on('close', () => resolve());
    c.on('data', () => {});
    c.setTimeout(3000, () => c.destroy());
    c.on('connect', () => {
      switch (i % 6) {
        case 0: c.write(Buffer.from([0xff, 0xff])); c.write(bytes(1000)); setTimeout(() => c.destroy(), 50); break; // 65,535 announced, 1,000 sent
        case 1: c.end(Buffer.from([0x00, 0x05, 1, 2, 3, 4, 5])); break;   // shorter than a header
        case 2: c.end(Buffer.from([0x00])); break;                        // half a length
        case 3: c.end(bytes(rnd(4000))); break;                           // noise
        case 4: { const len = Buffer.alloc(2); len.writeUInt16BE(valid.length); const one = Buffer.concat([len, valid]); c.end(Buffer.concat(Array(50).fill(one))); break; } // 50 pipelined
        default: { const len = Buffer.alloc(2); len.writeUInt16BE(65535); c.write(len); c.end(bytes(65535)); } // a full 64 KiB of junk
      }
    });
  });
}
async function tcp() {
  for (let i = 0; i < 600; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => tcpOnce(i + k)));
}
udp().then(tcp).then(() => { console.log('done'); process.exit(0); });
`;
    const r = lab.exec(process.execPath, ['-e', FUZZ, GW4, '12345'], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '', NODE_PATH: join(ROOT, 'node_modules') } });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('done');
    expect(alive(pid)).toBe(true);
    expect(responderPid()).toBe(pid);
    expect(ask(lab, lab.hostPath, GW4, 'alpha')).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.2'] });
    expect(ask(lab, lab.hostPath, GW4, 'alpha', 'A', 'tcp')).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.2'] });
    const after = rss(pid);
    // The stated bound: under 100 MiB in all, and at most 32 MiB more than before the fuzz.
    expect(after).toBeLessThan(100 * 1024 * 1024);
    expect(after - before).toBeLessThan(32 * 1024 * 1024);
    console.log(`responder RSS before ${(before / 1048576).toFixed(1)} MiB, after the fuzz ${(after / 1048576).toFixed(1)} MiB`);
  }, 120_000);

  it('`cnikit dns serve` by hand refuses to be a second responder', () => {
    const r = lab.exec(bin('cnikit'), ['dns', 'serve', '--dir', root()], { env: { ...process.env, ...env } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/a responder already serves/);
    expect(ask(lab, lab.hostPath, GW4, 'alpha')).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.2'] });
  });

  it('a responder killed with -9 comes back on the next ADD with every name', async () => {
    const pid = responderPid()!;
    process.kill(pid, 'SIGKILL');
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(ask(lab, lab.hostPath, GW4, 'alpha')).toBeUndefined();
    expect(call('ADD', { cid: 'c2', name: 'beta', ips: [{ address: '10.77.0.4/24', gateway: GW4 }] }).status).toBe(0);
    expect(await waitFor(() => responderPid() !== undefined && responderPid() !== pid)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(ask(lab, lab.hostPath, GW4, 'alpha')).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.2'] });
    expect(ask(lab, lab.hostPath, GW4, 'beta')).toMatchObject({ rcode: 'NOERROR', answers: ['10.77.0.4'] });
    expect(ask(lab, lab.hostPath, GW6, 'a1', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: ['fd00:77::2'] });
  });

  it('two concurrent ADDs start one responder', async () => {
    const pid = responderPid()!;
    process.kill(pid, 'SIGKILL');
    expect(await waitFor(() => !alive(pid))).toBe(true);
    const { spawn } = await import('node:child_process');
    const runs = ['p1', 'p2', 'p3'].map((cid, i) => new Promise<number>((resolve) => {
      const c = spawn('nsenter', [`--net=${lab.hostPath}`, '--', bin('dnsname')], {
        env: { PATH: process.env.PATH, ...env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: cid, CNI_NETNS: container, CNI_IFNAME: 'eth0', CNI_PATH: '/x', CNI_ARGS: `K8S_POD_NAME=par${i}` },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      c.stdin.end(JSON.stringify(conf({ cid, ips: [{ address: `10.77.0.${20 + i}/24`, gateway: GW4 }] })));
      c.on('exit', (code) => resolve(code ?? 1));
    }));
    expect(await Promise.all(runs)).toEqual([0, 0, 0]);
    await new Promise((r) => setTimeout(r, 500));
    // Processes with a socket on the gateway's port 53 (the upstreams listen elsewhere), and processes of the executable's serve mode.
    const serving = lab.exec('ss', ['-Hlnup', 'src', GW4]).stdout.match(/pid=(\d+)/g) ?? [];
    expect(new Set(serving).size).toBe(1);
    const serveModes = lab.exec('pgrep', ['-f', `dns serve --dir ${root()} `]).stdout.trim().split('\n');
    expect(serveModes).toEqual([String(responderPid())]);
    for (let i = 0; i < 3; i++) expect(ask(lab, lab.hostPath, GW4, `par${i}`)).toMatchObject({ answers: [`10.77.0.${20 + i}`] });
  });

  it('DEL works from the records without netns or prevResult and is idempotent; GC drops records of gone attachments; the responder exits after the last name', async () => {
    const pid = responderPid()!;
    expect(call('DEL', { cid: 'c1v4' }, { withPrev: false, netns: '' }).status).toBe(0);
    expect(call('DEL', { cid: 'c1v4' }, { withPrev: false, netns: '' }).status).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(ask(lab, lab.hostPath, GW4, 'only4')).toMatchObject({ rcode: 'NXDOMAIN' });
    const gc = lab.plugin(bin('dnsname'), {
      command: 'GC', path: '/x', env,
      config: { cniVersion: '1.1.0', name: 'dnsnet', type: 'dnsname', dataDir, 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] },
    });
    expect(gc.stderr).toBe('');
    expect(gc.status).toBe(0);
    expect(records()).toEqual(['dnsnet@c1@eth0.json']);
    await new Promise((r) => setTimeout(r, 200));
    expect(ask(lab, lab.hostPath, GW4, 'beta')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, lab.hostPath, GW4, 'alpha')).toMatchObject({ rcode: 'NOERROR' });
    expect(lab.plugin(bin('dnsname'), { command: 'STATUS', config: { cniVersion: '1.1.0', name: 'dnsnet', type: 'dnsname', dataDir }, env }).status).toBe(0);
    expect(call('DEL', { cid: 'c1' }, { withPrev: false, netns: '' }).status).toBe(0);
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(records()).toEqual([]);
    expect(responderPid()).toBeUndefined();
  });
});
