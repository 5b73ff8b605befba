// Accepts in FORWARD for hosts whose FORWARD policy drops (Docker, firewalld,
// `iptables -P FORWARD DROP`). A packet passes the forward hook only if every
// base chain on it accepts, so an accept in a table of cnikit's own does not
// override a drop elsewhere: it has to be in the table where the drop is.
// On Debian, Docker's and the admin's `iptables -P FORWARD DROP` live in
// iptables' filter table (iptables-nft: `table ip filter`), so the accepts
// go there, whatever backend cnikit's NAT rules use.
//
// Layout (filter table, per family), the reference firewall plugin's chains
// so that a conflist's admin rules keep working:
//   FORWARD      -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD        (first rule)
//   CNI-FORWARD  -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN (first rule; CNI-ADMIN never flushed)
//                -d ADDR -m conntrack --ctstate RELATED,ESTABLISHED ... -j ACCEPT        (firewall: replies)
//                -s ADDR ... -j ACCEPT                                                   (firewall: outbound)
//                -d ADDR -p P --dport CP -m conntrack --ctstate DNAT --ctorigdstport HP ... -j ACCEPT (portmap: published)
//                -s ADDR -p P --sport CP -m conntrack --ctstate DNAT --ctorigdstport HP ... -j ACCEPT (and its replies)
//   FORWARD      -m comment --comment "cnikit ingress policy" -j CNIK-INGRESS           (first rule, before CNI-FORWARD)
//   CNIK-INGRESS -d ADDR [! -i BRIDGE] -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ... -j DROP
// Every rule of an attachment carries the comment "cnikit:<owner>:<net>:<att>",
// so DEL and GC find them without any other record of the tables.
import { type IPAddr, formatIP } from '../ip/index.ts';
import { validateKey, validateBridge, networkTag, attachmentTag, hostPrefix } from './names.ts';
import { Script, restore, mustRestore, save, chainOf, asDelete, runPlans, FAMILIES, type Family, type Plan, type SavedTable } from './restore.ts';
import { FirewallError, type AttachmentKey, type Protocol } from './types.ts';

export const FORWARD_CHAIN = 'CNI-FORWARD';
export const DEFAULT_ADMIN_CHAIN = 'CNI-ADMIN';
export const INGRESS_CHAIN = 'CNIK-INGRESS';
const FORWARD_HOOK = `FORWARD -m comment --comment "CNI firewall plugin rules" -j ${FORWARD_CHAIN}`;
const INGRESS_HOOK = `FORWARD -m comment --comment "cnikit ingress policy" -j ${INGRESS_CHAIN}`;
const BUILTIN_CHAINS = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING', FORWARD_CHAIN, INGRESS_CHAIN]);

function adminHook(admin: string): string {
  return `${FORWARD_CHAIN} -m comment --comment "CNI firewall plugin admin overrides" -j ${admin}`;
}

export type IngressPolicy = 'open' | 'same-bridge' | 'isolated';
/** Whose rules: the firewall plugin's or portmap's (one attachment may have both, removed separately). */
export type ForwardOwner = 'fw' | 'pub';

export interface PublishedAccept {
  container: IPAddr;
  protocol: Protocol;
  containerPort: number;
  hostPort: number;
}

export interface ForwardRequest {
  owner: ForwardOwner;
  /** The chain evaluated first in CNI-FORWARD (firewall's iptablesAdminChainName); created if missing, never flushed. */
  adminChain?: string;
  /** Container addresses whose outbound traffic and replies are accepted. */
  addresses: IPAddr[];
  /** New connections DNAT'd to exactly these container ports (portmap's published ports). */
  published: PublishedAccept[];
  /** New connections into the addresses that are dropped before any accept. */
  ingress?: { policy: IngressPolicy; bridge: string };
}

// iptables chain names: letters, digits, '-', '_', '.', at most 28 characters.
const CHAIN_NAME = /^[A-Za-z0-9_.-]{1,28}$/;

export function validateAdminChain(name: string): void {
  if (!CHAIN_NAME.test(name) || BUILTIN_CHAINS.has(name.toUpperCase())) {
    throw new FirewallError(`iptables admin chain name "${name.replace(/[^\x20-\x7e]/g, '?')}" must be 1-28 letters, digits, '-', '_' or '.' and not a built-in or cnikit chain`);
  }
}

function tagOf(owner: ForwardOwner, key: AttachmentKey): string {
  return `cnikit:${owner}:${networkTag(key.network)}:${attachmentTag(key.containerId, key.ifname)}`;
}

interface FamilySpec {
  family: Family;
  /** Rules without -A/-D, in their chains. */
  accepts: string[];
  drops: string[];
}

