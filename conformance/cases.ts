// The cases: each checks one thing the CNI specification (1.1.0) or its
// conventions ask of a plugin, black-box, by exec'ing it in the lab.
import type { Call, ConformanceLab, ExecResult } from './lab.ts';

export type Role = 'loopback' | 'bridge' | 'ipam' | 'portmap' | 'firewall' | 'tuning' | 'bandwidth';
export type Names = Partial<Record<Role, string>>;

export class CaseFailure extends Error {}
export class CaseSkip extends Error {}

export interface Ctx {
  lab: ConformanceLab;
  names: Names;
  /** The plugin of a role (the case is skipped when it is absent). */
  name(role: Role): string;
  /** A network config for the bridge (+ IPAM) of this run. */
  bridgeConf(version: string, extra?: Record<string, unknown>): Record<string, unknown>;
}

export interface Case {
  id: string;
  section: string;
  title: string;
  run(ctx: Ctx): void;
}

export function check(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new CaseFailure(msg);
}

export function json(r: ExecResult, what: string): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new CaseFailure(`${what}: stdout is not JSON (exit ${r.status}): ${r.stdout.slice(0, 120) || r.stderr.slice(0, 120)}`);
  }
}

function errorObject(r: ExecResult, code: number, what: string): void {
  check(r.status !== 0, `${what}: exit status 0, expected an error`);
  const e = json(r, what);
  check(typeof e.msg === 'string' && e.msg !== '', `${what}: error has no msg`);
  check(e.code === code, `${what}: code ${String(e.code)}, expected ${code} (${String(e.msg)})`);
}

export function ok(r: ExecResult, what: string): void {
  check(r.status === 0, `${what}: exit ${r.status}: ${(r.stdout + r.stderr).trim().slice(0, 200)}`);
}

const lo = (version = '1.0.0') => ({ cniVersion: version, name: 'conformance-lo', type: 'loopback' });

export function links(ctx: Ctx, netns?: string): { ifname: string; flags: string[]; linkinfo?: { info_kind?: string } }[] {
  return JSON.parse(ctx.lab.ip(['-j', '-d', 'link', 'show'], netns)) as { ifname: string; flags: string[]; linkinfo?: { info_kind?: string } }[];
}

function hostVeths(ctx: Ctx): string[] {
  return links(ctx).filter((l) => l.linkinfo?.info_kind === 'veth').map((l) => l.ifname);
}

function natRulesNaming(ctx: Ctx, address: string): string[] {
  const text = ctx.lab.exec('iptables-save', ['-t', 'nat']).stdout + ctx.lab.exec('nft', ['list', 'ruleset']).stdout;
  const re = new RegExp(`${address.replace(/\./g, '\\.')}(?![0-9])`);
  return text.split('\n').filter((l) => re.test(l));
}

let ids = 0;
const cid = () => `conformance${ids++}`;

function addBridge(ctx: Ctx, version = '1.0.0', extra: Record<string, unknown> = {}) {
  const netns = ctx.lab.container();
  const id = cid();
  const conf = ctx.bridgeConf(version, extra);
  const r = ctx.lab.plugin(ctx.name('bridge'), { command: 'ADD', containerId: id, netns, ifname: 'eth0', config: conf });
  ok(r, 'bridge ADD');
  const result = json(r, 'bridge ADD') as { cniVersion?: string; ips?: { address: string; interface?: number; version?: string }[]; interfaces?: { name: string; sandbox?: string }[] };
  const v4 = result.ips?.find((i) => i.address.includes('.'))?.address.split('/')[0];
  check(v4, 'bridge ADD: no IPv4 address in the result');
  const del = (ns: string | undefined = netns) => ctx.lab.plugin(ctx.name('bridge'), { command: 'DEL', containerId: id, netns: ns, ifname: 'eth0', config: conf });
  return { netns, id, conf, result, v4, del };
}

function supports(ctx: Ctx, role: Role, version: string): boolean {
  const r = ctx.lab.plugin(ctx.name(role), { command: 'VERSION', config: { cniVersion: '1.0.0' } });
  const v = JSON.parse(r.stdout || '{}') as { supportedVersions?: string[] };
  return v.supportedVersions?.includes(version) ?? false;
}

/**
 * The versions whose result shape the suite knows: as a runtime it can speak
 * no others, whatever a configuration or a plugin offers (libcni likewise
 * drops cniVersions above its own).
 */
export const RUNTIME_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

