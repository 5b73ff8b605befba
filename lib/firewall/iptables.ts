// The iptables backend: one `iptables-restore --noflush` (ip6tables-restore
// for IPv6) transaction per family per operation.
//
// Layout (per family):
//   nat    POSTROUTING      -m comment --comment "cnikit masquerade" -j CNIK-POSTROUTING
//          CNIK-POSTROUTING -s ADDR/32 -m comment --comment "cnikit:NET:ATT ..." -j CNIK-A-<hash>   (per address)
//          CNIK-A-<hash>    -s ADDR -d SUBNET -j RETURN; (-s ADDR -d EXEMPT -j RETURN;) -d 224.0.0.0/4 -j RETURN; -j MASQUERADE
//   filter FORWARD          -m comment --comment "cnikit isolation" -j CNIK-FORWARD   (first rule)
//          CNIK-FORWARD     -i BR -m comment --comment "cnikit:br:TAG ..." -j CNIK-N-<bridge>-<policy>
//          CNIK-N-...       [-o BR -j DROP (icc=false)]; -o BR -j RETURN; -j CNIK-BRIDGES | CNIK-ISOLATED
//          CNIK-BRIDGES     -o BR -j DROP for every bridge of the suite (where isolated bridges may not go)
//          CNIK-ISOLATED    -o BR -j DROP for every isolated bridge (where no bridge may go)
//   plus the port-mapping chains of ./iptables-ports.ts.
//
// Costs: an ADD appends to existing chains and creates its own chain (`-N`,
// which also detects a repeated ADD); a DEL deletes its rules by exact spec.
// Neither reads the tables back. Only when a transaction fails (first use on
// a host, a repeated ADD, a changed policy, rules already gone) is a table
// read with iptables-save to compute the repair: that path is rare.
import { type IPAddr, networkOf, formatPrefix } from '../ip/index.ts';
import {
  validateKey, validateEntries, validatePolicy, validateBridge, networkTag, attachmentTag, bridgeTag, policyTag,
  attachmentChainTag, describeKey, multicastOf, hostPrefix,
} from './names.ts';
import {
  Script, restore, mustRestore, save, chainOf, asDelete, runPlans, mergeRemoved, FAMILIES, type Family, type Plan, type SavedTable, type Table,
} from './restore.ts';
import { liveOps } from './live.ts';
import { IptablesPorts } from './iptables-ports.ts';
import {
  FirewallError, type AttachmentKey, type Firewall, type MasqEntry, type NetworkPolicy, type PortMappingRequest,
  type RemovedAttachment, type SetupOp,
} from './types.ts';
import { parseIP } from '../ip/index.ts';

const MASQ_CHAIN = 'CNIK-POSTROUTING';
const MASQ_HOOK = `POSTROUTING -m comment --comment "cnikit masquerade" -j ${MASQ_CHAIN}`;
const FWD_CHAIN = 'CNIK-FORWARD';
const FWD_HOOK = `FORWARD -m comment --comment "cnikit isolation" -j ${FWD_CHAIN}`;
const BRIDGES_CHAIN = 'CNIK-BRIDGES';
const ISOLATED_CHAIN = 'CNIK-ISOLATED';

function byFamily<T extends { address: IPAddr }>(items: readonly T[]): Map<Family, T[]> {
  const m = new Map<Family, T[]>();
  for (const i of items) {
    const l = m.get(i.address.family) ?? [];
    l.push(i);
    m.set(i.address.family, l);
  }
  return m;
}

// ---- masquerade -----------------------------------------------------------

interface MasqSpec {
  chain: string;
  comment: string;
  dispatch: (e: MasqEntry) => string;
  body: string[];
}