function familySpecs(key: AttachmentKey, req: ForwardRequest): FamilySpec[] {
  const comment = `-m comment --comment "${tagOf(req.owner, key)}"`;
  const specs = new Map<Family, FamilySpec>();
  const of = (f: Family): FamilySpec => {
    let s = specs.get(f);
    if (!s) specs.set(f, (s = { family: f, accepts: [], drops: [] }));
    return s;
  };
  const ingress = req.ingress && req.ingress.policy !== 'open' ? req.ingress : undefined;
  if (ingress) validateBridge(ingress.bridge);
  for (const a of req.addresses) {
    const s = of(a.family);
    const host = hostPrefix(a);
    s.accepts.push(`${FORWARD_CHAIN} -d ${host} -m conntrack --ctstate RELATED,ESTABLISHED ${comment} -j ACCEPT`);
    s.accepts.push(`${FORWARD_CHAIN} -s ${host} ${comment} -j ACCEPT`);
    if (ingress) {
      const from = ingress.policy === 'same-bridge' ? ` ! -i ${ingress.bridge}` : '';
      s.drops.push(`${INGRESS_CHAIN} -d ${host}${from} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${comment} -j DROP`);
    }
  }
  for (const p of req.published) {
    if (!['tcp', 'udp', 'sctp'].includes(p.protocol)) throw new FirewallError(`published port protocol "${String(p.protocol)}" is not tcp, udp or sctp`);
    for (const n of [p.containerPort, p.hostPort]) {
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new FirewallError(`published port ${n} is outside 1-65535`);
    }
    // The DNAT'd connection both ways: its replies are not "outbound" of a container without firewall.
    const dnat = `-m conntrack --ctstate DNAT --ctorigdstport ${p.hostPort} ${comment} -j ACCEPT`;
    const host = hostPrefix(p.container);
    of(p.container.family).accepts.push(
      `${FORWARD_CHAIN} -d ${host} -p ${p.protocol} -m ${p.protocol} --dport ${p.containerPort} ${dnat}`,
      `${FORWARD_CHAIN} -s ${host} -p ${p.protocol} -m ${p.protocol} --sport ${p.containerPort} ${dnat}`,
    );
  }
  return [...specs.values()];
}

/** The saved rules of this owner and attachment, in the chains it uses. */
function taggedRules(filter: SavedTable, tag: string): string[] {
  const out: string[] = [];
  for (const r of filter.rules) {
    const c = chainOf(r);
    if ((c === FORWARD_CHAIN || c === INGRESS_CHAIN) && r.includes(`"${tag}"`)) out.push(r);
  }
  return out;
}

function addPlan(key: AttachmentKey, req: ForwardRequest, spec: FamilySpec): Plan {
  const tag = tagOf(req.owner, key);
  const admin = req.adminChain;
  const plan: Plan = {
    describe: `FORWARD accepts for ${formatIP(req.addresses[0] ?? req.published[0]!.container)} (${req.owner === 'fw' ? 'firewall' : 'published ports'})`,
    tables: ['filter'],
    fast(s) {
      // The checks fail when a chain or jump is missing (first use on a host, a
      // flushed FORWARD): the slow path then builds them.
      s.add('filter', `-C ${FORWARD_HOOK}`, plan);
      if (admin) s.add('filter', `-C ${adminHook(admin)}`, plan);
      if (spec.drops.length > 0) s.add('filter', `-C ${INGRESS_HOOK}`, plan);
      for (const d of spec.drops) s.add('filter', `-A ${d}`, plan);
      for (const a of spec.accepts) s.add('filter', `-A ${a}`, plan);
    },
    slow(s, state) {
      const filter = state.get('filter')!;
      if (!filter.chains.has(FORWARD_CHAIN)) s.once('filter', `-N ${FORWARD_CHAIN}`, plan);
      if (admin && !filter.chains.has(admin)) s.once('filter', `-N ${admin}`, plan);
      if (spec.drops.length > 0 && !filter.chains.has(INGRESS_CHAIN)) s.once('filter', `-N ${INGRESS_CHAIN}`, plan);
      if (!filter.rules.includes(`-A ${FORWARD_HOOK}`)) s.once('filter', `-I ${FORWARD_HOOK.replace(/^FORWARD /, 'FORWARD 1 ')}`, plan);
      if (admin && !filter.rules.includes(`-A ${adminHook(admin)}`)) {
        s.once('filter', `-I ${adminHook(admin).replace(`${FORWARD_CHAIN} `, `${FORWARD_CHAIN} 1 `)}`, plan);
      }
      // Inserted after CNI-FORWARD's jump, so it ends up before it: drops go first.
      if (spec.drops.length > 0 && !filter.rules.includes(`-A ${INGRESS_HOOK}`)) {
        s.once('filter', `-I ${INGRESS_HOOK.replace(/^FORWARD /, 'FORWARD 1 ')}`, plan);
      }
      // A repeated ADD replaces what the earlier one left.
      for (const r of taggedRules(filter, tag)) s.add('filter', asDelete(r), plan);
      for (const d of spec.drops) s.add('filter', `-A ${d}`, plan);
      for (const a of spec.accepts) s.add('filter', `-A ${a}`, plan);
    },
  };
  return plan;
}

