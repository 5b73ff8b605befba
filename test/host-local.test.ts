// host-local as a runtime (or bridge) execs it: real processes, a real data
// dir, the reference plugin's layout, concurrency and crashes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN, REFERENCE_BIN } from './dist.ts';
import { planNetwork } from '../ipam/pools.ts';

let lab: Lab;
let netns: string;
beforeAll(() => {
  lab = Lab.create();
  netns = lab.container();
});
afterAll(() => lab.destroy());

let n = 0;
function network(ipam: object = {}, extra: object = {}) {
  const name = `hl${n++}`;
  const dataDir = join(lab.dir, `data${n}`);
  const conf = {
    cniVersion: '1.1.0',
    name,
    type: 'host-local',
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.80.0.0/24' }], [{ subnet: 'fd00:80::/64' }]], dataDir, ...ipam },
    ...extra,
  };
  const dir = join(dataDir, name);
  const leases = () => (existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/.test(f) && /[.:]/.test(f)).sort() : []);
  return { name, conf, dataDir, dir, leases };
}

function run(command: string, conf: object, id = 'c1', extra: { args?: string; binary?: string; ifname?: string } = {}) {
  const r = lab.plugin(extra.binary ?? bin('host-local'), { command, containerId: id, netns, ifname: extra.ifname ?? 'eth0', path: BIN, args: extra.args, config: conf });
  return { ...r, out: r.stdout ? (JSON.parse(r.stdout) as { code?: number; msg?: string; ips?: { address: string; gateway?: string }[] }) : undefined };
}