function masqSpec(key: AttachmentKey, f: Family, entries: readonly MasqEntry[]): MasqSpec {
  const chain = `CNIK-A-${attachmentChainTag(key)}`;
  const comment = `cnikit:${networkTag(key.network)}:${attachmentTag(key.containerId, key.ifname)} ${describeKey(key)}`;
  const body = [
    ...entries.map((e) => `${chain} -s ${hostPrefix(e.address)} -d ${formatPrefix(networkOf(e.subnet))} -j RETURN`),
    ...entries.flatMap((e) => (e.exempt ?? []).filter((x) => x.ip.family === f).map((x) => `${chain} -s ${hostPrefix(e.address)} -d ${formatPrefix(networkOf(x))} -j RETURN`)),
    `${chain} -d ${multicastOf(f)} -j RETURN`,
    `${chain} -j MASQUERADE`,
  ];
  return { chain, comment, body, dispatch: (e) => `${MASQ_CHAIN} -s ${hostPrefix(e.address)} -m comment --comment "${comment}" -j ${chain}` };
}

function ensureMasqBase(s: Script<Plan>, nat: SavedTable, tag: Plan): void {
  if (!nat.chains.has(MASQ_CHAIN)) s.once('nat', `-N ${MASQ_CHAIN}`, tag);
  if (!nat.rules.includes(`-A ${MASQ_HOOK}`)) s.once('nat', `-A ${MASQ_HOOK}`, tag);
}

function addMasqPlan(key: AttachmentKey, f: Family, entries: readonly MasqEntry[]): Plan {
  const spec = masqSpec(key, f, entries);
  const plan: Plan = {
    describe: `masquerade for ${describeKey(key)}`,
    tables: ['nat'],
    fast(s) {
      // -N fails when the chain exists: a repeated ADD, repaired by the slow path.
      s.add('nat', `-N ${spec.chain}`, plan);
      for (const r of spec.body) s.add('nat', `-A ${r}`, plan);
      for (const e of entries) s.add('nat', `-A ${spec.dispatch(e)}`, plan);
    },
    slow(s, state) {
      const nat = state.get('nat')!;
      ensureMasqBase(s, nat, plan);
      // Replace whatever an earlier ADD of this attachment left.
      for (const r of nat.rules) if (chainOf(r) === MASQ_CHAIN && r.endsWith(` -j ${spec.chain}`)) s.add('nat', asDelete(r), plan);
      if (nat.chains.has(spec.chain)) s.declare('nat', spec.chain, plan);
      else s.add('nat', `-N ${spec.chain}`, plan);
      for (const r of spec.body) s.add('nat', `-A ${r}`, plan);
      for (const e of entries) s.add('nat', `-A ${spec.dispatch(e)}`, plan);
    },
  };
  return plan;
}

/**
 * Deletes by exact spec. A line that fails (its rule is already gone) is
 * dropped and the rest retried, so a DEL never reads the table; the chain is
 * declared first (create-or-flush) so that -X always has an empty chain.
 */
function delMasqFamily(key: AttachmentKey, f: Family, entries: readonly MasqEntry[]): boolean {
  const spec = masqSpec(key, f, entries);
  let script = new Script<'dispatch' | 'chain'>();
  script.declare('nat', spec.chain, 'chain');
  for (const e of entries) script.add('nat', `-D ${spec.dispatch(e)}`, 'dispatch');
  script.add('nat', `-X ${spec.chain}`, 'chain');
  let gone = false;
  for (let attempt = 0; attempt <= entries.length; attempt++) {
    const r = restore(f, script);
    // A rule already gone: was it only ours, or did a flush take the base chain too?
    if (r.ok) return gone && !save(f, 'nat').chains.has(MASQ_CHAIN);
    if (r.failed?.tag !== 'dispatch') break;
    gone = true;
    script = script.without(new Set([r.failed]));
  }
  // -X failed: the chain is still referenced by a rule this request did not
  // name (an address the caller no longer knows). Read the table and remove
  // every reference.
  const nat = save(f, 'nat');
  const s = new Script();
  for (const r of nat.rules) if (chainOf(r) === MASQ_CHAIN && r.endsWith(` -j ${spec.chain}`)) s.add('nat', asDelete(r));
  if (nat.chains.has(spec.chain)) {
    s.declare('nat', spec.chain);
    s.add('nat', `-X ${spec.chain}`);
  }
  mustRestore(f, s, `removing masquerade for ${describeKey(key)}`);
  return false;
}

