// The network-namespace lab: a "container" is a named network namespace
// (/run/netns/NAME) attached to loopback and a network through the driver,
// with /etc/netns/NAME/{resolv.conf,hosts} and an optional background command.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Driver, parseList, type LoadedList, type RuntimeConf } from '../driver/index.ts';
import { writeFileAtomic } from '../lib/state/index.ts';
import { readFileIfExists, listDirIfExists } from '../lib/fs/index.ts';
import type { PortMapping, Result } from '../lib/spec/index.ts';
import { paths } from './paths.ts';
import type { BandwidthArgs } from './bandwidth.ts';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

export interface Container {
  name: string;
  network: string;
  netns: string;
  containerId: string;
  addresses: string[];
  ports: { hostIP: string; hostPort: number; containerPort: number; protocol: string }[];
  pid?: number;
  created: string;
  /** Networks connected later (`network connect`), each on its own interface. */
  extra?: { network: string; ifname: string; addresses: string[] }[];
}

/** The networks a container is attached to. */
export function networksOf(c: Container): string[] {
  return [c.network, ...(c.extra ?? []).map((e) => e.network)];
}

export interface RunOptions {
  network: string;
  ip?: string;
  publish: PortMapping[];
  dns: string[];
  dnsSearch: string[];
  addHosts: string[];
  hostname?: string;
  /** --network-alias: more names of the container on its network (user-defined networks). */
  aliases?: string[];
  /** --link NAME[:ALIAS]: Docker's legacy links, hosts entries for other containers. */
  links?: string[];
  command: string[];
  /** runtimeConfig.bandwidth (--bandwidth-in/--bandwidth-out); the network's list must have a plugin with the bandwidth capability. */
  bandwidth?: BandwidthArgs;
}

function containersDir(): string {
  return join(paths().stateDir, 'containers');
}

function statePath(name: string): string {
  return join(containersDir(), `${name}.json`);
}

export function getContainer(name: string): Container | undefined {
  const text = readFileIfExists(statePath(name));
  return text === undefined ? undefined : (JSON.parse(text) as Container);
}

export function listContainers(): Container[] {
  return listDirIfExists(containersDir())
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => {
      const c = getContainer(f.slice(0, -5));
      return c ? [c] : [];
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

// 1.0.0: the version every loopback plugin speaks (the reference's stops there).
const LOOPBACK: LoadedList = parseList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'cnikit-loopback', plugins: [{ type: 'loopback' }] })));

function driver(): Driver {
  const p = paths();
  return new Driver({ cniPath: p.cniPath, cacheDir: p.cacheDir, timeoutMs: 60_000, ...(p.execPlugins ? { inProcess: false } : {}) });
}

/** CNI_ARGS with the container's name, as Podman sends it (the dnsname plugin registers it). */
function nameArgs(name: string): [string, string][] {
  return [['IgnoreUnknown', '1'], ['K8S_POD_NAME', name]];
}

function resolvConf(servers: readonly string[], search: readonly string[]): string {
  return [...servers.map((d) => `nameserver ${d}`), ...(search.length ? [`search ${search.join(' ')}`] : [])].join('\n') + '\n';
}

/** Hosts entries of --link NAME[:ALIAS]: the linked container's address under the alias and its name. */
function linkEntries(links: readonly string[]): string[] {
  const out: string[] = [];
  for (const l of links) {
    const [target, alias] = l.split(':');
    const c = target ? getContainer(target) : undefined;
    if (!c) throw new Error(`--link ${l}: no container named ${target}`);
    const names = alias && alias !== target ? `${alias}\t${target}` : target!;
    for (const a of [...c.addresses, ...(c.extra ?? []).flatMap((e) => e.addresses)]) out.push(`${a.split('/')[0]}\t${names}`);
  }
  return out;
}

function writeEtc(name: string, o: RunOptions, addresses: string[], result: Result | undefined): void {
  const dir = join('/etc/netns', name);
  mkdirSync(dir, { recursive: true });
  // --dns wins; else the network's name server (dnsname's result), as Docker's embedded DNS.
  const servers = o.dns.length > 0 ? o.dns : result?.dns?.nameservers ?? [];
  const search = o.dnsSearch.length > 0 ? o.dnsSearch : o.dns.length > 0 ? [] : result?.dns?.search ?? [];
  writeFileSync(join(dir, 'resolv.conf'), resolvConf(servers, search));
  const host = o.hostname ?? name;
  const hosts = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost', ...addresses.map((a) => `${a.split('/')[0]}\t${host}`)];
  for (const h of o.addHosts) {
    const i = h.lastIndexOf(':');
    if (i <= 0) throw new Error(`--add-host ${h}: expected NAME:IP`);
    hosts.push(`${h.slice(i + 1)}\t${h.slice(0, i)}`);
  }
  hosts.push(...linkEntries(o.links ?? []));
  writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
}

