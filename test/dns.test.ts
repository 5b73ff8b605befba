// Container name resolution through the CLI, as a Docker user sees it:
// three containers on two user-defined networks (one dual-stack) find each
// other by name, alias and name.domain, PTR gives the name back, the other
// network gets NXDOMAIN, an outside name comes from the only upstream (a
// tiny server in the "outside" namespace); --link on the default bridge;
// the responder exits after the last container is gone.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { DIST } from './dist.ts';
import { addOutside, UPLINK } from './net.ts';
import { ask, startUpstream, responderPid as findResponder, alive } from './dnsq.ts';

let lab: Lab;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];
const name = (n: string) => `${RUN_PREFIX}-${n}`;
const CONTAINERS = ['web1', 'web2', 'db', 'intc', 'lkdb', 'lkapp'];

beforeAll(async () => {
  lab = Lab.create();
  const outside = addOutside(lab);
  await startUpstream(outside, UPLINK.outside4, { 'outside.example': '198.51.100.7' }, children);
  // The responder's upstreams: the lab host's own resolv.conf, as `ip netns exec` would show it.
  writeFileSync(join(lab.dir, 'resolv.conf'), `nameserver ${UPLINK.outside4}\n`);
  env = { ...lab.cliEnv(), CNIKIT_DNS_RESOLV_CONF: join(lab.dir, 'resolv.conf') };
}, 60_000);

afterAll(() => {
  for (const n of CONTAINERS) cnikit(['rm', '-f', name(n)]);
  for (const c of children) c.kill('SIGKILL');
  const pid = responderPid();
  if (pid) process.kill(pid, 'SIGKILL');
  lab?.destroy();
});

function cnikit(args: string[]) {
  return lab.exec(join(DIST, 'cnikit'), args, { env });
}

const responderPid = () => findResponder(lab, join(lab.dir, 'data', 'plugins'));


const ns = (n: string) => `/run/netns/${name(n)}`;