/** Whether a flush took cnikit's base chains or hooks from the tables read. */
function baseBroken(state: ReadonlyMap<Table, SavedTable>): boolean {
  const nat = state.get('nat');
  if (nat && (!nat.chains.has(MASQ_CHAIN) || !nat.rules.includes(`-A ${MASQ_HOOK}`))) return true;
  const filter = state.get('filter');
  if (filter && [FWD_CHAIN, BRIDGES_CHAIN, ISOLATED_CHAIN].some((c) => !filter.chains.has(c))) return true;
  return filter !== undefined && !filter.rules.includes(`-A ${FWD_HOOK}`);
}

/** Whether two operations are for the same attachment or bridge (the one a live set must not repeat). */
function sameTarget(a: SetupOp, b: SetupOp): boolean {
  if (a.kind === 'network') return b.kind === 'network' && a.policy.bridge === b.policy.bridge;
  if (b.kind === 'network' || a.kind !== b.kind) return false;
  return a.key.network === b.key.network && a.key.containerId === b.key.containerId && a.key.ifname === b.key.ifname;
}

/** Runs `-C` lines; on the first missing one throws naming what it is. */
function checkLines(f: Family, lines: ReadonlyArray<{ table: Table; text: string; what: string }>): void {
  const s = new Script<string>();
  for (const l of lines) s.add(l.table, `-C ${l.text}`, l.what);
  const r = restore(f, s);
  if (r.ok) return;
  throw new FirewallError(`${r.failed?.tag ?? 'a firewall rule'} is missing (IPv${f})`, r.stderr);
}

function gcMasqFamily(f: Family, network: string, keep: ReadonlySet<string>): RemovedAttachment[] {
  const nat = save(f, 'nat');
  const net = networkTag(network);
  const removed = new Map<string, RemovedAttachment & { chain: string }>();
  const s = new Script();
  const re = new RegExp(`--comment "?cnikit:${net}:([0-9a-f]{16})`);
  for (const r of nat.rules) {
    if (chainOf(r) !== MASQ_CHAIN) continue;
    const m = re.exec(r);
    if (!m || keep.has(m[1]!)) continue;
    const chain = / -j (CNIK-A-[0-9a-f]+)$/.exec(r)?.[1];
    const src = / -s ([^ /]+)/.exec(r)?.[1];
    if (!chain) continue;
    const entry = removed.get(m[1]!) ?? { tag: m[1]!, addresses: [], chain };
    if (src) entry.addresses.push(parseIP(src));
    removed.set(m[1]!, entry);
    s.add('nat', asDelete(r));
  }
  for (const e of removed.values()) {
    if (!nat.chains.has(e.chain)) continue;
    s.declare('nat', e.chain);
    s.add('nat', `-X ${e.chain}`);
  }
  mustRestore(f, s, `masquerade GC of network ${network}`);
  return [...removed.values()].map(({ tag, addresses }) => ({ tag, addresses }));
}

// ---- per-bridge policy ----------------------------------------------------

function policyFamilies(p: NetworkPolicy): Family[] {
  const fams = new Set(p.subnets.map((s) => s.ip.family));
  return fams.size === 0 ? [...FAMILIES] : FAMILIES.filter((f) => fams.has(f));
}

interface NetSpec {
  chain: string;
  chainPrefix: string;
  tagText: string;
  body: string[];
  dispatch: string;
  members: string[];
}

