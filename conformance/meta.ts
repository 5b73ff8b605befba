// Cases for chained ("meta") plugins: firewall, tuning and bandwidth, each
// run after an attachment the suite makes itself (a veth pair, the
// container end addressed in its namespace), so a fault of a main plugin
// cannot hide or cause one of theirs. What a runtime relies on: the result
// is the prevResult when the plugin changes nothing in it, in the input's
// version; DEL succeeds twice, without the netns and without prevResult,
// and every time leaves nothing of what ADD made.
import { readdirSync, existsSync } from 'node:fs';
import { CaseSkip, check, json, ok, links, supportedVersions, compareVersions, RUNTIME_VERSIONS, type Case, type Ctx, type Role } from './cases.ts';
import type { Call, ExecResult } from './lab.ts';

export type MetaRole = 'firewall' | 'tuning' | 'bandwidth';

interface Attachment {
  netns: string;
  id: string;
  hostVeth: string;
  /** The container's IPv4 address, without prefix. */
  ip: string;
  subnet: number;
  dataDir: string;
  prevResult(version: string): Record<string, unknown>;
}

let made = 0;

/** A container as a main plugin would leave it: eth0 with an address in its namespace, the host end of its veth up. */
function attach(ctx: Ctx): Attachment {
  const n = made++;
  const netns = ctx.lab.container();
  const hostVeth = `${ctx.lab.prefix}m${n}`;
  const subnet = 10 + (n % 240);
  const ip = `10.249.${subnet}.2`;
  ctx.lab.ip(['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns.replace('/run/netns/', '')]);
  ctx.lab.ip(['link', 'set', hostVeth, 'up']);
  ctx.lab.ip(['addr', 'add', `${ip}/24`, 'dev', 'eth0'], netns);
  ctx.lab.ip(['link', 'set', 'eth0', 'up'], netns);
  ctx.lab.ip(['link', 'set', 'lo', 'up'], netns);
  const mac = (ns?: string, dev = hostVeth) => (JSON.parse(ctx.lab.ip(['-j', 'link', 'show', 'dev', dev], ns)) as { address: string }[])[0]!.address;
  const hostMac = mac();
  const containerMac = mac(netns, 'eth0');
  const gw = `10.249.${subnet}.1`;
  return {
    netns,
    id: `conformance-meta${n}`,
    hostVeth,
    ip,
    subnet,
    dataDir: `${ctx.lab.dir}/meta-${n}`,
    prevResult: (version) => ({
      cniVersion: version,
      interfaces: [{ name: hostVeth, mac: hostMac }, { name: 'eth0', mac: containerMac, sandbox: netns }],
      ips: [{ ...(compareVersions(version, '1.0.0') < 0 ? { version: '4' } : {}), address: `${ip}/24`, gateway: gw, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw }],
      dns: { nameservers: [gw], search: ['conformance.test'] },
    }),
  };
}

/**
 * Per role: a config that does the plugin's work (rules; sysctl and MTU;
 * shaping both ways), and Podman's or a pod's that asks for nothing.
 * 'resultless': work that changes nothing in the result (egress shaping adds
 * its ifb to the result's interfaces, so it is left out there).
 */
type Options = 'none' | 'resultless' | 'full';

function options(role: MetaRole, a: Attachment, which: Options): Record<string, unknown> {
  if (which === 'none') return role === 'firewall' ? { backend: '' } : role === 'tuning' ? { dataDir: a.dataDir } : {};
  switch (role) {
    case 'firewall':
      return {};
    case 'tuning':
      return { mtu: 1400, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1' }, dataDir: a.dataDir };
    case 'bandwidth':
      return { ingressRate: 8_000_000, ingressBurst: 1_000_000, ...(which === 'full' ? { egressRate: 8_000_000, egressBurst: 1_000_000 } : {}) };
  }
}

function conf(ctx: Ctx, role: MetaRole, a: Attachment, version: string, which: Options, withPrev = true): Record<string, unknown> {
  return {
    cniVersion: version,
    name: 'conformance-meta',
    type: ctx.name(role),
    ...options(role, a, which),
    ...(withPrev ? { prevResult: a.prevResult(version) } : {}),
  };
}

function call(ctx: Ctx, role: MetaRole, a: Attachment, command: string, config: Record<string, unknown>, netns: string | undefined = a.netns): ExecResult {
  const c: Call = { command, containerId: a.id, ifname: 'eth0', config };
  if (netns !== undefined) c.netns = netns;
  return ctx.lab.plugin(ctx.name(role), c);
}

/** Go omits empty lists and objects (and prints `dns: {}` for none): neither is a difference a runtime sees. */
function normalized(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(normalized);
  if (x === null || typeof x !== 'object') return x;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(x).sort()) {
    const v = normalized((x as Record<string, unknown>)[k]);
    const empty = v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);
    if (!empty) out[k] = v;
  }
  return out;
}

/** Lines of the lab host's firewall (iptables, all tables, and nftables) that name an address. */
function rulesNaming(ctx: Ctx, address: string): string[] {
  const text = ctx.lab.exec('iptables-save', []).stdout + ctx.lab.exec('nft', ['list', 'ruleset']).stdout;
  const re = new RegExp(`(^|[^0-9.])${address.replace(/\./g, '\\.')}(?![0-9])`);
  return text.split('\n').filter((l) => re.test(l));
}

function ifbs(ctx: Ctx): string[] {
  return links(ctx).filter((l) => l.linkinfo?.info_kind === 'ifb').map((l) => l.ifname);
}

function qdiscKinds(ctx: Ctx, dev: string): string[] {
  const r = ctx.lab.exec('tc', ['-j', 'qdisc', 'show', 'dev', dev]);
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as { kind: string }[]).map((q) => q.kind).filter((k) => k !== 'noqueue');
}

