// host-local IPAM: addresses from range sets, leased on disk under flock(2)
// in the reference's layout, released by container ID + ifname, and GC for
// the leases a crash left behind (the reference has none).
import type { HostLocalConf, Result, Attachment } from '../../lib/spec/index.ts';
import { validateHostLocalConf } from '../../lib/spec/validators.gen.js';
import { keysHostLocalConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { formatIP, type IPAddr } from '../../lib/ip/index.ts';
import { loadConfig, rangeSetText, DEFAULT_DATA_DIR } from './config.ts';
import { DiskStore, ownedBy } from './store.ts';
import { allocate, release, collectGarbage, exhaustedSet } from './allocator.ts';
import { readResolvConf } from './resolv.ts';

function owner(ctx: Context<HostLocalConf>) {
  return { containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

function add(ctx: Context<HostLocalConf>): Result {
  const conf = loadConfig(ctx.conf, ctx.inv);
  const dns = conf.resolvConf ? readResolvConf(conf.resolvConf) : undefined;
  const store = new DiskStore(conf.dataDir, conf.network);
  const made = store.locked(() => allocate(store, conf, owner(ctx)));
  const result: Result = {
    cniVersion: ctx.conf.cniVersion,
    ips: [],
  };
  for (const a of made) result.ips!.push({ address: `${formatIP(a.ip)}/${a.range.subnet.length}`, gateway: formatIP(a.range.gateway) });
  if (conf.routes.length > 0) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

function del(ctx: Context<HostLocalConf>): void {
  // Leases are found by owner: DEL reads only where they are, so ranges or
  // requested addresses it cannot parse do not stop a teardown.
  const store = new DiskStore(ctx.conf.ipam.dataDir ?? DEFAULT_DATA_DIR, ctx.conf.name);
  if (!store.exists()) return;
  store.locked(() => release(store, owner(ctx)));
}

function check(ctx: Context<HostLocalConf>): void {
  const conf = loadConfig(ctx.conf, ctx.inv);
  const store = new DiskStore(conf.dataDir, conf.network);
  const o = owner(ctx);
  const mine = store.exists() ? store.leases().filter((l) => ownedBy(l, o)) : [];
  if (mine.length === 0) {
    throw new CniError(ErrorCode.CheckFailed, `no address is leased to container ${o.containerId} (${o.ifname}) on network ${conf.network}`);
  }
}

function gc(ctx: Context<HostLocalConf>, valid: Attachment[]): void {
  const conf = loadConfig(ctx.conf, ctx.inv);
  const store = new DiskStore(conf.dataDir, conf.network);
  if (!store.exists()) return;
  const { removed, index } = store.locked(() => {
    store.sweepTemporaries();
    const removed = collectGarbage(store, valid.map((a) => ({ containerId: a.containerID, ifname: a.ifname })));
    return { removed, index: store.sweepIndex() };
  });
  if (index.dropped + index.added > 0) ctx.log.info(index, 'gc: owner index entries without a lease dropped, leases without an entry linked in');
  for (const l of removed) ctx.log.info({ ip: formatIP(l.ip), containerId: l.containerId, ifname: l.ifname }, 'gc: released a stale lease');
}

function status(ctx: Context<HostLocalConf>): void {
  const conf = loadConfig(ctx.conf, ctx.inv);
  const store = new DiskStore(conf.dataDir, conf.network);
  const problem = store.writable();
  if (problem) throw new CniError(ErrorCode.NotAvailable, `the lease store of network ${conf.network} is not writable: ${problem}`);
  // SPEC STATUS: "not available" while an ADD could not get an address.
  const leased: IPAddr[] = [];
  for (const l of store.leases()) leased.push(l.ip);
  const full = exhaustedSet(conf.rangeSets, leased);
  if (full) throw new CniError(ErrorCode.NotAvailable, `no free address left in range set ${rangeSetText(full)} of network ${conf.network}`);
}

export const hostLocalPlugin: Plugin<HostLocalConf> = {
  name: 'host-local',
  validate: validateHostLocalConf,
  keys: keysHostLocalConf,
  // IPAM does not enter the container's namespace; CNI_NETNS is only passed along.
  netns: 'any',
  add,
  check,
  del,
  gc,
  status,
};
