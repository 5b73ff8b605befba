// The firewall meta plugin (reference plugins/meta/firewall), chained after
// bridge: lets the container's traffic through a host whose FORWARD policy
// drops, and applies an ingress policy. It changes nothing in the container,
// so its result is the prevResult. DEL works from the plugin's records.
import type { FirewallConf, Result, Attachment } from '../../lib/spec/index.ts';
import { validateFirewallConf } from '../../lib/spec/validators.gen.js';
import { keysFirewallConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { iptablesUsable, FirewallError, type AttachmentKey } from '../../lib/firewall/index.ts';
import {
  addForwardAccepts, delForwardAccepts, checkForwardAccepts, gcForwardAccepts, DEFAULT_ADMIN_CHAIN, validateAdminChain,
  type ForwardRequest, type IngressPolicy,
} from '../../lib/firewall/forward.ts';
import { addNftIngress, delNftIngress, checkNftIngress } from '../../lib/firewall/ingress-nft.ts';
import { AttachmentStore, DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import { parseIP, parsePrefix, formatIP, type IPAddr } from '../../lib/ip/index.ts';
import { firewalldAnswers } from './firewalld.ts';
import { requestOf, type FirewallRecord } from './records.ts';

export type { FirewallRecord } from './records.ts';

const PLUGIN = 'firewall';


function store(conf: FirewallConf, network = conf.name): AttachmentStore<FirewallRecord> {
  return new AttachmentStore<FirewallRecord>(conf.dataDir ?? DEFAULT_DATA_DIR, PLUGIN, network);
}

function keyOf(ctx: Context<FirewallConf>): AttachmentKey {
  return { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

function policyOf(conf: FirewallConf): IngressPolicy {
  const p = conf.ingressPolicy;
  return p === undefined || p === '' ? 'open' : p;
}

function adminChainOf(conf: FirewallConf): string {
  const name = conf.iptablesAdminChainName || DEFAULT_ADMIN_CHAIN;
  try {
    validateAdminChain(name);
  } catch (e) {
    throw new CniError(ErrorCode.InvalidConfig, `invalid iptablesAdminChainName: ${(e as Error).message}`);
  }
  return name;
}

/**
 * The backend as the reference picks it: firewalld when asked for (and only if
 * its D-Bus service answers), else iptables when usable, else nftables.
 */
function backendOf(conf: FirewallConf): 'iptables' | 'nftables' {
  switch (conf.backend) {
    case 'iptables':
      return 'iptables';
    case 'nftables':
      return 'nftables';
    case 'firewalld':
      throw new CniError(
        ErrorCode.UnsupportedField,
        firewalldAnswers()
          ? 'backend "firewalld": firewalld answers on D-Bus, but cnikit does not drive firewalld; use backend "iptables" or "nftables"'
          : 'backend "firewalld": firewalld does not answer on the system D-Bus (org.fedoraproject.FirewallD1); use backend "iptables" or "nftables"',
        'field backend',
      );
    default:
      return iptablesUsable() ? 'iptables' : 'nftables';
  }
}

function addressesOf(prev: Result): IPAddr[] {
  const out: IPAddr[] = [];
  for (const ip of prev.ips ?? []) out.push(parsePrefix(ip.address).ip);
  return out;
}


/** Removes everything the record says was added; succeeds when it is already gone. */
function undo(r: FirewallRecord): void {
  const req = requestOf(r);
  if (r.accepts) delForwardAccepts(r, req);
  if (r.backend === 'nftables' && r.bridge) delNftIngress(r.ingressPolicy, r.bridge, req.addresses);
}

function apply(r: FirewallRecord): void {
  const req = requestOf(r);
  if (r.accepts) addForwardAccepts(r, req);
  if (r.backend === 'nftables' && r.bridge) addNftIngress(r.ingressPolicy, r.bridge, req.addresses);
}

function add(ctx: Context<FirewallConf>): Result {
  const prev = ctx.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'firewall must be chained after a plugin that gives the container an address (there is no prevResult)');
  const backend = backendOf(ctx.conf);
  const policy = policyOf(ctx.conf);
  const bridge = prev.interfaces?.[0]?.name;
  if (policy !== 'open' && !bridge) {
    throw new CniError(ErrorCode.InvalidConfig, `ingressPolicy "${policy}" needs the bridge as the prevResult's first interface: chain firewall after bridge`);
  }
  const addresses = addressesOf(prev);
  if (addresses.length === 0) return prev;
  const accepts = backend === 'iptables' || iptablesUsable();
  const key = keyOf(ctx);
  const record: FirewallRecord = {
    ...key,
    backend,
    addresses: addresses.map(formatIP),
    adminChain: adminChainOf(ctx.conf),
    ingressPolicy: policy,
    ...(policy !== 'open' && bridge ? { bridge } : {}),
    accepts,
  };
  const records = store(ctx.conf);
  // A repeated ADD: what the earlier one made goes first.
  const earlier = records.read(key);
  if (earlier) undo(earlier);
  // Record first: a crash after the rules leaves something DEL and GC can find.
  records.write(record);
  try {
    apply(record);
  } catch (e) {
    try {
      undo(record);
    } finally {
      records.remove(key);
    }
    throw e;
  }
  return prev;
}

function del(ctx: Context<FirewallConf>): void {
  const key = keyOf(ctx);
  const records = store(ctx.conf);
  const record = records.read(key);
  if (record) {
    undo(record);
    records.remove(key);
    return;
  }
  // No record (never added, or the data dir was lost): what the prevResult still tells.
  const prev = ctx.prevResult;
  if (!prev) return;
  const addresses = addressesOf(prev);
  if (addresses.length === 0 || !iptablesUsable()) return;
  delForwardAccepts(key, { owner: 'fw', addresses, published: [] });
}

function check(ctx: Context<FirewallConf>): void {
  if (!ctx.prevResult) throw new CniError(ErrorCode.InvalidConfig, 'firewall CHECK needs the prevResult');
  if (addressesOf(ctx.prevResult).length === 0) return;
  const record = store(ctx.conf).read(keyOf(ctx));
  if (!record) throw new CniError(ErrorCode.CheckFailed, `no firewall rules were added for container ${ctx.inv.containerId} (${ctx.inv.ifname})`);
  try {
    const req = requestOf(record);
    if (record.accepts) checkForwardAccepts(record, req);
    if (record.backend === 'nftables' && record.bridge) checkNftIngress(record.ingressPolicy, record.bridge, req.addresses);
  } catch (e) {
    if (e instanceof FirewallError) throw new CniError(ErrorCode.CheckFailed, e.message);
    throw e;
  }
}

function gc(ctx: Context<FirewallConf>, valid: Attachment[]): void {
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  const records = store(ctx.conf);
  records.sweepEmpty();
  for (const r of records.list()) {
    if (keep.has(`${r.containerId}\0${r.ifname}`)) continue;
    undo(r);
    records.remove(r);
  }
  // Rules whose record was lost.
  if (iptablesUsable()) gcForwardAccepts('fw', ctx.conf.name, valid.map((a) => ({ containerId: a.containerID, ifname: a.ifname })));
}

function status(ctx: Context<FirewallConf>): void {
  backendOf(ctx.conf);
}

export const firewallPlugin: Plugin<FirewallConf> = {
  name: PLUGIN,
  validate: validateFirewallConf,
  keys: keysFirewallConf,
  add,
  check,
  del,
  gc,
  status,
};