export function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (x![i] !== y![i]) return (x![i] ?? 0) - (y![i] ?? 0);
  return 0;
}

/** VERSION as libcni asks it (in its own version), and the plugin's supportedVersions. */
export function supportedVersions(ctx: Ctx, role: Role): string[] {
  const r = ctx.lab.plugin(ctx.name(role), { command: 'VERSION', config: { cniVersion: '1.1.0' } });
  ok(r, `${role} VERSION`);
  const v = json(r, `${role} VERSION`).supportedVersions;
  check(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${role} VERSION: no supportedVersions list`);
  return v as string[];
}

type AnyResult = { cniVersion?: unknown; interfaces?: unknown[]; ips?: { address?: unknown; version?: unknown; interface?: unknown }[] };

/** An ADD result is labelled with `version` and has its shape: ips[].version exists before 1.0.0 only. */
function resultShape(r: AnyResult, version: string, what: string): void {
  check(r.cniVersion === version, `${what}: result cniVersion ${JSON.stringify(r.cniVersion)}, expected ${version}`);
  const old = compareVersions(version, '1.0.0') < 0;
  // Go results leave out an empty ips list, so a missing one is no fault.
  check(r.ips === undefined || Array.isArray(r.ips), `${what}: ips is not a list`);
  for (const ip of r.ips ?? []) {
    check(typeof ip.address === 'string' && ip.address.includes('/'), `${what}: ips[].address ${JSON.stringify(ip.address)} is not CIDR`);
    if (old) check(ip.version === (ip.address.includes(':') ? '6' : '4'), `${what}: a ${version} result needs ips[].version ("4" or "6"), got ${JSON.stringify(ip.version)} for ${ip.address}`);
    else check(ip.version === undefined, `${what}: a ${version} result has no ips[].version, got ${JSON.stringify(ip.version)}`);
    if (ip.interface !== undefined) check(typeof ip.interface === 'number' && ip.interface < (r.interfaces?.length ?? 0), `${what}: ips[].interface ${JSON.stringify(ip.interface)} is not an index into interfaces`);
  }
}

/** A TCP listener in the container that accepts one connection (busybox nc). */
function reachable(ctx: Ctx, netns: string, port: number, target: string, targetPort: number, from?: string): boolean {
  const client = `timeout 2 nsenter --net=${from ?? ctx.lab.hostPath} bash -c 'exec 3<>/dev/tcp/${target}/${targetPort} && echo connected'`;
  const r = ctx.lab.exec('bash', ['-c', `(timeout 4 nsenter --net=${netns} busybox nc -l -p ${port} >/dev/null 2>&1 &) ; sleep 0.3; ${client}`]);
  return r.stdout.includes('connected');
}

/** The container kernel's count of UDP datagrams that arrived for a port nobody listens on. */
function udpNoPorts(ctx: Ctx, netns: string): number {
  const lines = ctx.lab.exec('cat', ['/proc/net/snmp'], { netns }).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [head, values] = lines.map((l) => l.trim().split(/\s+/));
  const i = head?.indexOf('NoPorts') ?? -1;
  return i < 0 ? 0 : Number(values?.[i] ?? 0);
}

function publish(ctx: Ctx, a: ReturnType<typeof addBridge>, mappings: object[]) {
  const conf = { cniVersion: '1.0.0', name: 'conformance', type: ctx.name('portmap'), dataDir: `${ctx.lab.dir}/plugins`, runtimeConfig: { portMappings: mappings }, prevResult: a.result };
  ok(ctx.lab.plugin(ctx.name('portmap'), { command: 'ADD', containerId: a.id, netns: a.netns, ifname: 'eth0', config: conf }), 'portmap ADD');
  return () => ok(ctx.lab.plugin(ctx.name('portmap'), { command: 'DEL', containerId: a.id, netns: a.netns, ifname: 'eth0', config: conf }), 'portmap DEL');
}

export const CASES: Case[] = [
  {
    id: 'result-031',
    section: 'SPEC §5 result versions',
    title: 'bridge ADD with a 0.3.1 config prints the 0.3.1 shape',
    run(ctx) {
      const a = addBridge(ctx, '0.3.1');
      check(a.result.cniVersion === '0.3.1', `result cniVersion ${String(a.result.cniVersion)}`);
      check(a.result.ips?.every((i) => i.version === '4' || i.version === '6'), 'ips lack the version field');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'result-110',
    section: 'SPEC §5 result versions',
    title: 'bridge ADD with a 1.1.0 config prints a 1.1.0 result',
    run(ctx) {
      if (!supports(ctx, 'bridge', '1.1.0')) throw new CaseSkip('the bridge plugin does not speak 1.1.0');
      const a = addBridge(ctx, '1.1.0');
      check(a.result.cniVersion === '1.1.0', `result cniVersion ${String(a.result.cniVersion)}`);
      check(a.result.ips?.every((i) => i.version === undefined), 'a 1.x result has no ips[].version');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'del-prevresult',
    section: 'SPEC §2 DEL',
    title: 'DEL with the ADD result as prevResult removes the attachment',
    run(ctx) {
      const before = hostVeths(ctx).length;
      const a = addBridge(ctx);
      ok(ctx.lab.plugin(ctx.name('bridge'), { command: 'DEL', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...a.conf, prevResult: a.result } }), 'DEL with prevResult');
      check(hostVeths(ctx).length === before, 'a host veth is left');
    },
  },
  {
    id: 'ipam-requested',
    section: 'CONVENTIONS ips',
    title: 'an address requested through runtimeConfig.ips is the one given, and can be had again after DEL',
    run(ctx) {
      const want = { capabilities: { ips: true }, runtimeConfig: { ips: ['10.250.0.77/24'] } };
      const a = addBridge(ctx, '1.0.0', want);
      check(a.v4 === '10.250.0.77', `got ${a.v4}`);
      ok(a.del(), 'DEL');
      const b = addBridge(ctx, '1.0.0', want);
      check(b.v4 === '10.250.0.77', `after DEL, got ${b.v4}`);
      ok(b.del(), 'DEL');
    },
  },
  {
    id: 'ipam-exhausted',
    section: 'SPEC §4 IPAM',
    title: 'an exhausted range fails the ADD and leaves no interface behind',
    run(ctx) {
      const small = { ipam: { type: ctx.name('ipam'), ranges: [[{ subnet: '10.252.0.0/24', rangeStart: '10.252.0.10', rangeEnd: '10.252.0.10' }]], dataDir: `${ctx.lab.dir}/ipam-small` }, bridge: `${ctx.lab.prefix}bs` };
      const a = addBridge(ctx, '1.0.0', small);
      const before = hostVeths(ctx).length;
      const netns = ctx.lab.container();
      const r = ctx.lab.plugin(ctx.name('bridge'), { command: 'ADD', containerId: cid(), netns, ifname: 'eth0', config: ctx.bridgeConf('1.0.0', small) });
      check(r.status !== 0, 'ADD succeeded with no address left');
      check(hostVeths(ctx).length === before, 'the failed ADD left a host veth');
      check(ctx.lab.exec('ip', ['link', 'show', 'eth0'], { netns }).status !== 0, 'the failed ADD left eth0 in the container');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'parallel-20',
    section: 'SPEC §2 ADD/DEL',
    title: '20 parallel ADDs then 20 parallel DELs: all succeed, distinct addresses, nothing left',
    run(ctx) {
      const before = hostVeths(ctx).length;
      const conf = JSON.stringify(ctx.bridgeConf('1.0.0'));
      const nss = Array.from({ length: 20 }, () => ctx.lab.container());
      const plugin = `${ctx.lab.pluginDir}/${ctx.name('bridge')}`;
      const script = (cmd: string) => nss.map((ns, i) =>
        `(CNI_COMMAND=${cmd} CNI_CONTAINERID=par${i} CNI_NETNS=${ns} CNI_IFNAME=eth0 CNI_PATH=${ctx.lab.pluginDir} ${plugin} <<<'${conf}' > ${ctx.lab.dir}/par-${cmd}-${i}.out; echo $? > ${ctx.lab.dir}/par-${cmd}-${i}.rc) &`).join('\n') + '\nwait';
      ctx.lab.exec('bash', ['-c', script('ADD')]);
      const read = (f: string) => ctx.lab.exec('cat', [`${ctx.lab.dir}/${f}`]).stdout.trim();
      const rcs = nss.map((_, i) => read(`par-ADD-${i}.rc`));
      check(rcs.every((x) => x === '0'), `ADD exit codes: ${rcs.join(',')} (${read('par-ADD-' + rcs.findIndex((x) => x !== '0') + '.out').slice(0, 120)})`);
      const addrs = nss.map((_, i) => (JSON.parse(read(`par-ADD-${i}.out`)) as { ips: { address: string }[] }).ips[0]!.address);
      check(new Set(addrs).size === 20, `only ${new Set(addrs).size} distinct addresses`);
      ctx.lab.exec('bash', ['-c', script('DEL')]);
      const drcs = nss.map((_, i) => read(`par-DEL-${i}.rc`));
      check(drcs.every((x) => x === '0'), `DEL exit codes: ${drcs.join(',')}`);
      check(hostVeths(ctx).length === before, `${hostVeths(ctx).length - before} host veths left`);
      for (const a of addrs) check(natRulesNaming(ctx, a.split('/')[0]!).length === 0, `rules naming ${a} left`);
    },
  },
  {
    id: 'portmap-outside',
    section: 'CONVENTIONS portMappings',
    title: "a published TCP port answers from another host, on the host's address",
    run(ctx) {
      const out = ctx.lab.outside();
      const a = addBridge(ctx, '1.0.0', { hairpinMode: true });
      const unpublish = publish(ctx, a, [{ hostPort: 18083, containerPort: 83, protocol: 'tcp' }]);
      check(reachable(ctx, a.netns, 83, ctx.lab.uplink.host, 18083, out), `no connection from the outside host to ${ctx.lab.uplink.host}:18083`);
      unpublish();
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'version-echo',
    section: 'SPEC §2 VERSION',
    title: "VERSION answers in the cniVersion of its input",
    run(ctx) {
      const v = json(ctx.lab.plugin(ctx.name('loopback'), { command: 'VERSION', config: { cniVersion: '0.3.1' } }), 'VERSION');
      check(v.cniVersion === '0.3.1', `answered in ${String(v.cniVersion)}`);
    },
  },
  {
    id: 'env-required',
    section: 'SPEC §2 parameters, §5 error codes',
    title: 'each environment variable the spec requires of ADD, CHECK and DEL, when missing, fails with code 4 and touches nothing',
    run(ctx) {
      // CNI_PATH is optional in the spec (the reference's skel requires it
      // anyway), so it is not judged; CNI_NETNS is optional for DEL.
      const required = { ADD: ['containerId', 'netns', 'ifname'], CHECK: ['containerId', 'netns', 'ifname'], DEL: ['containerId', 'ifname'] } as const;
      const netns = ctx.lab.container();
      const before = links(ctx, netns).map((l) => `${l.ifname}:${l.flags.includes('UP')}`);
      for (const [command, vars] of Object.entries(required)) {
        for (const missing of vars) {
          const call: Call = { command, containerId: cid(), netns, ifname: 'lo', config: lo() };
          delete call[missing];
          errorObject(ctx.lab.plugin(ctx.name('loopback'), call), 4, `${command} without CNI_${missing.toUpperCase()}`);
        }
      }
      const after = links(ctx, netns).map((l) => `${l.ifname}:${l.flags.includes('UP')}`);
      check(after.join() === before.join(), `a refused call changed the namespace's links: ${before.join()} -> ${after.join()}`);
    },
  },
  {
    id: 'config-no-name',
    section: 'SPEC §5 error codes',
    title: 'a config without a network name fails with code 7',
    run(ctx) {
      errorObject(ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns: ctx.lab.container(), ifname: 'lo', config: { cniVersion: '1.0.0', type: 'loopback' } }), 7, 'config without name');
    },
  },
  {
    id: 'chain-prevresult',
    section: 'SPEC §3 chaining',
    title: 'loopback chained with a prevResult returns it',
    run(ctx) {
      const netns = ctx.lab.container();
      const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:05', sandbox: netns }], ips: [{ address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 0 }] };
      const r = ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns, ifname: 'lo', config: { ...lo(), prevResult } });
      ok(r, 'ADD with prevResult');
      const got = json(r, 'ADD with prevResult') as { ips?: { address: string }[] };
      check(got.ips?.[0]?.address === '10.0.0.5/24', `prevResult not passed through: ${r.stdout.slice(0, 160)}`);
    },
  },
  {
    id: 'status',
    section: 'SPEC §2 STATUS (1.1.0)',
    title: 'STATUS of a ready IPAM succeeds',
    run(ctx) {
      if (!supports(ctx, 'ipam', '1.1.0')) throw new CaseSkip('the IPAM plugin does not speak 1.1.0');
      ok(ctx.lab.plugin(ctx.name('ipam'), { command: 'STATUS', config: { cniVersion: '1.1.0', name: 'conformance', type: ctx.name('ipam'), ipam: { type: ctx.name('ipam'), ranges: [[{ subnet: '10.251.0.0/24' }]], dataDir: `${ctx.lab.dir}/ipam` } } }), 'STATUS');
    },
  },
  {
    id: 'gc',
    section: 'SPEC §2 GC (1.1.0)',
    title: 'GC on bridge removes the attachment not in cni.dev/valid-attachments, keeps the valid one',
    run(ctx) {
      if (!supports(ctx, 'bridge', '1.1.0')) throw new CaseSkip('the bridge plugin does not speak 1.1.0');
      const a = addBridge(ctx, '1.1.0');
      const b = addBridge(ctx, '1.1.0');
      const before = hostVeths(ctx).length;
      ok(ctx.lab.plugin(ctx.name('bridge'), { command: 'GC', config: { ...a.conf, 'cni.dev/valid-attachments': [{ containerID: a.id, ifname: 'eth0' }] } }), 'GC');
      check(hostVeths(ctx).length === before - 1, 'GC did not remove exactly one host veth');
      check(ctx.lab.exec('ip', ['link', 'show', 'eth0'], { netns: b.netns }).status !== 0, 'the stale attachment still has its interface');
      check(ctx.lab.exec('ip', ['link', 'show', 'eth0'], { netns: a.netns }).status === 0, 'the valid attachment lost its interface');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'masquerade',
    section: 'CONVENTIONS ipMasq',
    title: 'traffic leaving the subnet is masqueraded: the outside sees the host',
    run(ctx) {
      const out = ctx.lab.outside();
      const a = addBridge(ctx);
      const r = ctx.lab.exec('bash', ['-c', `(timeout 4 nsenter --net=${out} busybox nc -l -p 9000 > ${ctx.lab.dir}/seen 2>&1 &) ; sleep 0.3; timeout 2 nsenter --net=${a.netns} bash -c 'exec 3<>/dev/tcp/${ctx.lab.uplink.outside}/9000 && echo connected'`]);
      check(r.stdout.includes('connected'), 'the container cannot reach the outside host (no masquerade: the outside has no route back)');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'portmap-udp',
    section: 'CONVENTIONS portMappings',
    title: 'a published UDP port reaches the container',
    run(ctx) {
      const a = addBridge(ctx, '1.0.0', { hairpinMode: true });
      const unpublish = publish(ctx, a, [{ hostPort: 15353, containerPort: 53, protocol: 'udp' }]);
      const gw = (a.result.ips?.[0] as { gateway?: string } | undefined)?.gateway;
      // A datagram to a closed port still arrives: the container's kernel counts it (Udp NoPorts).
      const before = udpNoPorts(ctx, a.netns);
      ctx.lab.exec('bash', ['-c', `echo hello > /dev/udp/${gw}/15353`]);
      check(udpNoPorts(ctx, a.netns) > before, `the datagram to ${gw}:15353 did not arrive in the container`);
      unpublish();
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'portmap-localhost',
    section: 'CONVENTIONS portMappings',
    title: 'a published port answers on 127.0.0.1 of the host',
    run(ctx) {
      const a = addBridge(ctx, '1.0.0', { hairpinMode: true });
      const unpublish = publish(ctx, a, [{ hostPort: 18081, containerPort: 81, protocol: 'tcp' }]);
      check(reachable(ctx, a.netns, 81, '127.0.0.1', 18081), 'no connection through 127.0.0.1:18081');
      unpublish();
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'portmap-hairpin',
    section: 'CONVENTIONS portMappings',
    title: "a container reaches its own published port through the host's address (hairpin)",
    run(ctx) {
      ctx.lab.outside(); // gives the host the address the container dials
      const a = addBridge(ctx, '1.0.0', { hairpinMode: true });
      const unpublish = publish(ctx, a, [{ hostPort: 18082, containerPort: 82, protocol: 'tcp' }]);
      check(reachable(ctx, a.netns, 82, ctx.lab.uplink.host, 18082, a.netns), `no connection from the container to ${ctx.lab.uplink.host}:18082`);
      unpublish();
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'version-list',
    section: 'SPEC §2 VERSION',
    title: 'VERSION prints the supported versions, including the one asked for',
    run(ctx) {
      const r = ctx.lab.plugin(ctx.name('loopback'), { command: 'VERSION', config: { cniVersion: '1.0.0' } });
      ok(r, 'VERSION');
      const v = json(r, 'VERSION') as { cniVersion?: string; supportedVersions?: string[] };
      check(Array.isArray(v.supportedVersions) && v.supportedVersions.includes('1.0.0'), `supportedVersions lacks 1.0.0: ${JSON.stringify(v.supportedVersions)}`);
      check(v.supportedVersions.includes('0.4.0') && v.supportedVersions.includes('0.3.1'), 'supportedVersions lacks 0.4.0 or 0.3.1');
    },
  },
  {
    id: 'version-negotiate',
    section: 'SPEC §1 Version considerations, §3 request configuration',
    title: 'negotiated as a runtime does: the highest of cniVersion ∪ cniVersions that every plugin of the chain supports (9.9.9 is no one\'s); ADD answers in it with its shape, DEL succeeds in it',
    run(ctx) {
      const chain: Role[] = ['bridge', 'ipam', ...(ctx.names.portmap ? (['portmap'] as const) : [])];
      const list = { cniVersion: '0.4.0', cniVersions: ['0.3.1', '1.0.0', '1.1.0', '9.9.9'] };
      const spoken = chain.map((role) => supportedVersions(ctx, role));
      const common = [list.cniVersion, ...list.cniVersions].filter((v) => RUNTIME_VERSIONS.includes(v) && spoken.every((s) => s.includes(v)));
      check(common.length > 0, `no version of ${JSON.stringify(list)} is supported by all of ${chain.join(', ')}`);
      const version = common.sort(compareVersions).at(-1)!;
      const before = hostVeths(ctx).length;
      // What libcni hands each plugin: its own object with name and the
      // selected cniVersion inserted; cniVersions, a key of the list, stays behind.
      const a = addBridge(ctx, version);
      resultShape(a.result, version, `bridge ADD in ${version}`);
      let final: AnyResult = a.result;
      const pm = ctx.names.portmap ? { cniVersion: version, name: 'conformance', type: ctx.names.portmap, dataDir: `${ctx.lab.dir}/plugins` } : undefined;
      if (pm) {
        const r = ctx.lab.plugin(pm.type, { command: 'ADD', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...pm, prevResult: a.result } });
        ok(r, `portmap ADD in ${version}`);
        final = json(r, `portmap ADD in ${version}`);
        resultShape(final, version, `portmap ADD in ${version}`);
      }
      // DEL runs the chain backwards, each plugin given the chain's last result.
      if (pm) ok(ctx.lab.plugin(pm.type, { command: 'DEL', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...pm, prevResult: final } }), `portmap DEL in ${version}`);
      ok(ctx.lab.plugin(ctx.name('bridge'), { command: 'DEL', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...a.conf, prevResult: final } }), `bridge DEL in ${version}`);
      check(hostVeths(ctx).length === before, `DEL in ${version} left a host veth`);
    },
  },
  {
    id: 'version-not-from-cniversions',
    section: 'SPEC §1 Version considerations, §5 ADD Success',
    title: 'a config that also carries cniVersions (a higher version it speaks, and 9.9.9) is accepted and answered in its cniVersion: choosing is the runtime\'s',
    run(ctx) {
      const spoken = supportedVersions(ctx, 'loopback').filter((v) => RUNTIME_VERSIONS.includes(v)).sort(compareVersions);
      if (spoken.length < 2) throw new CaseSkip('the loopback plugin speaks one version: there is nothing to choose from');
      const given = spoken.at(-2)!;
      const conf = { ...lo(given), cniVersions: [...spoken.filter((v) => compareVersions(v, given) >= 0), '9.9.9'] };
      const netns = ctx.lab.container();
      const id = cid();
      const what = `ADD with cniVersion ${given} and cniVersions ${conf.cniVersions.join(', ')}`;
      const r = ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: id, netns, ifname: 'lo', config: conf });
      ok(r, what);
      const result = json(r, what);
      check(result.cniVersion === given, `${what}: answered in ${JSON.stringify(result.cniVersion)}`);
      ok(ctx.lab.plugin(ctx.name('loopback'), { command: 'DEL', containerId: id, netns, ifname: 'lo', config: { ...conf, prevResult: result } }), `DEL in ${given} with cniVersions`);
    },
  },
  {
    id: 'loopback-result-040',
    section: 'SPEC §5 result versions (0.4.0 ips[].version)',
    title: 'loopback ADD with a 0.4.0 config prints the 0.4.0 shape (ips[].version)',
    run(ctx) {
      if (!supports(ctx, 'loopback', '0.4.0')) throw new CaseSkip('the loopback plugin does not speak 0.4.0');
      const r = ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns: ctx.lab.container(), ifname: 'lo', config: lo('0.4.0') });
      ok(r, 'loopback ADD in 0.4.0');
      resultShape(json(r, 'loopback ADD in 0.4.0'), '0.4.0', 'loopback ADD in 0.4.0');
    },
  },
  {
    id: 'error-version',
    section: 'SPEC §5 Error',
    title: "an error object's cniVersion is the protocol version in use, the input's: for a bad config and for a bad environment",
    run(ctx) {
      const spoken = supportedVersions(ctx, 'loopback');
      const versions = ['0.4.0', '1.0.0'].filter((v) => spoken.includes(v));
      if (versions.length === 0) throw new CaseSkip('the loopback plugin speaks neither 0.4.0 nor 1.0.0');
      const netns = ctx.lab.container();
      for (const v of versions) {
        const tries: [string, ExecResult][] = [
          ['a config without a name', ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns, ifname: 'lo', config: { cniVersion: v, type: 'loopback' } })],
          ['ADD without CNI_CONTAINERID', ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', netns, ifname: 'lo', config: lo(v) })],
        ];
        for (const [what, r] of tries) {
          check(r.status !== 0, `${what} (cniVersion ${v}) succeeded`);
          const e = json(r, what);
          // The spec lists the key under "should"; leaving it out (the
          // reference's Go types.Error has none) is allowed, a wrong one is not.
          if (e.cniVersion !== undefined) check(e.cniVersion === v, `${what}: the error says cniVersion ${JSON.stringify(e.cniVersion)} to a ${v} input`);
        }
      }
    },
  },
  {
    id: 'env-no-command',
    section: 'SPEC §2 parameters',
    title: 'a missing CNI_COMMAND is an error object with code 4',
    run(ctx) {
      errorObject(ctx.lab.plugin(ctx.name('loopback'), { config: lo() }), 4, 'no CNI_COMMAND');
    },
  },
  {
    id: 'decode-error',
    section: 'SPEC §5 error codes',
    title: 'malformed JSON on stdin fails with code 6',
    run(ctx) {
      errorObject(ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns: ctx.lab.container(), ifname: 'lo', config: '{"cniVersion":' }), 6, 'malformed JSON');
    },
  },
  {
    id: 'unknown-version',
    section: 'SPEC §5 error codes',
    title: 'an unsupported cniVersion fails with code 1',
    run(ctx) {
      errorObject(ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns: ctx.lab.container(), ifname: 'lo', config: lo('9.9.9') }), 1, 'cniVersion 9.9.9');
    },
  },
  {
    id: 'loopback-add',
    section: 'SPEC §5 ADD result',
    title: 'loopback ADD brings lo up and prints a result of the asked version',
    run(ctx) {
      const netns = ctx.lab.container();
      const r = ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: cid(), netns, ifname: 'lo', config: lo() });
      ok(r, 'loopback ADD');
      check(json(r, 'loopback ADD').cniVersion === '1.0.0', 'result cniVersion is not 1.0.0');
      check(links(ctx, netns).find((l) => l.ifname === 'lo')?.flags.includes('UP'), 'lo is not up');
    },
  },
  {
    id: 'loopback-del',
    section: 'SPEC §2 DEL',
    title: 'loopback DEL succeeds twice and without the netns',
    run(ctx) {
      const netns = ctx.lab.container();
      const id = cid();
      ok(ctx.lab.plugin(ctx.name('loopback'), { command: 'ADD', containerId: id, netns, ifname: 'lo', config: lo() }), 'ADD');
      for (let i = 0; i < 2; i++) ok(ctx.lab.plugin(ctx.name('loopback'), { command: 'DEL', containerId: id, netns, ifname: 'lo', config: lo() }), `DEL ${i + 1}`);
      ctx.lab.deleteNetns(netns);
      ok(ctx.lab.plugin(ctx.name('loopback'), { command: 'DEL', containerId: id, netns, ifname: 'lo', config: lo() }), 'DEL after the netns is gone');
    },
  },
  {
    id: 'bridge-result',
    section: 'SPEC §5 ADD result',
    title: 'bridge ADD: the container interface has its sandbox and the address the result names',
    run(ctx) {
      const a = addBridge(ctx);
      const ifaces = a.result.interfaces ?? [];
      const ip = a.result.ips?.[0];
      check(ip?.interface !== undefined && ifaces[ip.interface]?.sandbox === a.netns, 'ips[0].interface does not point at an interface in the container sandbox');
      const shown = ctx.lab.ip(['-j', 'addr', 'show', 'dev', 'eth0'], a.netns);
      check(shown.includes(`"${a.v4}"`), `eth0 in the container lacks ${a.v4}`);
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'bridge-result-040',
    section: 'SPEC §5 result versions',
    title: 'bridge ADD with a 0.4.0 config prints the 0.4.0 shape (ips[].version)',
    run(ctx) {
      const a = addBridge(ctx, '0.4.0');
      check(a.result.ips?.every((i) => i.version === '4' || i.version === '6'), 'ips lack the 0.4.0 version field');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'bridge-check',
    section: 'SPEC §2 CHECK',
    title: 'CHECK passes after ADD and fails once the container lost its address',
    run(ctx) {
      const a = addBridge(ctx);
      const check1 = ctx.lab.plugin(ctx.name('bridge'), { command: 'CHECK', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...a.conf, prevResult: a.result } });
      ok(check1, 'CHECK after ADD');
      ctx.lab.ip(['addr', 'flush', 'dev', 'eth0'], a.netns);
      const check2 = ctx.lab.plugin(ctx.name('bridge'), { command: 'CHECK', containerId: a.id, netns: a.netns, ifname: 'eth0', config: { ...a.conf, prevResult: a.result } });
      check(check2.status !== 0, 'CHECK passed although the address is gone');
      ok(a.del(), 'DEL');
    },
  },
  {
    id: 'ipam-unique',
    section: 'SPEC §4 IPAM',
    title: 'two containers get distinct addresses and reach each other',
    run(ctx) {
      const a = addBridge(ctx);
      const b = addBridge(ctx);
      check(a.v4 !== b.v4, `both got ${a.v4}`);
      check(ctx.lab.exec('ping', ['-c1', '-W2', b.v4], { netns: a.netns }).status === 0, `${a.v4} cannot ping ${b.v4}`);
      ok(a.del(), 'DEL a');
      ok(b.del(), 'DEL b');
    },
  },
  {
    id: 'bridge-del-clean',
    section: 'SPEC §2 DEL',
    title: 'DEL removes the veth, the lease and the rules, and succeeds twice',
    run(ctx) {
      const before = hostVeths(ctx).length;
      const a = addBridge(ctx);
      ok(a.del(), 'DEL');
      ok(a.del(), 'second DEL');
      check(hostVeths(ctx).length === before, 'a host veth is left');
      check(natRulesNaming(ctx, a.v4).length === 0, `rules naming ${a.v4} are left`);
    },
  },
  {
    id: 'bridge-del-no-netns',
    section: 'SPEC §2 DEL',
    title: 'DEL after the netns is gone removes everything (no masquerade rule left)',
    run(ctx) {
      const a = addBridge(ctx);
      ctx.lab.deleteNetns(a.netns);
      ok(a.del(), 'DEL without the netns');
      check(natRulesNaming(ctx, a.v4).length === 0, `masquerade rules naming ${a.v4} are left`);
    },
  },
  {
    id: 'portmap-tcp',
    section: 'CONVENTIONS portMappings',
    title: 'a published TCP port is DNATed to the container (from the host itself)',
    run(ctx) {
      const a = addBridge(ctx, '1.0.0', { hairpinMode: true });
      const conf = { cniVersion: '1.0.0', name: 'conformance', type: ctx.name('portmap'), dataDir: `${ctx.lab.dir}/plugins`, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] }, prevResult: a.result };
      ok(ctx.lab.plugin(ctx.name('portmap'), { command: 'ADD', containerId: a.id, netns: a.netns, ifname: 'eth0', config: conf }), 'portmap ADD');
      const gw = (a.result.ips?.[0] as { gateway?: string } | undefined)?.gateway;
      // A listener in the container accepts the DNATed connection.
      const listen = ctx.lab.exec('bash', ['-c', `(timeout 4 nsenter --net=${a.netns} busybox nc -l -p 80 >/dev/null 2>&1 &) ; sleep 0.3; timeout 2 bash -c 'exec 3<>/dev/tcp/${gw}/18080 && echo connected'`]);
      check(listen.stdout.includes('connected'), `no connection through ${gw}:18080 (${listen.stderr.trim().slice(0, 120)})`);
      ok(ctx.lab.plugin(ctx.name('portmap'), { command: 'DEL', containerId: a.id, netns: a.netns, ifname: 'eth0', config: conf }), 'portmap DEL');
      ok(a.del(), 'bridge DEL');
    },
  },
];