/** Adds the accepts (and ingress drops) of one attachment: one iptables-restore per family. */
export function addForwardAccepts(key: AttachmentKey, req: ForwardRequest): void {
  validateKey(key);
  if (req.adminChain) validateAdminChain(req.adminChain);
  for (const spec of familySpecs(key, req)) runPlans(spec.family, [addPlan(key, req, spec)]);
}

/**
 * `cnikit firewall reload`: the accepts (and ingress drops) of every live
 * attachment, one iptables-restore per family. Always from the tables as they
 * are (no fast path): each attachment's tagged rules are replaced, so running
 * it again changes nothing.
 */
export function reloadForwardAccepts(items: ReadonlyArray<{ key: AttachmentKey; req: ForwardRequest }>): void {
  const plans = new Map<Family, Plan[]>();
  for (const { key, req } of items) {
    validateKey(key);
    if (req.adminChain) validateAdminChain(req.adminChain);
    for (const spec of familySpecs(key, req)) (plans.get(spec.family) ?? plans.set(spec.family, []).get(spec.family)!).push(addPlan(key, req, spec));
  }
  for (const [f, ps] of plans) runPlans(f, ps, { force: true });
}

/**
 * Removes exactly the rules addForwardAccepts(key, req) added, by spec (no
 * table read); when that fails (rules already gone, duplicates), every rule
 * carrying the attachment's tag is found and removed. Succeeds when nothing
 * is left. The chains and jumps stay: they are shared, and CNI-ADMIN is the
 * admin's.
 */
export function delForwardAccepts(key: AttachmentKey, req: ForwardRequest): void {
  validateKey(key);
  for (const spec of familySpecs(key, req)) {
    const s = new Script();
    for (const d of spec.drops) s.add('filter', `-D ${d}`);
    for (const a of spec.accepts) s.add('filter', `-D ${a}`);
    if (restore(spec.family, s).ok) continue;
    removeTagged(spec.family, tagOf(req.owner, key), `removing the FORWARD accepts of ${key.containerId}`);
  }
}

function removeTagged(f: Family, tag: string, what: string): void {
  const filter = savedFilter(f);
  if (!filter) return;
  const s = new Script();
  for (const r of taggedRules(filter, tag)) s.add('filter', asDelete(r));
  mustRestore(f, s, what);
}

/** The filter table, or undefined when the family's tools are missing (nothing of ours can be there). */
function savedFilter(f: Family): SavedTable | undefined {
  try {
    return save(f, 'filter');
  } catch (e) {
    if (e instanceof FirewallError && e.message.includes('not installed')) return undefined;
    throw e;
  }
}

/** Throws FirewallError naming the first rule that is missing. */
export function checkForwardAccepts(key: AttachmentKey, req: ForwardRequest): void {
  validateKey(key);
  for (const spec of familySpecs(key, req)) {
    const s = new Script<string>();
    s.add('filter', `-C ${FORWARD_HOOK}`, 'the jump from FORWARD to CNI-FORWARD');
    if (req.adminChain) s.add('filter', `-C ${adminHook(req.adminChain)}`, `the jump from CNI-FORWARD to ${req.adminChain}`);
    if (spec.drops.length > 0) s.add('filter', `-C ${INGRESS_HOOK}`, 'the jump from FORWARD to CNIK-INGRESS');
    for (const d of spec.drops) s.add('filter', `-C ${d}`, `rule "${d}"`);
    for (const a of spec.accepts) s.add('filter', `-C ${a}`, `rule "${a}"`);
    const r = restore(spec.family, s);
    if (!r.ok) throw new FirewallError(`${r.failed?.tag ?? 'a FORWARD accept'} is missing (IPv${spec.family})`, r.stderr);
  }
}

/** Removes the rules of `owner` for every attachment of `network` not in `keep`; returns the attachment tags removed. */
export function gcForwardAccepts(owner: ForwardOwner, network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): string[] {
  const keepTags = new Set(keep.map((k) => attachmentTag(k.containerId, k.ifname)));
  const prefix = `"cnikit:${owner}:${networkTag(network)}:`;
  const removed = new Set<string>();
  for (const f of FAMILIES) {
    const filter = savedFilter(f);
    if (!filter) continue;
    const s = new Script();
    for (const r of filter.rules) {
      const c = chainOf(r);
      if (c !== FORWARD_CHAIN && c !== INGRESS_CHAIN) continue;
      const at = r.indexOf(prefix);
      if (at < 0) continue;
      const att = r.slice(at + prefix.length, at + prefix.length + 16);
      if (keepTags.has(att)) continue;
      removed.add(att);
      s.add('filter', asDelete(r));
    }
    mustRestore(f, s, `FORWARD accept GC of network ${network}`);
  }
  return [...removed];
}
