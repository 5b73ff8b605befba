// Container name resolution, chained after bridge: ADD records the
// container's name, its aliases on this network and name.domainName with
// its addresses, and makes sure the one resident responder of this host
// network namespace runs (dns/); the result tells the runtime to use the
// network's gateway as nameserver. Config-compatible with Podman's dnsname.
// DEL and GC work from the records alone.
import type { DnsnameConf, Result, Attachment } from '../../lib/spec/index.ts';
import { validateDnsnameConf } from '../../lib/spec/validators.gen.js';
import { keysDnsnameConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { dnsRoot, writeRecord, readRecord, removeRecord, listRecords, type NameRecord } from '../../dns/records.ts';
import { ensureResponder, responderRunning, cnikitExecutable } from '../../dns/start.ts';
import { checkDnsName } from '../../dns/names.ts';

/** Podman's default, which its conflists also spell out. */
export const DEFAULT_DOMAIN = 'dns.podman';

function root(conf: DnsnameConf): string {
  return dnsRoot(conf.dataDir);
}

/** The container's name: CNI_ARGS K8S_POD_NAME (Podman, containerd), else args.cni.name. */
function containerName(ctx: Context<DnsnameConf>): string | undefined {
  const fromArgs = ctx.inv.args.get('K8S_POD_NAME');
  if (fromArgs) return fromArgs;
  const cni = (ctx.conf.args as { cni?: { name?: unknown } } | undefined)?.cni;
  return typeof cni?.name === 'string' && cni.name !== '' ? cni.name : undefined;
}

function wantedNames(ctx: Context<DnsnameConf>): string[] {
  const out: string[] = [];
  const push = (n: string, field: string) => {
    const problem = checkDnsName(n);
    if (problem) throw new CniError(ErrorCode.InvalidConfig, `${field} ${JSON.stringify(n)} is not a DNS name: ${problem}`);
    const lower = n.toLowerCase();
    if (!out.includes(lower)) out.push(lower);
  };
  const name = containerName(ctx);
  if (name !== undefined) push(name, 'the container name (CNI_ARGS K8S_POD_NAME)');
  const aliases = ctx.conf.runtimeConfig?.aliases?.[ctx.conf.name] ?? [];
  for (const a of aliases) push(a, `runtimeConfig.aliases["${ctx.conf.name}"]`);
  return out;
}

/** Addresses on the container's side (ips pointing at a sandbox interface, or at none). */
function containerIps(prev: Result): { ips: string[]; gateways: string[] } {
  const ips: string[] = [];
  const gateways: string[] = [];
  for (const ip of prev.ips ?? []) {
    const itf = ip.interface === undefined ? undefined : prev.interfaces?.[ip.interface];
    if (itf !== undefined && !itf.sandbox) continue;
    ips.push(ip.address);
    if (ip.gateway && !gateways.includes(ip.gateway)) gateways.push(ip.gateway);
  }
  return { ips, gateways };
}

function hasDefaultRoute(prev: Result): boolean {
  for (const r of prev.routes ?? []) if (r.dst === '0.0.0.0/0' || r.dst === '::/0') return true;
  return false;
}

function add(ctx: Context<DnsnameConf>): Result {
  const prev = ctx.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'dnsname must be chained after a plugin that gives the container an address (there is no prevResult)');
  const domainName = (ctx.conf.domainName ?? DEFAULT_DOMAIN).toLowerCase();
  const names = wantedNames(ctx);
  const { ips, gateways } = containerIps(prev);
  if (gateways.length === 0) throw new CniError(ErrorCode.InvalidConfig, 'the prevResult has no gateway address for the name server to listen on (ips[].gateway)');
  const executable = cnikitExecutable();
  if (!executable) throw new CniError(ErrorCode.InvalidEnvironment, 'cannot tell which executable serves names: set CNIKIT_EXECUTABLE to cnikit\'s executable');
  const r: NameRecord = {
    network: ctx.conf.name,
    containerId: ctx.inv.containerId,
    ifname: ctx.inv.ifname,
    names,
    domainName,
    ips,
    gateways,
    internal: ctx.conf.internal ?? !hasDefaultRoute(prev),
  };
  const dir = root(ctx.conf);
  // The record first: a responder that starts (or reloads) now finds it.
  writeRecord(dir, r);
  try {
    if (ensureResponder(dir, executable)) ctx.log.info({ dir }, 'started the name responder');
  } catch (e) {
    removeRecord(dir, r.network, r.containerId, r.ifname);
    throw new CniError(ErrorCode.Internal, `cannot start the name responder: ${(e as Error).message}`);
  }
  return { ...prev, dns: { ...prev.dns, nameservers: gateways, search: [domainName] } };
}

function check(ctx: Context<DnsnameConf>): void {
  const r = readRecord(root(ctx.conf), ctx.conf.name, ctx.inv.containerId, ctx.inv.ifname);
  if (!r) throw new CniError(ErrorCode.CheckFailed, `no name record of container ${ctx.inv.containerId} (${ctx.inv.ifname}) on network ${ctx.conf.name}`);
  if (ctx.prevResult) {
    const { ips } = containerIps(ctx.prevResult);
    if (ips.join(',') !== r.ips.join(',')) throw new CniError(ErrorCode.CheckFailed, `the name record holds ${r.ips.join(', ')}, the prevResult ${ips.join(', ')}`);
  }
  if (!responderRunning(root(ctx.conf))) throw new CniError(ErrorCode.CheckFailed, 'the name responder is not running');
}

function del(ctx: Context<DnsnameConf>): void {
  // The responder sees the record go (inotify) and exits after the last one.
  removeRecord(root(ctx.conf), ctx.conf.name, ctx.inv.containerId, ctx.inv.ifname);
}

function gc(ctx: Context<DnsnameConf>, valid: Attachment[]): void {
  const keep = new Set<string>();
  for (const a of valid) keep.add(`${a.containerID}\0${a.ifname}`);
  const dir = root(ctx.conf);
  for (const r of listRecords(dir, ctx.conf.name)) {
    if (!keep.has(`${r.containerId}\0${r.ifname}`)) removeRecord(dir, r.network, r.containerId, r.ifname);
  }
}

export const dnsnamePlugin: Plugin<DnsnameConf> = {
  name: 'dnsname',
  validate: validateDnsnameConf,
  keys: keysDnsnameConf,
  add,
  check,
  del,
  gc,
  status: () => undefined,
};