function netSpec(p: NetworkPolicy): NetSpec {
  const hb = bridgeTag(p.bridge);
  const chainPrefix = `CNIK-N-${hb.slice(0, 12)}-`;
  const chain = chainPrefix + policyTag(p);
  const tagText = `cnikit:br:${hb}`;
  const comment = `-m comment --comment "${tagText} bridge=${p.bridge}"`;
  const body = [
    ...(p.icc ? [] : [`${chain} -o ${p.bridge} -j DROP`]),
    `${chain} -o ${p.bridge} -j RETURN`,
    `${chain} -j ${p.isolate ? BRIDGES_CHAIN : ISOLATED_CHAIN}`,
  ];
  const members = [`${BRIDGES_CHAIN} -o ${p.bridge} ${comment} -j DROP`];
  if (p.isolate) members.push(`${ISOLATED_CHAIN} -o ${p.bridge} ${comment} -j DROP`);
  return { chain, chainPrefix, tagText, body, members, dispatch: `${FWD_CHAIN} -i ${p.bridge} ${comment} -j ${chain}` };
}

/** Deletes every rule tagged for the bridge and its chains other than `keepChain`. */
function removeBridgeLines(s: Script<Plan>, filter: SavedTable, spec: Pick<NetSpec, 'tagText' | 'chainPrefix'>, keepChain: string | undefined, tag?: Plan): boolean {
  let any = false;
  for (const r of filter.rules) {
    if (r.includes(`"${spec.tagText} `) || r.includes(`${spec.tagText} `)) {
      if ([FWD_CHAIN, BRIDGES_CHAIN, ISOLATED_CHAIN].includes(chainOf(r))) {
        s.add('filter', asDelete(r), tag);
        any = true;
      }
    }
  }
  for (const c of filter.chains) {
    if (c.startsWith(spec.chainPrefix) && c !== keepChain) {
      s.add('filter', `-F ${c}`, tag);
      s.add('filter', `-X ${c}`, tag);
      any = true;
    }
  }
  return any;
}

function networkPlan(p: NetworkPolicy): Plan {
  const spec = netSpec(p);
  const plan: Plan = {
    describe: `isolation rules for bridge ${p.bridge}`,
    tables: ['filter'],
    fast(s) {
      // The dispatch names the policy's chain: present means this policy is in place.
      s.add('filter', `-C ${spec.dispatch}`, plan);
    },
    slow(s, state) {
      const filter = state.get('filter')!;
      for (const c of [FWD_CHAIN, BRIDGES_CHAIN, ISOLATED_CHAIN]) if (!filter.chains.has(c)) s.once('filter', `-N ${c}`, plan);
      if (!filter.rules.includes(`-A ${FWD_HOOK}`)) s.once('filter', `-I ${FWD_HOOK.replace(/^FORWARD /, 'FORWARD 1 ')}`, plan);
      removeBridgeLines(s, filter, spec, spec.chain, plan);
      if (filter.chains.has(spec.chain)) s.declare('filter', spec.chain, plan);
      else s.add('filter', `-N ${spec.chain}`, plan);
      for (const r of spec.body) s.add('filter', `-A ${r}`, plan);
      s.add('filter', `-A ${spec.dispatch}`, plan);
      for (const m of spec.members) s.add('filter', `-A ${m}`, plan);
    },
  };
  return plan;
}

// ---- the backend ----------------------------------------------------------

export class IptablesFirewall implements Firewall {
  readonly backend = 'iptables' as const;
  private readonly ports = new IptablesPorts();

  addMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    this.setup([{ kind: 'masquerade', key, entries }]);
  }

  delMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    validateKey(key);
    validateEntries(entries);
    let broken = false;
    for (const [f, es] of byFamily(entries)) if (delMasqFamily(key, f, es)) broken = true;
    if (broken) this.rebuildAfterFlush(key);
  }

  /** After a DEL found the base chains gone: the other live attachments get their rules back. */
  private rebuildAfterFlush(exclude: AttachmentKey): void {
    const live = liveOps('iptables', exclude);
    if (live.length > 0) this.reload(live);
  }

  checkMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    validateKey(key);
    validateEntries(entries);
    for (const [f, es] of byFamily(entries)) {
      const spec = masqSpec(key, f, es);
      checkLines(f, [
        { table: 'nat', text: MASQ_HOOK, what: 'the jump from POSTROUTING to CNIK-POSTROUTING' },
        ...es.map((e) => ({ table: 'nat' as const, text: spec.dispatch(e), what: `the masquerade rule for ${hostPrefix(e.address)} (${describeKey(key)})` })),
        ...spec.body.map((b) => ({ table: 'nat' as const, text: b, what: `rule "${b}"` })),
      ]);
    }
  }

  gcMasquerade(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[] {
    const keepTags = new Set(keep.map((k) => attachmentTag(k.containerId, k.ifname)));
    return mergeRemoved(FAMILIES.map((f) => gcMasqFamily(f, network, keepTags)));
  }

  ensureNetwork(policy: NetworkPolicy): void {
    this.setup([{ kind: 'network', policy }]);
  }

  checkNetwork(policy: NetworkPolicy): void {
    validatePolicy(policy);
    const spec = netSpec(policy);
    for (const f of policyFamilies(policy)) {
      checkLines(f, [
        { table: 'filter', text: FWD_HOOK, what: 'the jump from FORWARD to CNIK-FORWARD' },
        { table: 'filter', text: spec.dispatch, what: `the dispatch of bridge ${policy.bridge} to ${spec.chain}` },
        ...spec.body.map((b) => ({ table: 'filter' as const, text: b, what: `rule "${b}"` })),
        ...spec.members.map((m) => ({ table: 'filter' as const, text: m, what: `rule "${m}"` })),
      ]);
    }
  }

  removeNetwork(bridge: string): void {
    validateBridge(bridge);
    const hb = bridgeTag(bridge);
    for (const f of FAMILIES) {
      const s = new Script<Plan>();
      if (removeBridgeLines(s, save(f, 'filter'), { tagText: `cnikit:br:${hb}`, chainPrefix: `CNIK-N-${hb.slice(0, 12)}-` }, undefined)) {
        mustRestore(f, s, `removing the rules of bridge ${bridge}`);
      }
    }
  }

  addPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    this.setup([{ kind: 'ports', key, request }]);
  }

  delPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    if (this.ports.del(key, request)) this.rebuildAfterFlush(key);
  }

  checkPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    this.ports.check(key, request);
  }

  gcPortMappings(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[] {
    return this.ports.gc(network, keep);
  }

  setup(ops: readonly SetupOp[]): void {
    const plans = this.plans(ops);
    // Only read on the repair path: when a flush took the base chains, every live attachment comes back with this one.
    const more = (f: Family) => (state: ReadonlyMap<Table, SavedTable>): Plan[] => {
      if (!baseBroken(state)) return [];
      const live = liveOps('iptables').filter((l) => !ops.some((o) => sameTarget(o, l)));
      return this.plans(live).get(f) ?? [];
    };
    for (const [f, ps] of plans) runPlans(f, ps, { more: more(f) });
  }

  reload(ops: readonly SetupOp[]): void {
    for (const [f, ps] of this.plans(ops)) runPlans(f, ps, { force: true });
  }

  private plans(ops: readonly SetupOp[]): Map<Family, Plan[]> {
    const plans = new Map<Family, Plan[]>(FAMILIES.map((f) => [f, []]));
    for (const op of ops) {
      switch (op.kind) {
        case 'network':
          validatePolicy(op.policy);
          for (const f of policyFamilies(op.policy)) plans.get(f)!.push(networkPlan(op.policy));
          break;
        case 'masquerade':
          validateKey(op.key);
          validateEntries(op.entries);
          for (const [f, es] of byFamily(op.entries)) plans.get(f)!.push(addMasqPlan(op.key, f, es));
          break;
        case 'ports':
          for (const [f, ps] of this.ports.addPlans(op.key, op.request)) plans.get(f)!.push(...ps);
          break;
      }
    }
    return plans;
  }
}