describe('container name resolution on user-defined networks', () => {
  it('resolves names, aliases and name.domain on the same network only, PTR, outside names through the upstream, network connect --alias', async () => {
    expect(cnikit(['network', 'create', '--subnet', '172.30.1.0/24', '--subnet', 'fd00:a1::/64', 'dns_a']).stderr).toBe('');
    expect(cnikit(['network', 'create', '--subnet', '172.30.2.0/24', 'dns_b']).stderr).toBe('');
    const conflist = JSON.parse(readFileSync(join(lab.dir, 'net.d', 'dns_a.conflist'), 'utf8'));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toContain('dnsname');

    const web1 = cnikit(['run', '--network', 'dns_a', '--network-alias', 'www', '--network-alias', 'front', name('web1')]);
    expect(web1.stderr).toBe('');
    expect(cnikit(['run', '--network', 'dns_a', name('web2')]).stderr).toBe('');
    expect(cnikit(['run', '--network', 'dns_b', name('db')]).stderr).toBe('');
    const w1 = JSON.parse(cnikit(['inspect', name('web1')]).stdout).addresses as string[];
    const v4 = w1.find((a) => !a.includes(':'))!.split('/')[0]!;
    const v6 = w1.find((a) => a.includes(':'))!.split('/')[0]!;

    // The container's resolv.conf points at its network's gateway, with the domain as search.
    const resolv = readFileSync(`/etc/netns/${name('web2')}/resolv.conf`, 'utf8');
    expect(resolv).toContain('nameserver 172.30.1.1');
    expect(resolv).toContain('search dns.cnikit');
    // What a program in the container does: getent through /etc/netns (ip netns exec).
    expect(cnikit(['exec', name('web2'), '--', 'getent', 'ahostsv4', name('web1')]).stdout).toContain(v4);
    expect(cnikit(['exec', name('web2'), '--', 'getent', 'ahostsv4', 'www']).stdout).toContain(v4);

    const gw = '172.30.1.1';
    expect(ask(lab, ns('web2'), gw, name('web1'))).toMatchObject({ rcode: 'NOERROR', aa: true, answers: [v4] });
    expect(ask(lab, ns('web2'), gw, 'front')).toMatchObject({ rcode: 'NOERROR', answers: [v4] });
    expect(ask(lab, ns('web2'), gw, `${name('web1')}.dns.cnikit`)).toMatchObject({ rcode: 'NOERROR', answers: [v4] });
    expect(ask(lab, ns('web2'), gw, 'WWW.dns.cnikit', 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: [v6] });
    // Over IPv6 and over TCP too.
    expect(ask(lab, ns('web2'), 'fd00:a1::1', name('web1'), 'AAAA')).toMatchObject({ rcode: 'NOERROR', answers: [v6] });
    expect(ask(lab, ns('web2'), gw, name('web1'), 'A', 'tcp')).toMatchObject({ id: 4242, rcode: 'NOERROR', answers: [v4] });
    // PTR of both addresses gives the name.
    expect(ask(lab, ns('web2'), gw, v4.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR')).toMatchObject({ rcode: 'NOERROR', answers: [`${name('web1')}.dns.cnikit`] });
    expect(cnikit(['exec', name('web2'), '--', 'getent', 'hosts', v6]).stdout).toContain(name('web1'));
    // Names of the other network: NXDOMAIN, both ways, and not forwarded.
    expect(ask(lab, ns('db'), '172.30.2.1', name('web1'))).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    expect(ask(lab, ns('db'), '172.30.2.1', 'www')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, ns('web2'), gw, name('db'))).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, ns('web2'), gw, `${name('db')}.dns.cnikit`)).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, ns('db'), '172.30.2.1', name('db'))).toMatchObject({ rcode: 'NOERROR', answers: ['172.30.2.2'] });
    // Outside names come from the upstream, the only one there is.
    expect(ask(lab, ns('web2'), gw, 'outside.example')).toMatchObject({ id: 4242, rcode: 'NOERROR', answers: ['198.51.100.7'] });
    expect(ask(lab, ns('db'), '172.30.2.1', 'nothing.example')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(cnikit(['exec', name('db'), '--', 'getent', 'ahostsv4', 'outside.example']).stdout).toContain('198.51.100.7');

    // network connect --alias: web2 joins dns_b under one more name, which dns_b's containers resolve.
    const conn = cnikit(['network', 'connect', '--alias', 'api', 'dns_b', name('web2')]);
    expect(conn.stderr).toBe('');
    const web2b = conn.stdout.trim().split(' ')[2]!.split('/')[0]!;
    expect(ask(lab, ns('db'), '172.30.2.1', 'api')).toMatchObject({ rcode: 'NOERROR', answers: [web2b] });
    expect(cnikit(['exec', name('db'), '--', 'getent', 'ahostsv4', name('web2')]).stdout).toContain(web2b);
    // An alias of dns_b is not dns_a's.
    expect(ask(lab, ns('web2'), gw, 'api')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(cnikit(['network', 'disconnect', 'dns_b', name('web2')]).status).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(ask(lab, ns('db'), '172.30.2.1', 'api')).toMatchObject({ rcode: 'NXDOMAIN' });
  });

  it('an --internal network gets its names but nothing forwarded', () => {
    expect(cnikit(['network', 'create', '--internal', '--subnet', '172.30.3.0/24', 'dns_int']).stderr).toBe('');
    expect(cnikit(['run', '--network', 'dns_int', name('intc')]).stderr).toBe('');
    expect(ask(lab, ns('intc'), '172.30.3.1', name('intc'))).toMatchObject({ rcode: 'NOERROR', answers: ['172.30.3.2'] });
    expect(ask(lab, ns('intc'), '172.30.3.1', 'outside.example')).toMatchObject({ rcode: 'REFUSED', answers: [] });
    expect(cnikit(['rm', name('intc')]).status).toBe(0);
  });

  it('--link NAME:ALIAS is a hosts entry, also on the default bridge, which has no name server', () => {
    expect(cnikit(['run', name('lkdb')]).stderr).toBe('');
    expect(cnikit(['run', '--link', `${name('lkdb')}:mysql`, name('lkapp')]).stderr).toBe('');
    const db = (JSON.parse(cnikit(['inspect', name('lkdb')]).stdout).addresses as string[])[0]!.split('/')[0]!;
    expect(cnikit(['exec', name('lkapp'), '--', 'getent', 'hosts', 'mysql']).stdout).toContain(db);
    expect(readFileSync(`/etc/netns/${name('lkapp')}/resolv.conf`, 'utf8')).not.toContain('nameserver');
    expect(JSON.parse(readFileSync(join(lab.dir, 'net.d', 'bridge.conflist'), 'utf8')).plugins.map((p: { type: string }) => p.type)).not.toContain('dnsname');
    expect(cnikit(['run', '--link', 'nosuch:x', name('lkbad')]).stderr).toMatch(/--link nosuch:x: no container named nosuch/);
    expect(cnikit(['run', '--network-alias', 'x', name('lkbad')]).stderr).toMatch(/--network-alias works on user-defined networks only/);
    expect(existsSync(`/run/netns/${name('lkbad')}`)).toBe(false);
    expect(existsSync(`/etc/netns/${name('lkbad')}`)).toBe(false);
  });

  it('removes names with their containers and the responder exits after the last', async () => {
    const pid = responderPid();
    expect(pid).toBeDefined();
    expect(alive(pid!)).toBe(true);
    expect(cnikit(['rm', name('web1')]).status).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    // From web2 at once: the bridge keeps its own MAC when a port leaves, so the
    // gateway stays reachable (it took the lowest port's MAC before, and web2's
    // neighbour entry went stale for seconds).
    expect(ask(lab, ns('web2'), '172.30.1.1', name('web2'))).toMatchObject({ rcode: 'NOERROR' });
    expect(ask(lab, ns('web2'), '172.30.1.1', name('web1'))).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(ask(lab, ns('web2'), '172.30.1.1', 'www')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(alive(pid!)).toBe(true);
    expect(cnikit(['rm', name('web2'), name('db')]).status).toBe(0);
    for (let i = 0; i < 50 && alive(pid!); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid!)).toBe(false);
    expect(responderPid()).toBeUndefined();
  });
});