/** Creates and attaches a container; on any failure, undoes what it did. */
export async function runContainer(name: string, network: LoadedList | 'none', o: RunOptions): Promise<Container> {
  if (!NAME.test(name)) throw new Error(`invalid container name "${name}"`);
  const netns = `/run/netns/${name}`;
  if (getContainer(name) || existsSync(netns)) throw new Error(`container ${name} already exists`);
  if (o.bandwidth && (network === 'none' || !network.conf.plugins.some((p) => p.capabilities?.bandwidth === true))) {
    throw new Error(`--bandwidth-in/--bandwidth-out: network ${network === 'none' ? 'none' : network.conf.name} has no plugin with the bandwidth capability (a kubenet-style list: bridge, host-local, portmap, bandwidth)`);
  }
  const containerId = `cnikit-${name}`;
  const d = driver();
  const undo: (() => unknown)[] = [];
  try {
    ip(['netns', 'add', name]);
    undo.push(() => ip(['netns', 'del', name]));
    const lo: RuntimeConf = { containerId, netns, ifname: 'lo' };
    await d.add(LOOPBACK, lo);
    undo.push(() => d.del(LOOPBACK, lo));
    let result: Result | undefined;
    if (network !== 'none') {
      const caps: Record<string, unknown> = {};
      if (o.publish.length > 0) caps.portMappings = o.publish;
      if (o.ip) caps.ips = [o.ip];
      if (o.bandwidth) caps.bandwidth = o.bandwidth;
      if (o.aliases?.length) caps.aliases = { [network.conf.name]: o.aliases };
      const rt: RuntimeConf = { containerId, netns, ifname: 'eth0', args: nameArgs(name), capabilityArgs: caps };
      result = await d.add(network, rt);
      undo.push(() => d.del(network, rt));
    }
    const addresses = (result?.ips ?? []).map((i) => i.address);
    // Undone also when writing fails half way (e.g. a --link to no container).
    undo.push(() => rmSync(join('/etc/netns', name), { recursive: true, force: true }));
    writeEtc(name, o, addresses, result);
    const c: Container = {
      name,
      network: network === 'none' ? 'none' : network.conf.name,
      netns,
      containerId,
      addresses,
      ports: ((result?.portMappings as Container['ports'] | undefined) ?? []),
      created: new Date().toISOString(),
    };
    if (o.command.length > 0) {
      const child = spawn('ip', ['netns', 'exec', name, ...o.command], { detached: true, stdio: 'ignore' });
      child.unref();
      if (child.pid) c.pid = child.pid;
    }
    writeFileAtomic(statePath(name), JSON.stringify(c, null, 2));
    return c;
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch {
        // keep undoing
      }
    }
    throw e;
  }
}

/** Runs a command inside the container; returns its exit status. */
export function execIn(name: string, command: string[]): number {
  if (!getContainer(name)) throw new Error(`no container named ${name}`);
  const r = spawnSync('ip', ['netns', 'exec', name, ...command], { stdio: 'inherit' });
  return r.status ?? 1;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** DEL through the driver (network, then loopback), then the namespace and files. */
export async function removeContainer(name: string, networkOf: (n: string) => LoadedList | undefined, force: boolean): Promise<void> {
  const c = getContainer(name);
  if (!c) throw new Error(`no container named ${name}`);
  if (alive(c.pid)) {
    if (!force) throw new Error(`container ${name} is running (pid ${c.pid}); use -f`);
    process.kill(-c.pid!, 'SIGKILL');
  }
  const d = driver();
  for (const e of c.extra ?? []) {
    const extra = networkOf(e.network);
    if (extra) await d.del(extra, { containerId: c.containerId, netns: c.netns, ifname: e.ifname });
  }
  const list = c.network === 'none' ? undefined : networkOf(c.network);
  if (list) await d.del(list, { containerId: c.containerId, netns: c.netns, ifname: 'eth0' });
  await d.del(LOOPBACK, { containerId: c.containerId, netns: c.netns, ifname: 'lo' });
  spawnSync('ip', ['netns', 'del', name]);
  rmSync(join('/etc/netns', name), { recursive: true, force: true });
  rmSync(statePath(name), { force: true });
}


/** `network connect`: one more interface (eth1, eth2, …) on another network. */
export async function connectContainer(name: string, list: LoadedList, ip?: string, aliases: string[] = []): Promise<{ ifname: string; addresses: string[] }> {
  const c = getContainer(name);
  if (!c) throw new Error(`no container named ${name}`);
  if (networksOf(c).includes(list.conf.name)) throw new Error(`container ${name} is already connected to ${list.conf.name}`);
  const used = new Set(['eth0', ...(c.extra ?? []).map((e) => e.ifname)]);
  let i = 1;
  while (used.has(`eth${i}`)) i++;
  const ifname = `eth${i}`;
  const caps: Record<string, unknown> = {};
  if (ip) caps.ips = [ip];
  if (aliases.length > 0) caps.aliases = { [list.conf.name]: aliases };
  const result = await driver().add(list, { containerId: c.containerId, netns: c.netns, ifname, args: nameArgs(name), capabilityArgs: caps });
  // A container without a name server yet (run on the default bridge) gets this network's.
  const resolv = join('/etc/netns', name, 'resolv.conf');
  const servers = result.dns?.nameservers ?? [];
  if (servers.length > 0 && !/^nameserver /m.test(readFileIfExists(resolv) ?? '')) writeFileSync(resolv, resolvConf(servers, result.dns?.search ?? []));
  const attached = { network: list.conf.name, ifname, addresses: (result.ips ?? []).map((x) => x.address) };
  c.extra = [...(c.extra ?? []), attached];
  writeFileAtomic(statePath(name), JSON.stringify(c, null, 2));
  return attached;
}

export async function disconnectContainer(name: string, list: LoadedList): Promise<void> {
  const c = getContainer(name);
  if (!c) throw new Error(`no container named ${name}`);
  const e = (c.extra ?? []).find((x) => x.network === list.conf.name);
  if (!e) {
    const why = c.network === list.conf.name ? ' (it is the network the container was run on; rm it instead)' : '';
    throw new Error(`container ${name} is not connected to ${list.conf.name}${why}`);
  }
  await driver().del(list, { containerId: c.containerId, netns: c.netns, ifname: e.ifname });
  c.extra = (c.extra ?? []).filter((x) => x !== e);
  writeFileAtomic(statePath(name), JSON.stringify(c, null, 2));
}