describe('host-local', () => {
  it('gives one address per range set (IPv4 and IPv6) and leases them in the reference layout', () => {
    const net = network({ routes: [{ dst: '0.0.0.0/0' }] });
    const r = run('ADD', net.conf);
    expect(r.status).toBe(0);
    expect(r.out!.ips).toEqual([
      { address: '10.80.0.2/24', gateway: '10.80.0.1' },
      { address: 'fd00:80::2/64', gateway: 'fd00:80::1' },
    ]);
    expect(r.stdout).toContain('"routes":[{"dst":"0.0.0.0/0"}]');
    expect(net.leases()).toEqual(['10.80.0.2', 'fd00:80::2']);
    expect(readFileSync(join(net.dir, '10.80.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(net.dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.80.0.2');
    expect(statSync(join(net.dir, '10.80.0.2')).mode & 0o777).toBe(0o600);
    expect(statSync(net.dir).mode & 0o777).toBe(0o700);
    expect(run('CHECK', net.conf).status).toBe(0);
  });

  it('honours a requested address from runtimeConfig.ips and from CNI_ARGS IP=', () => {
    const net = network();
    expect(run('ADD', { ...net.conf, runtimeConfig: { ips: ['10.80.0.50/24', 'fd00:80::50'] } }, 'a').out!.ips!.map((i) => i.address)).toEqual(['10.80.0.50/24', 'fd00:80::50/64']);
    // Round robin goes on after the last address handed out, requested or not.
    expect(run('ADD', net.conf, 'b', { args: 'IgnoreUnknown=1;IP=10.80.0.60' }).out!.ips!.map((i) => i.address)).toEqual(['10.80.0.60/24', 'fd00:80::51/64']);
  });

  it.each([
    ['10.81.0.5', 7, 'outside every range'],
    ['10.80.0.1', 7, 'is the gateway'],
    ['10.80.0.0', 7, 'is the network address'],
    ['10.80.0.255', 7, 'is the broadcast address'],
    ['10.80.0.70', 103, 'already leased to container holder'],
  ])('refuses requested address %s with code %i, naming it, and leases nothing', (ip, code, why) => {
    const net = network();
    expect(run('ADD', { ...net.conf, runtimeConfig: { ips: ['10.80.0.70'] } }, 'holder').status).toBe(0);
    const before = net.leases();
    const r = run('ADD', { ...net.conf, runtimeConfig: { ips: [ip] } }, 'asker');
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code, msg: expect.stringContaining(ip) });
    expect(r.out!.msg).toContain(why);
    expect(net.leases()).toEqual(before);
  });

  it.each([
    [{ dst: '10.0.0.0/33' }, 'ipam.routes[0].dst'],
    [{ dst: '10.0.0.0' }, 'ipam.routes[0].dst'],
    [{ dst: 'garbage' }, 'ipam.routes[0].dst'],
    [{ dst: '10.0.0.0/8', gw: 'garbage' }, 'ipam.routes[0].gw'],
    [{ dst: '10.0.0.0/8', gw: '10.80.0.300' }, 'ipam.routes[0].gw'],
    [{ dst: '10.0.0.0/8', gw: 'fd00:80::1' }, 'ipam.routes[0].gw'],
  ])('refuses route %j with code 7 naming %s, and leases nothing', (route, field) => {
    const net = network({ routes: [route] });
    const r = run('ADD', net.conf, 'bad-route');
    expect(r.status).toBe(1);
    expect(r.out).toMatchObject({ code: 7, msg: expect.stringContaining(field) });
    expect(net.leases()).toEqual([]);
    // DEL does not need the routes: it still succeeds.
    expect(run('DEL', net.conf, 'bad-route').status).toBe(0);
  });

  it('refuses names that could escape the data dir', () => {
    const net = network();
    const evil = run('ADD', { ...net.conf, name: '../escape' });
    expect(evil.out!.code).toBe(7);
    expect(existsSync(join(net.dataDir, '..', 'escape'))).toBe(false);
    const badId = run('ADD', net.conf, '../x');
    expect(badId.out!.code).toBe(4);
    expect(net.leases()).toEqual([]);
  });

  it('an exhausted range set fails with code 101 naming the range, and leaves nothing', () => {
    const net = network({ ranges: [[{ subnet: '10.82.0.0/24', rangeEnd: '10.82.0.3' }]] });
    expect(run('ADD', net.conf, 'a').status).toBe(0);
    expect(run('ADD', net.conf, 'b').status).toBe(0);
    const r = run('ADD', net.conf, 'c');
    expect(r.out).toMatchObject({ code: 101, msg: expect.stringContaining('10.82.0.1-10.82.0.3') });
    expect(net.leases()).toEqual(['10.82.0.2', '10.82.0.3']);
  });

  it('DEL releases by container ID and ifname, twice, and with no store at all', () => {
    const net = network();
    run('ADD', net.conf, 'a');
    run('ADD', net.conf, 'a', { ifname: 'eth1' });
    expect(net.leases()).toHaveLength(4);
    expect(run('DEL', net.conf, 'a').status).toBe(0);
    expect(net.leases()).toEqual(['10.80.0.3', 'fd00:80::3']);
    expect(run('DEL', net.conf, 'a').status).toBe(0);
    expect(run('CHECK', net.conf, 'a').out).toMatchObject({ code: 100 });
    expect(run('DEL', network().conf, 'a').status).toBe(0);
  });

  it('GC releases exactly the leases of attachments not in the valid list', () => {
    const net = network();
    for (const id of ['a', 'b', 'c']) run('ADD', net.conf, id);
    const r = run('GC', { ...net.conf, 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth0' }] }, 'gc');
    expect(r.status).toBe(0);
    expect(net.leases()).toEqual(['10.80.0.3', 'fd00:80::3']);
    expect(readFileSync(join(net.dir, '10.80.0.3'), 'utf8')).toBe('b\r\neth0');
  });

  it('STATUS fails with 50 when the store cannot be written', () => {
    const net = network();
    expect(run('STATUS', net.conf).status).toBe(0);
    const file = join(lab.dir, 'not-a-dir');
    writeFileSync(file, '');
    const r = run('STATUS', { ...net.conf, ipam: { ...net.conf.ipam, dataDir: file } });
    expect(r.out).toMatchObject({ code: 50, msg: expect.stringContaining('not writable') });
  });

  it('leases from the ranges network create plans, never an aux address', () => {
    const [plan] = planNetwork({ subnets: ['10.88.0.0/29'], auxAddresses: { router: '10.88.0.3' } }, [], []);
    const net = network({ ranges: [plan!.ranges] });
    const got = ['a', 'b', 'c', 'd'].map((id) => run('ADD', net.conf, id).out!.ips![0]!.address);
    expect(got).toEqual(['10.88.0.2/29', '10.88.0.4/29', '10.88.0.5/29', '10.88.0.6/29']);
    expect(run('ADD', net.conf, 'e').out!.code).toBe(101);
  });

  it('shares a data dir with the reference host-local', () => {
    const net = network({ ranges: [[{ subnet: '10.83.0.0/24' }]] });
    const ref = { ...net.conf, cniVersion: '1.0.0' };
    const r1 = run('ADD', ref, 'ref1', { binary: join(REFERENCE_BIN, 'host-local') });
    expect(r1.status).toBe(0);
    expect(run('ADD', net.conf, 'ours1').out!.ips![0]!.address).toBe('10.83.0.3/24');
    expect(run('ADD', ref, 'ref2', { binary: join(REFERENCE_BIN, 'host-local') }).out!.ips![0]!.address).toBe('10.83.0.4/24');
    expect(run('DEL', net.conf, 'ref1').status).toBe(0);
    expect(net.leases()).toEqual(['10.83.0.3', '10.83.0.4']);
    // ref2's lease came after cnikit indexed the directory: DEL still finds it.
    expect(run('DEL', net.conf, 'ref2').status).toBe(0);
    expect(net.leases()).toEqual(['10.83.0.3']);
    // The reference reads past cnikit's index and releases a cnikit lease; the
    // index entry left behind is not trusted: the container can ADD again.
    expect(run('DEL', ref, 'ours1', { binary: join(REFERENCE_BIN, 'host-local') }).status).toBe(0);
    expect(net.leases()).toEqual([]);
    expect(run('ADD', net.conf, 'ours1').status).toBe(0);
    expect(run('ADD', net.conf, 'ours1').out!.msg).toMatch(/already leased to ours1/);
  });

  it('indexes an owner\'s leases by hard links (no file more per lease) and rewrites the round-robin hint shorter', () => {
    const net = network({ ranges: [[{ subnet: '10.85.0.0/16' }]] });
    expect(run('ADD', { ...net.conf, runtimeConfig: { ips: ['10.85.100.200'] } }, 'big').status).toBe(0);
    expect(run('ADD', net.conf, 'c1').out!.ips![0]!.address).toBe('10.85.100.201/16');
    const lease = statSync(join(net.dir, '10.85.100.201'));
    // The index entry is the lease itself under a second name: one inode, two links.
    expect(lease.nlink).toBe(2);
    const buckets = readdirSync(join(net.dir, '.cnikit-owners')).filter((b) => b.length === 2);
    const entries = buckets.flatMap((b) => readdirSync(join(net.dir, '.cnikit-owners', b)).map((e) => join(net.dir, '.cnikit-owners', b, e)));
    expect(entries.map((e) => statSync(e).ino)).toContain(lease.ino);
    expect(run('DEL', net.conf, 'c1').status).toBe(0);
    expect(existsSync(join(net.dir, '10.85.100.201'))).toBe(false);
    // Its entry went with it (and its bucket, once empty); the other owner's stays.
    const left = readdirSync(join(net.dir, '.cnikit-owners')).filter((b) => b.length === 2).flatMap((b) => readdirSync(join(net.dir, '.cnikit-owners', b)));
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/@10\.85\.100\.200$/);
    // The hint is rewritten in place, no longer than the address it names.
    writeFileSync(join(net.dir, 'last_reserved_ip.0'), '10.85.255.254');
    expect(run('ADD', net.conf, 'c2').out!.ips![0]!.address).toBe('10.85.0.2/16');
    expect(readFileSync(join(net.dir, 'last_reserved_ip.0'), 'utf8')).toBe('10.85.0.2');
  });

  it('re-indexes a directory indexed by an earlier cnikit (a file of addresses per owner)', () => {
    const net = network({ ranges: [[{ subnet: '10.86.0.0/24' }]] });
    mkdirSync(join(net.dir, '.cnikit-owners'), { recursive: true, mode: 0o700 });
    writeFileSync(join(net.dir, '10.86.0.7'), 'old2\r\neth0', { mode: 0o600 });
    writeFileSync(join(net.dir, '.cnikit-owners', 'a'.repeat(32)), '10.86.0.7', { mode: 0o600 });
    writeFileSync(join(net.dir, '.cnikit-owners', '.complete'), '', { mode: 0o600 });
    expect(run('ADD', net.conf, 'old2').out!.msg).toMatch(/10\.86\.0\.7 is already leased to old2/);
    expect(readdirSync(join(net.dir, '.cnikit-owners')).filter((n) => n.length === 32 || n === '.complete')).toEqual([]);
    expect(run('DEL', net.conf, 'old2').status).toBe(0);
    expect(net.leases()).toEqual([]);
  });

  it('an owner-index bucket a killed DEL left empty goes with the DEL sent again, and GC sweeps any other', () => {
    const net = network({ ranges: [[{ subnet: '10.87.0.0/24' }]] });
    const index = join(net.dir, '.cnikit-owners');
    const buckets = () => readdirSync(index).filter((b) => b.length === 2).sort();
    expect(run('ADD', net.conf, 'killed').status).toBe(0);
    const [bucket] = buckets();
    // What a DEL SIGKILLed between removing the entry and removing its bucket leaves.
    for (const e of readdirSync(join(index, bucket!))) rmSync(join(index, bucket!, e));
    rmSync(join(net.dir, '10.87.0.2'));
    expect(buckets()).toEqual([bucket]);
    expect(run('DEL', net.conf, 'killed').status).toBe(0);
    expect(buckets()).toEqual([]);
    // An empty bucket no DEL will come for (its owner's DEL was never sent again).
    mkdirSync(join(index, bucket === 'ab' ? 'cd' : 'ab'), { mode: 0o700 });
    expect(run('ADD', net.conf, 'alive').status).toBe(0);
    const gc = { ...net.conf, 'cni.dev/valid-attachments': [{ containerID: 'alive', ifname: 'eth0' }] };
    expect(run('GC', gc).status).toBe(0);
    expect(buckets()).toHaveLength(1);
    expect(readdirSync(join(index, buckets()[0]!))).toEqual([expect.stringMatching(/@10\.87\.0\.\d+$/)]);
  });

  it('a directory written before the owner index existed: a second ADD is still refused, DEL still releases', () => {
    const net = network({ ranges: [[{ subnet: '10.84.0.0/24' }]] });
    mkdirSync(net.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(net.dir, '10.84.0.9'), 'old1\r\neth0', { mode: 0o600 });
    expect(run('ADD', net.conf, 'old1').out!.msg).toMatch(/10\.84\.0\.9 is already leased to old1/);
    expect(run('ADD', net.conf, 'new1').out!.ips![0]!.address).toBe('10.84.0.2/24');
    expect(run('DEL', net.conf, 'old1').status).toBe(0);
    expect(net.leases()).toEqual(['10.84.0.2']);
  });
});

describe('host-local under concurrency and crashes', () => {
  const spawnAdd = (conf: object, id: string) => {
    const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: BIN };
    const p = spawn(bin('host-local'), [], { env });
    p.stdin.end(JSON.stringify(conf));
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string }>((resolve) => p.on('close', (status, signal) => resolve({ status, signal, stdout })));
    return { p, done };
  };

  it('50 processes at once get 50 distinct addresses and a consistent store', async () => {
    const net = network({ ranges: [[{ subnet: '10.84.0.0/24' }]] });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => spawnAdd(net.conf, `par${i}`).done));
    for (const r of results) expect(r.status).toBe(0);
    const addrs = results.map((r) => (JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0]!.address);
    expect(new Set(addrs).size).toBe(50);
    expect(net.leases()).toHaveLength(50);
    const owners = net.leases().map((f) => readFileSync(join(net.dir, f), 'utf8'));
    expect(new Set(owners).size).toBe(50);
    for (const o of owners) expect(o).toMatch(/^par\d+\r\neth0$/);
    expect(readdirSync(net.dir).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
  });

  it('owners that share index buckets, added and deleted at once: every lease keeps its entry, no bucket is left empty', async () => {
    const net = network({ ranges: [[{ subnet: '10.83.0.0/24' }]] });
    const spawnCmd = (command: string, id: string) => {
      const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: BIN };
      const p = spawn(bin('host-local'), [], { env });
      p.stdin.end(JSON.stringify(net.conf));
      return new Promise<number | null>((resolve) => p.on('close', (status) => resolve(status)));
    };
    const index = join(net.dir, '.cnikit-owners');
    const state = () => {
      const buckets = readdirSync(index).filter((b) => b.length === 2);
      const entries = buckets.flatMap((b) => readdirSync(join(index, b)).map((e) => join(index, b, e)));
      return { empty: buckets.filter((b) => readdirSync(join(index, b)).length === 0), entries };
    };
    // 40 owners over 256 buckets: some buckets are shared, so DELs empty them while ADDs fill them.
    const first = Array.from({ length: 40 }, (_, i) => `share${i}`);
    expect(await Promise.all(first.map((id) => spawnCmd('ADD', id)))).toEqual(first.map(() => 0));
    const gone = first.filter((_, i) => i % 2 === 0);
    const fresh = Array.from({ length: 20 }, (_, i) => `fresh${i}`);
    const mixed = await Promise.all([...gone.map((id) => spawnCmd('DEL', id)), ...fresh.map((id) => spawnCmd('ADD', id))]);
    expect(mixed.every((s) => s === 0)).toBe(true);
    expect(net.leases()).toHaveLength(40);
    const { empty, entries } = state();
    expect(empty).toEqual([]);
    // Each lease is linked from exactly one entry: lease + entry = two links.
    for (const f of net.leases()) expect(statSync(join(net.dir, f)).nlink).toBe(2);
    expect(entries).toHaveLength(40);
    const rest = [...first.filter((_, i) => i % 2 === 1), ...fresh];
    expect(await Promise.all(rest.map((id) => spawnCmd('DEL', id)))).toEqual(rest.map(() => 0));
    expect(net.leases()).toEqual([]);
    expect(state()).toEqual({ empty: [], entries: [] });
  });

  it('a lock holder killed with SIGKILL does not block the next allocation', async () => {
    const net = network({ ranges: [[{ subnet: '10.85.0.0/24' }]] });
    mkdirSync(net.dir, { recursive: true, mode: 0o700 });
    // Another process holds the store's lock (the directory, as the reference locks it).
    const holder = spawn('flock', ['--no-fork', net.dir, 'sleep', '60']);
    await new Promise((r) => setTimeout(r, 300));
    const add = spawnAdd(net.conf, 'waiter');
    await new Promise((r) => setTimeout(r, 500));
    expect(net.leases()).toEqual([]);
    holder.kill('SIGKILL');
    const r = await add.done;
    expect(r.status).toBe(0);
    expect(net.leases()).toEqual(['10.85.0.2']);
  });

  it('plugins killed mid-allocation leave no half-written lease', async () => {
    const net = network({ ranges: [[{ subnet: '10.86.0.0/24' }]] });
    const runs = Array.from({ length: 30 }, (_, i) => spawnAdd(net.conf, `k${i}`));
    // Kill every third one at staggered moments while the others allocate.
    runs.forEach((r, i) => {
      if (i % 3 === 0) setTimeout(() => r.p.kill('SIGKILL'), 5 + i * 2);
    });
    await Promise.all(runs.map((r) => r.done));
    expect(run('ADD', net.conf, 'after').status).toBe(0);
    for (const f of net.leases()) expect(readFileSync(join(net.dir, f), 'utf8')).toMatch(/^(k\d+|after)\r\neth0$/);
    expect(readdirSync(net.dir).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
    expect(readdirSync(join(net.dir, '.cnikit-tmp'))).toEqual([]);
    const ids = net.leases().map((f) => readFileSync(join(net.dir, f), 'utf8'));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('host-local as bridge delegates to it', () => {
  it('bridge runs cnikit host-local in-process with the same on-disk effect', () => {
    const net = network({ ranges: [[{ subnet: '10.87.0.0/24' }]] });
    const ctr = lab.container();
    const conf = { ...net.conf, type: 'bridge', bridge: 'hlbr0', isGateway: true, dataDir: join(lab.dir, 'bstate'), ipam: { ...net.conf.ipam, type: 'host-local' } };
    const r = lab.plugin(bin('bridge'), { command: 'ADD', containerId: 'viaBridge', netns: ctr, ifname: 'eth0', path: BIN, config: conf });
    expect(r.status).toBe(0);
    expect(readFileSync(join(net.dir, '10.87.0.2'), 'utf8')).toBe('viaBridge\r\neth0');
    expect(lab.plugin(bin('bridge'), { command: 'DEL', containerId: 'viaBridge', netns: ctr, ifname: 'eth0', path: BIN, config: conf }).status).toBe(0);
    expect(net.leases()).toEqual([]);
  });

  it('bridge execs the host-local that CNI_PATH finds when it is not cnikit (here the reference)', () => {
    const net = network({ ranges: [[{ subnet: '10.89.0.0/24' }]] });
    const ctr = lab.container();
    const conf = { ...net.conf, cniVersion: '1.0.0', type: 'bridge', bridge: 'hlbr1', dataDir: join(lab.dir, 'bstate') };
    const call = (command: string) => lab.plugin(bin('bridge'), { command, containerId: 'viaRef', netns: ctr, ifname: 'eth0', path: REFERENCE_BIN, config: conf });
    expect(call('ADD').status).toBe(0);
    expect(net.leases()).toEqual(['10.89.0.2']);
    // The reference makes its network dir 0755; cnikit's is 0700.
    expect(statSync(net.dir).mode & 0o777).toBe(0o755);
    expect(call('DEL').status).toBe(0);
    expect(net.leases()).toEqual([]);
  });
});
