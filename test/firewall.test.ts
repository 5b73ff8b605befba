// The firewall meta plugin chained after bridge and portmap, as Podman
// chains it, on a lab host whose FORWARD policy drops (`iptables -P FORWARD
// DROP`, inside the lab host namespace only), with real traffic: outbound,
// published ports from an outside namespace, ingress policies between
// bridges; for both backends.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { bin, BIN, DIST } from './dist.ts';
import { startPeerServer, tcpAsk, addOutside, UPLINK } from './net.ts';

let lab: Lab;
let outside: string;
const servers: ChildProcess[] = [];
const HOST4 = UPLINK.host4;

beforeAll(async () => {
  lab = Lab.create();
  outside = addOutside(lab);
  // The outside host can route to the container subnets directly (as a host on
  // the same LAN could): what an ingress policy has to stop.
  lab.ip(['route', 'add', '10.71.0.0/16', 'via', HOST4], outside);
  expect(lab.exec('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
  expect(lab.exec('ip6tables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
  await startPeerServer(outside, 'tcp', UPLINK.outside4, 9000, servers);
  await startPeerServer(outside, 'tcp', UPLINK.outside6, 9000, servers);
}, 60_000);

afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  lab?.destroy();
});

let nets = 0;
let ids = 0;
type Backend = 'iptables' | 'nftables';

function network(backend: Backend, fw: Record<string, unknown> = {}) {
  const n = nets++;
  const name = `fwnet${n}`;
  const stateDir = join(lab.dir, 'state');
  const base = { cniVersion: '1.0.0', name };
  const bridgeConf = {
    ...base, type: 'bridge', bridge: `fwbr${n}`, isGateway: true, ipMasq: true, hairpinMode: true, ipMasqBackend: backend, dataDir: stateDir,
    ipam: {
      type: 'host-local', ranges: [[{ subnet: `10.71.${n}.0/24` }], [{ subnet: `fd00:71:${n}::/64` }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }], dataDir: join(lab.dir, 'ipam'),
    },
  };
  const portmapConf = (portMappings: object[], prevResult?: object) => ({
    ...base, type: 'portmap', backend, dataDir: stateDir, runtimeConfig: { portMappings }, ...(prevResult ? { prevResult } : {}),
  });
  const firewallConf = (prevResult?: object) => ({ ...base, type: 'firewall', backend, dataDir: stateDir, ...fw, ...(prevResult ? { prevResult } : {}) });
  const run = (plugin: string, command: string, id: string, netns: string | undefined, config: object) =>
    lab.plugin(bin(plugin), { command, containerId: id, netns, ifname: 'eth0', path: BIN, config });

  const container = async (opts: { firewall?: boolean; ports?: object[] } = {}) => {
    const netns = lab.container();
    const id = `fw${ids++}`;
    const b = run('bridge', 'ADD', id, netns, bridgeConf);
    expect(b.stdout).not.toContain('"code"');
    const prev = JSON.parse(b.stdout) as { ips: { address: string }[]; interfaces: object[] };
    const ports = opts.ports ?? [];
    let last: object = prev;
    if (ports.length > 0) {
      const p = run('portmap', 'ADD', id, netns, portmapConf(ports, last));
      expect(p.stdout).not.toContain('"code"');
      last = JSON.parse(p.stdout) as object;
    }
    let fwAdd: ReturnType<typeof run> | undefined;
    if (opts.firewall !== false) {
      fwAdd = run('firewall', 'ADD', id, netns, firewallConf(last));
      expect(fwAdd.stderr).toBe('');
      expect(fwAdd.status).toBe(0);
    }
    const ip = prev.ips.find((i) => i.address.includes('.'))!.address.split('/')[0]!;
    const ip6 = prev.ips.find((i) => i.address.includes(':'))!.address.split('/')[0]!;
    await startPeerServer(netns, 'tcp', '::', 80, servers);
    return { netns, id, prev, last, ip, ip6, ports, fwAdd, firewall: opts.firewall !== false };
  };
  type C = Awaited<ReturnType<typeof container>>;
  const remove = (c: C, netns: string | undefined = c.netns, withPrev = true) => {
    if (c.firewall) {
      const d = run('firewall', 'DEL', c.id, netns, firewallConf(withPrev ? c.last : undefined));
      expect(d.stdout).toBe('');
      expect(d.status).toBe(0);
    }
    if (c.ports.length > 0) expect(run('portmap', 'DEL', c.id, netns, portmapConf(c.ports, withPrev ? c.prev : undefined)).status).toBe(0);
    expect(run('bridge', 'DEL', c.id, netns, bridgeConf).status).toBe(0);
  };
  const records = () => {
    const dir = join(lab.hostState(stateDir), 'firewall', name);
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  return { name, bridge: bridgeConf.bridge, container, remove, run, firewallConf, portmapConf, records };
}

function rulesFor6(ip: string): string[] {
  const saved = lab.exec('ip6tables-save', ['-t', 'filter']).stdout;
  return saved.split('\n').filter((l) => l.includes(`${ip}/128`));
}

/** The comment the firewall plugin's rules of a container carry. */
function tagOf(c: { ip: string }): string {
  const line = lab.exec('iptables', ['-S', 'CNI-FORWARD']).stdout.split('\n').find((l) => l.includes(`-s ${c.ip}/32`) && l.includes('cnikit:fw:'));
  return /--comment "?([^" ]+)"?/.exec(line ?? '')?.[1] ?? 'none';
}

/** Every filter rule or ingress set element of the lab host that names the address (masquerade is bridge's). */
function rulesFor(ip: string): string[] {
  const saved = lab.exec('iptables-save', ['-t', 'filter']).stdout;
  const nft = lab.exec('nft', ['list', 'table', 'inet', 'cnikit-fw']).stdout;
  const re = new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}([^0-9]|$)`);
  return [...saved.split('\n'), ...nft.split('\n')].filter((l) => re.test(l));
}

describe.each(['iptables', 'nftables'] as const)('firewall (%s backend) on a host with FORWARD policy DROP', (backend) => {
  it('without it the drop holds; with it outbound flows, the published port answers from outside, and DEL leaves nothing', async () => {
    const net = network(backend);
    // Bridge + portmap alone, as the reference chain without firewall: nothing is forwarded.
    const bare = await net.container({ firewall: false, ports: [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }] });
    expect(tcpAsk(lab, bare.netns, UPLINK.outside4, 9000)).toBeUndefined();

    const c = await net.container({ ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    // A chained plugin that changes nothing returns the prevResult.
    expect(JSON.parse(c.fwAdd!.stdout)).toEqual(c.last);
    expect(tcpAsk(lab, c.netns, UPLINK.outside4, 9000)).toBe(HOST4);
    expect(tcpAsk(lab, c.netns, UPLINK.outside6, 9000)).toBe(UPLINK.host6);
    // The published port of the container answers: portmap accepts exactly it in FORWARD.
    expect(tcpAsk(lab, outside, HOST4, 8080)).toBe(UPLINK.outside4);
    expect(tcpAsk(lab, outside, UPLINK.host6, 8080)).toBe(UPLINK.outside6);
    // The bare container's published port also answers (portmap alone), its outbound does not.
    expect(tcpAsk(lab, outside, HOST4, 8081)).toBe(UPLINK.outside4);
    // Nothing else of the containers is open from outside: only the published port.
    expect(tcpAsk(lab, outside, bare.ip, 80)).toBeUndefined();
    expect(tcpAsk(lab, bare.netns, UPLINK.outside6, 9000)).toBeUndefined();
    expect(net.records()).toEqual([`${c.id}@eth0.json`]);
    expect(net.run('firewall', 'CHECK', c.id, c.netns, net.firewallConf(c.last)).status).toBe(0);
    expect(net.run('portmap', 'CHECK', c.id, c.netns, net.portmapConf(c.ports, c.prev)).status).toBe(0);
    if (backend === 'iptables') {
      // A rule removed behind the plugin's back: CHECK says so (code 100), a repeated ADD repairs it.
      expect(lab.exec('iptables', ['-D', 'CNI-FORWARD', '-s', `${c.ip}/32`, '-m', 'comment', '--comment', tagOf(c), '-j', 'ACCEPT']).status).toBe(0);
      expect(JSON.parse(net.run('firewall', 'CHECK', c.id, c.netns, net.firewallConf(c.last)).stdout)).toMatchObject({ code: 100 });
      expect(net.run('firewall', 'ADD', c.id, c.netns, net.firewallConf(c.last)).status).toBe(0);
      expect(net.run('firewall', 'CHECK', c.id, c.netns, net.firewallConf(c.last)).status).toBe(0);
      expect(lab.exec('iptables', ['-S', 'CNI-FORWARD']).stdout.split('\n').filter((l) => l.includes(`-s ${c.ip}/32`) && l.includes('cnikit:fw:'))).toHaveLength(1);
      // The same for portmap's accept of the published port.
      const pub = lab.exec('iptables', ['-S', 'CNI-FORWARD']).stdout.split('\n').find((l) => l.includes(`-d ${c.ip}/32`) && l.includes('cnikit:pub:'))!;
      expect(lab.exec('iptables', ['-D', ...pub.replaceAll('"', '').split(' ').slice(1)]).status).toBe(0);
      expect(JSON.parse(net.run('portmap', 'CHECK', c.id, c.netns, net.portmapConf(c.ports, c.prev)).stdout)).toMatchObject({ code: 100 });
    }

    expect(rulesFor6(c.ip6).length).toBeGreaterThan(0);
    net.remove(c);
    net.remove(bare);
    expect(rulesFor(c.ip)).toEqual([]);
    expect(rulesFor6(c.ip6)).toEqual([]);
    expect(rulesFor(bare.ip)).toEqual([]);
    expect(net.records()).toEqual([]);
    expect(tcpAsk(lab, outside, HOST4, 8080)).toBeUndefined();
  });

  it('DEL without the netns and prevResult removes everything; a second DEL succeeds', async () => {
    const net = network(backend, { ingressPolicy: 'same-bridge' });
    const c = await net.container();
    expect(rulesFor(c.ip).length).toBeGreaterThan(0);
    lab.deleteNetns(c.netns);
    net.remove(c, undefined, false);
    expect(rulesFor(c.ip)).toEqual([]);
    expect(net.records()).toEqual([]);
    const again = net.run('firewall', 'DEL', c.id, undefined, net.firewallConf());
    expect(again.status).toBe(0);
  });

  it('portmap DEL without its record (data dir lost) still removes the FORWARD accepts the config and prevResult name', async () => {
    const net = network(backend);
    const port = backend === 'iptables' ? 8092 : 8093;
    const c = await net.container({ firewall: false, ports: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] });
    expect(tcpAsk(lab, outside, HOST4, port)).toBe(UPLINK.outside4);
    expect(rulesFor(c.ip).length).toBeGreaterThan(0);
    rmSync(join(lab.hostState(join(lab.dir, 'state')), 'portmap', net.name, `${c.id}@eth0.json`));
    net.remove(c);
    expect(rulesFor(c.ip)).toEqual([]);
  });

  it('ingressPolicy same-bridge: a container on another bridge cannot connect in, one on the same bridge can; replies and published ports pass', async () => {
    const guarded = network(backend, { ingressPolicy: 'same-bridge' });
    const other = network(backend);
    const port = backend === 'iptables' ? 8090 : 8091;
    const a = await guarded.container({ ports: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] });
    const b = await guarded.container();
    const x = await other.container();
    expect(tcpAsk(lab, b.netns, a.ip, 80)).toBe(b.ip);
    expect(tcpAsk(lab, x.netns, a.ip, 80)).toBeUndefined();
    expect(tcpAsk(lab, outside, a.ip, 80)).toBeUndefined();
    // Out of the guarded container, and the replies back in.
    // (masqueraded by bridge's ipMasq: x sees its own gateway)
    expect(tcpAsk(lab, a.netns, x.ip, 80)).toMatch(/^10\.71\.\d+\.1$/);
    expect(tcpAsk(lab, a.netns, UPLINK.outside4, 9000)).toBe(HOST4);
    expect(tcpAsk(lab, outside, HOST4, port)).toBe(UPLINK.outside4);
    for (const c of [a, b]) guarded.remove(c);
    other.remove(x);
    for (const c of [a, b, x]) expect(rulesFor(c.ip)).toEqual([]);
  });

  it('ingressPolicy isolated: nothing from another bridge or outside connects in, but replies do', async () => {
    const iso = network(backend, { ingressPolicy: 'isolated' });
    const other = network(backend);
    const a = await iso.container();
    const x = await other.container();
    expect(tcpAsk(lab, x.netns, a.ip, 80)).toBeUndefined();
    expect(tcpAsk(lab, outside, a.ip, 80)).toBeUndefined();
    expect(tcpAsk(lab, a.netns, x.ip, 80)).toMatch(/^10\.71\.\d+\.1$/);
    expect(tcpAsk(lab, a.netns, UPLINK.outside4, 9000)).toBe(HOST4);
    iso.remove(a);
    other.remove(x);
    expect(tcpAsk(lab, x.netns, a.ip, 80)).toBeUndefined();
    for (const c of [a, x]) expect(rulesFor(c.ip)).toEqual([]);
  });
});

describe('firewall options and failures', () => {
  it('evaluates the admin chain first and never flushes it', async () => {
    const net = network('iptables', { iptablesAdminChainName: 'MY-ADMIN' });
    const c = await net.container();
    expect(tcpAsk(lab, outside, c.ip, 80)).toBeUndefined();
    // The admin opens the container's port 80 from outside; a later ADD and DEL keep the rule.
    expect(lab.exec('iptables', ['-A', 'MY-ADMIN', '-d', `${c.ip}/32`, '-p', 'tcp', '--dport', '80', '-j', 'ACCEPT']).status).toBe(0);
    expect(tcpAsk(lab, outside, c.ip, 80)).toBe(UPLINK.outside4);
    const d = await net.container();
    net.remove(d);
    net.remove(c);
    expect(lab.exec('iptables', ['-S', 'MY-ADMIN']).stdout).toContain(`-d ${c.ip}/32 -p tcp -m tcp --dport 80 -j ACCEPT`);
    expect(lab.exec('iptables', ['-F', 'MY-ADMIN']).status).toBe(0);
  });

  it('refuses what it cannot do with the spec codes, leaving nothing', async () => {
    const net = network('iptables');
    const c = await net.container({ firewall: false });
    const code = (r: { stdout: string }) => (JSON.parse(r.stdout) as { code: number; msg: string });
    const firewalld = net.run('firewall', 'ADD', c.id, c.netns, { ...net.firewallConf(c.last), backend: 'firewalld' });
    expect(code(firewalld)).toMatchObject({ code: 2, msg: expect.stringContaining('firewalld') });
    const admin = net.run('firewall', 'ADD', c.id, c.netns, { ...net.firewallConf(c.last), iptablesAdminChainName: 'FORWARD' });
    expect(code(admin)).toMatchObject({ code: 7, msg: expect.stringContaining('iptablesAdminChainName') });
    const policy = net.run('firewall', 'ADD', c.id, c.netns, { ...net.firewallConf(c.last), ingressPolicy: 'closed' });
    expect(code(policy)).toMatchObject({ code: 7, msg: expect.stringContaining('ingressPolicy') });
    const noPrev = net.run('firewall', 'ADD', c.id, c.netns, net.firewallConf());
    expect(code(noPrev)).toMatchObject({ code: 7, msg: expect.stringContaining('prevResult') });
    const noBridge = net.run('firewall', 'ADD', c.id, c.netns, { ...net.firewallConf({ ...c.last, interfaces: [] }), ingressPolicy: 'same-bridge' });
    expect(code(noBridge)).toMatchObject({ code: 7, msg: expect.stringContaining('bridge') });
    expect(net.records()).toEqual([]);
    expect(rulesFor(c.ip)).toEqual([]);
    net.remove({ ...c, firewall: false });
  });

  it('GC removes the rules of attachments no longer valid', async () => {
    const net = network('iptables');
    const keep = await net.container();
    const gone = await net.container();
    const gc = net.run('firewall', 'GC', 'x', undefined, { ...net.firewallConf(), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] });
    expect(gc.status).toBe(0);
    expect(rulesFor(gone.ip)).toEqual([]);
    expect(rulesFor(keep.ip).length).toBeGreaterThan(0);
    expect(net.records()).toEqual([`${keep.id}@eth0.json`]);
    net.remove(keep);
    net.remove({ ...gone, firewall: false });
  });
});

describe('cnikit network create on a host with FORWARD policy DROP', () => {
  it('its conflist chains firewall and tuning: a container reaches out and its published port answers from outside; rm leaves nothing', async () => {
    const env = lab.cliEnv('cli-state');
    const cnikit = (args: string[]) => lab.exec(join(DIST, 'cnikit'), args, { env });
    const name = `${RUN_PREFIX}-web`;
    expect(cnikit(['network', 'create', '--subnet', '10.71.200.0/24', 'dropnet']).stderr).toBe('');
    const conflist = JSON.parse(readFileSync(join(lab.dir, 'net.d', 'dropnet.conflist'), 'utf8')) as { plugins: { type: string }[] };
    expect(conflist.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning', 'dnsname']);
    try {
      const run = cnikit(['run', '--network', 'dropnet', '--ip', '10.71.200.8', '-p', '8070:80', name]);
      expect(run.stderr).toBe('');
      const netns = `/run/netns/${name}`;
      await startPeerServer(netns, 'tcp', '0.0.0.0', 80, servers);
      expect(tcpAsk(lab, netns, UPLINK.outside4, 9000)).toBe(HOST4);
      expect(tcpAsk(lab, outside, HOST4, 8070)).toBe(UPLINK.outside4);
    } finally {
      expect(cnikit(['rm', '-f', name]).status).toBe(0);
    }
    expect(rulesFor('10.71.200.8')).toEqual([]);
    expect(cnikit(['network', 'rm', 'dropnet']).status).toBe(0);
  });
});

describe('firewall ADDs and DELs in parallel on a fresh host', () => {
  it('build the shared chains once, and every container gets exactly its rules', async () => {
    const fresh = Lab.create();
    try {
      const netns = fresh.container();
      const conf = (i: number) => ({
        cniVersion: '1.0.0', name: 'par', type: 'firewall', backend: 'iptables', dataDir: join(fresh.dir, 'state'),
        prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: netns }], ips: [{ address: `10.73.0.${i + 2}/24`, interface: 0 }] },
      });
      const call = (command: string, i: number) => new Promise<number | null>((resolve) => {
        const child = spawn('nsenter', [`--net=${fresh.hostPath}`, '--', bin('firewall')], {
          env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `par${i}`, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: BIN },
          stdio: ['pipe', 'ignore', 'ignore'],
        });
        child.stdin.end(JSON.stringify(conf(i)));
        child.on('exit', resolve);
      });
      const N = 12;
      expect(await Promise.all(Array.from({ length: N }, (_, i) => call('ADD', i)))).toEqual(Array(N).fill(0));
      const forward = fresh.exec('iptables', ['-S', 'FORWARD']).stdout;
      expect(forward.split('\n').filter((l) => l.includes('-j CNI-FORWARD'))).toHaveLength(1);
      const chain = fresh.exec('iptables', ['-S', 'CNI-FORWARD']).stdout.split('\n');
      for (let i = 0; i < N; i++) expect(chain.filter((l) => l.includes(`10.73.0.${i + 2}/32`)), `container ${i}`).toHaveLength(2);
      expect(chain[1]).toContain('-j CNI-ADMIN');
      expect(await Promise.all(Array.from({ length: N }, (_, i) => call('DEL', i)))).toEqual(Array(N).fill(0));
      expect(fresh.exec('iptables', ['-S', 'CNI-FORWARD']).stdout.split('\n').filter((l) => l.includes('10.73.0.'))).toEqual([]);
    } finally {
      fresh.destroy();
    }
  }, 120_000);
});