function mtu(ctx: Ctx, netns: string): number {
  return (JSON.parse(ctx.lab.ip(['-j', 'link', 'show', 'dev', 'eth0'], netns)) as { mtu: number }[])[0]!.mtu;
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => !d.isDirectory()).map((d) => d.name);
}

/** What the effective config made, checked right after ADD: a case whose plugin did nothing proves nothing. */
function checkMade(ctx: Ctx, role: MetaRole, a: Attachment, ifbsBefore: number): void {
  switch (role) {
    case 'firewall':
      check(rulesNaming(ctx, a.ip).length > 0, `firewall ADD made no rule naming the container address ${a.ip}`);
      return;
    case 'tuning': {
      check(mtu(ctx, a.netns) === 1400, `tuning ADD did not set eth0's MTU to 1400 (it is ${mtu(ctx, a.netns)})`);
      const v = ctx.lab.exec('cat', ['/proc/sys/net/ipv4/conf/eth0/arp_notify'], { netns: a.netns }).stdout.trim();
      check(v === '1', `tuning ADD did not set net.ipv4.conf.eth0.arp_notify to 1 (it is ${v})`);
      return;
    }
    case 'bandwidth':
      check(ifbs(ctx).length === ifbsBefore + 1, `bandwidth ADD with an egress rate made ${ifbs(ctx).length - ifbsBefore} ifb devices, expected 1`);
      check(qdiscKinds(ctx, a.hostVeth).includes('tbf'), `bandwidth ADD with an ingress rate put no tbf qdisc on the host veth ${a.hostVeth}: ${qdiscKinds(ctx, a.hostVeth).join(', ')}`);
      return;
  }
}

/** Nothing of what ADD made is left (the netns may be gone). */
function checkNothingLeft(ctx: Ctx, role: MetaRole, a: Attachment, ifbsBefore: number, netnsAlive: boolean, after: string): void {
  switch (role) {
    case 'firewall': {
      const left = rulesNaming(ctx, a.ip);
      check(left.length === 0, `${after}: rules naming ${a.ip} are left: ${left.slice(0, 2).join(' / ')}`);
      return;
    }
    case 'tuning': {
      if (netnsAlive) check(mtu(ctx, a.netns) === 1500, `${after}: eth0's MTU was not restored to 1500 (it is ${mtu(ctx, a.netns)})`);
      const files = filesUnder(a.dataDir);
      check(files.length === 0, `${after}: files are left in the dataDir: ${files.join(', ')}`);
      return;
    }
    case 'bandwidth': {
      check(ifbs(ctx).length === ifbsBefore, `${after}: ${ifbs(ctx).length - ifbsBefore} ifb devices are left (${ifbs(ctx).join(', ')})`);
      if (netnsAlive) {
        const kinds = qdiscKinds(ctx, a.hostVeth).filter((k) => k === 'tbf' || k === 'ingress' || k === 'clsact');
        check(kinds.length === 0, `${after}: the host veth ${a.hostVeth} still has ${kinds.join(', ')} qdiscs`);
      }
      return;
    }
  }
}

function metaCases(role: MetaRole): Case[] {
  const section = `SPEC §3 chaining (${role})`;
  const effectiveAdd = (ctx: Ctx, a: Attachment, ifbsBefore: number) => {
    ok(call(ctx, role, a, 'ADD', conf(ctx, role, a, '1.0.0', 'full')), `${role} ADD`);
    checkMade(ctx, role, a, ifbsBefore);
  };
  return [
    {
      id: `${role}-version`,
      section: 'SPEC §2 VERSION',
      title: `${role} VERSION lists the versions the runtimes' chains use (0.4.0: Podman; 1.0.0: containerd, CRI-O)`,
      run(ctx) {
        const r = ctx.lab.plugin(ctx.name(role), { command: 'VERSION', config: { cniVersion: '0.4.0' } });
        ok(r, `${role} VERSION`);
        const v = json(r, `${role} VERSION`).supportedVersions;
        check(Array.isArray(v), `${role} VERSION: no supportedVersions list`);
        const lacking = ['0.4.0', '1.0.0'].filter((x) => !v.includes(x));
        check(lacking.length === 0, `${role} VERSION: supportedVersions lacks ${lacking.join(', ')}: ${JSON.stringify(v)}`);
      },
    },
    {
      id: `${role}-passthrough`,
      section,
      title: `${role} ADD returns the prevResult unchanged, in the input's version (with and without options that change nothing in it); DEL succeeds`,
      run(ctx) {
        const versions = supportedVersions(ctx, role as Role).filter((v) => RUNTIME_VERSIONS.includes(v) && ['0.3.1', '0.4.0', '1.0.0', '1.1.0'].includes(v));
        if (versions.length === 0) throw new CaseSkip(`${role} speaks none of 0.3.1, 0.4.0, 1.0.0, 1.1.0`);
        for (const version of versions) {
          for (const which of ['none', 'resultless'] as const) {
            // An attachment each: what one DEL may leave must not fail the next ADD here (the del cases judge it).
            const a = attach(ctx);
            const what = `${role} ADD in ${version}${which === 'none' ? '' : ' with options'}`;
            const c = conf(ctx, role, a, version, which);
            const r = call(ctx, role, a, 'ADD', c);
            ok(r, what);
            const got = normalized(json(r, what));
            const want = normalized(c.prevResult);
            check(JSON.stringify(got) === JSON.stringify(want), `${what}: the result is not the prevResult: got ${JSON.stringify(got).slice(0, 300)}, expected ${JSON.stringify(want).slice(0, 300)}`);
            ok(call(ctx, role, a, 'DEL', c), `${role} DEL in ${version}${which === 'none' ? '' : ' with options'}`);
          }
        }
      },
    },
    {
      id: `${role}-del-twice`,
      section: 'SPEC §2 DEL',
      title: `${role} DEL with prevResult removes what ADD made, and succeeds again`,
      run(ctx) {
        const a = attach(ctx);
        const ifbsBefore = ifbs(ctx).length;
        effectiveAdd(ctx, a, ifbsBefore);
        ok(call(ctx, role, a, 'DEL', conf(ctx, role, a, '1.0.0', 'full')), `${role} DEL`);
        checkNothingLeft(ctx, role, a, ifbsBefore, true, 'after DEL');
        ok(call(ctx, role, a, 'DEL', conf(ctx, role, a, '1.0.0', 'full')), `${role} second DEL`);
        checkNothingLeft(ctx, role, a, ifbsBefore, true, 'after the second DEL');
      },
    },
    {
      id: `${role}-del-no-netns`,
      section: 'SPEC §2 DEL',
      title: `${role} DEL after the netns is gone (its path, then no CNI_NETNS and no prevResult, as containerd's second round) succeeds and leaves nothing`,
      run(ctx) {
        const a = attach(ctx);
        const ifbsBefore = ifbs(ctx).length;
        effectiveAdd(ctx, a, ifbsBefore);
        ctx.lab.deleteNetns(a.netns);
        ok(call(ctx, role, a, 'DEL', conf(ctx, role, a, '1.0.0', 'full')), `${role} DEL with the netns gone`);
        ok(call(ctx, role, a, 'DEL', conf(ctx, role, a, '1.0.0', 'full', false), undefined), `${role} DEL with no CNI_NETNS and no prevResult`);
        checkNothingLeft(ctx, role, a, ifbsBefore, false, 'after DEL without the netns');
      },
    },
    {
      id: `${role}-del-no-prevresult`,
      section: 'SPEC §2 DEL',
      title: `${role} DEL without prevResult (as after a failed ADD, or a lost cache) removes what ADD made`,
      run(ctx) {
        const a = attach(ctx);
        const ifbsBefore = ifbs(ctx).length;
        effectiveAdd(ctx, a, ifbsBefore);
        ok(call(ctx, role, a, 'DEL', conf(ctx, role, a, '1.0.0', 'full', false)), `${role} DEL without prevResult`);
        checkNothingLeft(ctx, role, a, ifbsBefore, true, 'after DEL without prevResult');
      },
    },
  ];
}

export const META_CASES: Case[] = (['firewall', 'tuning', 'bandwidth'] as const).flatMap(metaCases);
