// The nftables backend: one `nft -f -` transaction per operation, in one
// `inet` table for both families.
//
// Layout (table inet cnikit):
//   chain postrouting  nat/srcnat:   ct status dnat ip daddr vmap @portsnat4; (ip6 …@portsnat6)
//                                    ip saddr vmap @masq4; ip6 saddr vmap @masq6
//   chain prerouting   nat/dstnat:   fib daddr type local jump hostports
//   chain output       nat/-100:     fib daddr type local jump hostports
//   chain hostports                  dnat ip to ip daddr . meta l4proto . th dport map @ports4ip
//                                    dnat ip to meta l4proto . th dport map @ports4   (and the ip6 pair)
//   chain forward      filter:       iifname vmap @net
//   map masq4/6        container address → goto masq-<subnet>[-<exempt>] (chain: ip daddr != { SUBNET, EXEMPT…, 224.0.0.0/4 } masquerade)
//   map masqowner4/6   container address → owner tag (network and attachment hashes as an IPv6 value)
//   map ports4/6       proto . host port → container address . port            (any host address)
//   map ports4ip/6ip   host address . proto . host port → container address . port
//   map portowner4/6   container address → owner tag
//   map portsnat4/6    container address → goto psnat-<subnet> (ip saddr { SUBNET, 127.0.0.0/8 } masquerade) | goto pmasqall
//   set bridges, isolated; map net  bridge → jump net-<bridge>-<policy>
//
// A container is only map elements, so an ADD or DEL costs the same with 10
// or 10,000 containers, and matching a connection is one hash lookup, not a
// walk over rules. Ownership: an address can move from a dead attachment to
// a new one before the old one's DEL arrives; every DEL therefore starts with
// `add element <owner map> { ADDR : OWN-TAG }`, which the kernel refuses
// (EEXIST) when the element holds another owner's tag — and then the DEL
// leaves that address alone. Re-adding an identical element is a no-op, so
// ADD is idempotent.
import { type Prefix, type IPAddr, formatIP, formatPrefix, networkOf, parseIP } from '../ip/index.ts';
import {
  validateKey, validateEntries, validatePolicy, validateBridge, networkTag, attachmentTag, bridgeTag, policyTag,
  subnetTag, describeKey, multicastOf, exemptTag,
} from './names.ts';
import {
  TABLE, nftRun, listChains, listElements, getElements, normElement, type NftLine, type NftOutcome, type ChainText,
} from './nft.ts';
import { applyBatch, deleteUnusedChains, BatchUnsupported, type ElemChange, type Atom, type ChainChange } from './nfnetlink.ts';
import { encodeRule } from './nft-rules.ts';
import { flattenPorts, describeMapping, localhostOf } from './ports.ts';
import { liveOps } from './live.ts';
import {
  FirewallError, type AttachmentKey, type Firewall, type MasqEntry, type NetworkPolicy, type PortMappingRequest,
  type RemovedAttachment, type SetupOp,
} from './types.ts';

const SETS: ReadonlyArray<readonly [name: string, type: string]> = [
  ['masq4', 'ipv4_addr : verdict'],
  ['masq6', 'ipv6_addr : verdict'],
  ['masqowner4', 'ipv4_addr : ipv6_addr'],
  ['masqowner6', 'ipv6_addr : ipv6_addr'],
  ['ports4', 'inet_proto . inet_service : ipv4_addr . inet_service'],
  ['ports4ip', 'ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service'],
  ['ports6', 'inet_proto . inet_service : ipv6_addr . inet_service'],
  ['ports6ip', 'ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service'],
  ['portowner4', 'ipv4_addr : ipv6_addr'],
  ['portowner6', 'ipv6_addr : ipv6_addr'],
  ['portsnat4', 'ipv4_addr : verdict'],
  ['portsnat6', 'ipv6_addr : verdict'],
  ['bridges', 'ifname'],
  ['isolated', 'ifname'],
  ['net', 'ifname : verdict'],
];

const SET_TYPES: ReadonlyMap<string, string> = new Map(SETS);
const TABLE_NAME = TABLE.split(' ')[1]!;
// Past this, one ack per element might not fit the socket's receive buffer.
const MAX_NETLINK_BATCH = 256;

/**
 * Runs a transaction: element-only ones (every steady-state ADD and DEL) over
 * nfnetlink, the rest through `nft -f`, with the same outcome either way.
 */
function apply<T>(lines: readonly NftLine<T>[]): NftOutcome<T> {
  // Loops rather than array builtins here and in the other per-ADD/DEL paths:
  // each builtin's first use costs a plugin exec tens of µs under Bun.
  const elems: ElemChange[] = [];
  for (const l of lines) if (l.elem) elems.push(l.elem);
  if (lines.length > 0 && lines.length <= MAX_NETLINK_BATCH && elems.length === lines.length) {
    try {
      const r = applyBatch(TABLE_NAME, SET_TYPES, elems);
      const failures: NftOutcome<T>['failures'] = [];
      let stderr = '';
      for (let i = 0; i < lines.length; i++) {
        if (r.errors[i] === 0) continue;
        failures.push({ line: lines[i], message: r.messages[i]! });
        stderr += `${stderr ? '\n' : ''}${lines[i]!.text}: ${r.messages[i]}`;
      }
      return { ok: failures.length === 0, failures, stdout: '', stderr };
    } catch (e) {
      if (!(e instanceof BatchUnsupported)) throw e;
    }
  }
  return nftRun(lines);
}

interface ChainDef {
  name: string;
  hook?: string;
  comment?: string;
  rules: string[];
}

// Order matters: a chain must exist before a rule jumps to it.
const BASE_CHAINS: readonly ChainDef[] = [
  {
    name: 'hostports',
    rules: [
      'dnat ip to ip daddr . meta l4proto . th dport map @ports4ip',
      'dnat ip to meta l4proto . th dport map @ports4',
      'dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6ip',
      'dnat ip6 to meta l4proto . th dport map @ports6',
    ],
  },
  { name: 'prerouting', hook: 'type nat hook prerouting priority dstnat; policy accept;', rules: ['fib daddr type local jump hostports'] },
  { name: 'output', hook: 'type nat hook output priority -100; policy accept;', rules: ['fib daddr type local jump hostports'] },
  {
    name: 'postrouting',
    hook: 'type nat hook postrouting priority srcnat; policy accept;',
    rules: [
      'ct status dnat ip daddr vmap @portsnat4',
      'ct status dnat ip6 daddr vmap @portsnat6',
      'ip saddr vmap @masq4',
      'ip6 saddr vmap @masq6',
    ],
  },
  { name: 'forward', hook: 'type filter hook forward priority filter; policy accept;', rules: ['iifname vmap @net'] },
];

const IPKW = { 4: 'ip', 6: 'ip6' } as const;

/**
 * Masquerade unless to the subnet itself or to multicast: two matches, not an
 * anonymous set, so nft-rules.ts can make the chain over netlink (and nft
 * prints it back the same either way).
 */
function masqRule(f: 4 | 6, net: Prefix): string {
  return `${IPKW[f]} daddr != ${formatPrefix(net)} ${IPKW[f]} daddr != ${multicastOf(f)} masquerade`;
}

/** One chain per subnet and set of exempt destinations, shared by the subnet's addresses. */
function masqChain(subnet: Prefix, exempt?: readonly Prefix[]): ChainDef {
  const f = subnet.ip.family;
  const net = networkOf(subnet);
  const extra = exemptTag(net, exempt);
  if (extra === '') {
    return {
      name: `masq-${subnetTag(subnet)}`,
      comment: `masquerade ${formatPrefix(net)}`,
      rules: [masqRule(f, net)],
    };
  }
  // One rule per exempt prefix, not one set: nft merges adjacent intervals of
  // a set when it lists them, and CHECK compares the listing.
  const rules: string[] = [];
  const seen: string[] = [];
  for (const p of exempt!) {
    if (p.ip.family !== f) continue;
    const text = p.length === (f === 4 ? 32 : 128) ? formatIP(p.ip) : formatPrefix(p);
    if (seen.includes(text)) continue;
    seen.push(text);
    rules.push(`${IPKW[f]} daddr ${text} return`);
  }
  rules.push(masqRule(f, net));
  return { name: `masq-${subnetTag(subnet)}-${extra}`, comment: `masquerade ${formatPrefix(net)} except to ${seen.join(' ')}`, rules };
}

function portSnatChain(subnet: Prefix): ChainDef {
  const f = subnet.ip.family;
  const net = formatPrefix(networkOf(subnet));
  const local = f === 4 ? localhostOf(4) : '::1';
  // Two rules, not one with a set: nft-rules.ts can then make the chain over netlink.
  return { name: `psnat-${subnetTag(subnet)}`, comment: `hairpin and localhost ${net}`, rules: [`${IPKW[f]} saddr ${net} masquerade`, `${IPKW[f]} saddr ${local} masquerade`] };
}

const MASQ_ALL_CHAIN: ChainDef = { name: 'pmasqall', comment: 'masquerade all DNAT', rules: ['masquerade'] };

function netChainPrefix(bridge: string): string {
  return `net-${bridgeTag(bridge)}-`;
}

function netChain(p: NetworkPolicy): ChainDef {
  const b = `"${p.bridge}"`;
  return {
    name: netChainPrefix(p.bridge) + policyTag(p),
    comment: `bridge ${p.bridge}`,
    rules: [
      ...(p.icc ? [] : [`oifname ${b} drop`]),
      `oifname ${b} return`,
      `oifname ${p.isolate ? '@bridges' : '@isolated'} drop`,
    ],
  };
}

/** The owner tag: network hash and attachment hash, 128 bits as an IPv6 value. */
function ownerValue(key: AttachmentKey): IPAddr {
  return { family: 6, value: BigInt(`0x${networkTag(key.network)}${attachmentTag(key.containerId, key.ifname)}`) };
}

function decodeOwner(v: string): { net: string; att: string } | undefined {
  try {
    const hex = parseIP(v).value.toString(16).padStart(32, '0');
    return { net: hex.slice(0, 16), att: hex.slice(16) };
  } catch {
    return undefined;
  }
}

/** How an element behaves when the map already holds its key with another value. */
type Kind = 'owner' | 'replace' | 'conflict' | 'member';

interface Elem {
  set: string;
  key: string;
  data?: string;
  /** The key's and data's values, so the netlink batch need not parse them back from the text. */
  keyAtoms?: Atom[];
  dataAtoms?: Atom[];
  comment?: string;
  kind: Kind;
  describe: string;
}

/** `goto <chain>` as text and as the verdict's words. */
function gotoChain(chain: string): { data: string; dataAtoms: Atom[] } {
  return { data: `goto ${chain}`, dataAtoms: ['goto', chain] };
}

function elemText(e: Pick<Elem, 'key' | 'data' | 'comment'>): string {
  return `${e.key}${e.comment ? ` comment "${e.comment}"` : ''}${e.data !== undefined ? ` : ${e.data}` : ''}`;
}

interface Compiled {
  chains: ChainDef[];
  elems: Elem[];
  /** Bridges whose policy this request sets (old policy chains and isolated membership are cleaned). */
  policies: NetworkPolicy[];
}

function compileMasq(key: AttachmentKey, entries: readonly MasqEntry[], out: Compiled): void {
  validateKey(key);
  validateEntries(entries);
  const ownValue = ownerValue(key);
  const own = formatIP(ownValue);
  for (const e of entries) {
    const f = e.address.family;
    const chain = masqChain(e.subnet, e.exempt);
    const addr = formatIP(e.address);
    const keyAtoms = [e.address];
    out.chains.push(chain);
    out.elems.push({ set: `masqowner${f}`, key: addr, keyAtoms, data: own, dataAtoms: [ownValue], comment: describeKey(key), kind: 'owner', describe: `masquerade owner of ${addr}` });
    out.elems.push({ set: `masq${f}`, key: addr, keyAtoms, ...gotoChain(chain.name), kind: 'replace', describe: `masquerade of ${addr}` });
  }
}

function mappingKey(m: ReturnType<typeof flattenPorts>[number]['mappings'][number]): { set: string; key: string; keyAtoms: Atom[] } {
  const base = `${m.protocol} . ${m.hostPort}`;
  return m.hostIP
    ? { set: `ports${m.family}ip`, key: `${formatIP(m.hostIP)} . ${base}`, keyAtoms: [m.hostIP, m.protocol, m.hostPort] }
    : { set: `ports${m.family}`, key: base, keyAtoms: [m.protocol, m.hostPort] };
}

/** The data of a port mapping: container address and port. */
function mappingData(container: IPAddr, port: number): { data: string; dataAtoms: Atom[] } {
  return { data: `${formatIP(container)} . ${port}`, dataAtoms: [container, port] };
}

function portSnatTarget(req: PortMappingRequest, subnet: Prefix): ChainDef | undefined {
  if (req.masqAll) return MASQ_ALL_CHAIN;
  if (req.snat ?? true) return portSnatChain(subnet);
  return undefined;
}

function compilePorts(key: AttachmentKey, req: PortMappingRequest, out: Compiled): void {
  validateKey(key);
  const ownValue = ownerValue(key);
  const own = formatIP(ownValue);
  for (const p of flattenPorts(req)) {
    const cip = formatIP(p.container);
    const keyAtoms = [p.container];
    out.elems.push({ set: `portowner${p.family}`, key: cip, keyAtoms, data: own, dataAtoms: [ownValue], comment: describeKey(key), kind: 'owner', describe: `port owner of ${cip}` });
    for (const m of p.mappings) {
      out.elems.push({ ...mappingKey(m), ...mappingData(p.container, m.containerPort), kind: 'conflict', describe: `host port ${describeMapping(m)}` });
    }
    const snat = portSnatTarget(req, p.subnet);
    if (snat) {
      out.chains.push(snat);
      out.elems.push({ set: `portsnat${p.family}`, key: cip, keyAtoms, ...gotoChain(snat.name), kind: 'replace', describe: `port SNAT of ${cip}` });
    }
  }
}

function compileNetwork(p: NetworkPolicy, out: Compiled): void {
  validatePolicy(p);
  const chain = netChain(p);
  const b = `"${p.bridge}"`;
  out.chains.push(chain);
  out.policies.push(p);
  out.elems.push({ set: 'bridges', key: b, kind: 'member', describe: `bridge ${p.bridge} in @bridges` });
  if (p.isolate) out.elems.push({ set: 'isolated', key: b, kind: 'member', describe: `bridge ${p.bridge} in @isolated` });
  out.elems.push({ set: 'net', key: b, data: `jump ${chain.name}`, kind: 'replace', describe: `policy of bridge ${p.bridge}` });
}

function compile(ops: readonly SetupOp[]): Compiled {
  const out: Compiled = { chains: [], elems: [], policies: [] };
  for (const op of ops) {
    if (op.kind === 'masquerade') compileMasq(op.key, op.entries, out);
    else if (op.kind === 'ports') compilePorts(op.key, op.request, out);
    else compileNetwork(op.policy, out);
  }
  const seen = new Set<string>();
  const chains: ChainDef[] = [];
  for (const c of out.chains) {
    if (seen.has(c.name)) continue;
    seen.add(c.name);
    chains.push(c);
  }
  out.chains = chains;
  if (ops.length > 1) out.elems = firstOfEachKey(out.elems);
  return out;
}

/**
 * One element per key, the first: a repeated identical one adds nothing, and
 * a later one with another value (a port a stale record also claims, when
 * every live attachment is rebuilt) would fail the whole transaction.
 */
function firstOfEachKey(elems: readonly Elem[]): Elem[] {
  const seen = new Set<string>();
  const out: Elem[] = [];
  for (const e of elems) {
    const k = `${e.set}\0${normElement(e.key)}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
  }
  return out;
}

const T = TABLE;

function addElementLine(e: Elem): NftLine<Elem> {
  return {
    text: `add element ${T} ${e.set} { ${elemText(e)} }`,
    tag: e,
    elem: { op: 'add', set: e.set, key: e.key, data: e.data, comment: e.comment, keyAtoms: e.keyAtoms, dataAtoms: e.dataAtoms },
  };
}

/** Lines that create the chain, or make its rules what they should be. */
function chainLines(def: ChainDef, cur: ChainText | undefined): string[] {
  const rules = def.rules.map((r) => `add rule ${T} ${def.name} ${r}`);
  if (!cur) {
    const spec = [def.hook, def.comment ? `comment "${def.comment}";` : undefined].filter(Boolean).join(' ');
    // create (not add): when two first ADDs race, one fails and retries instead of doubling the rules.
    return [`create chain ${T} ${def.name}${spec ? ` { ${spec} }` : ''}`, ...rules];
  }
  if (cur.rules.length === def.rules.length && cur.rules.every((r, i) => r === def.rules[i])) return [];
  return [`flush chain ${T} ${def.name}`, ...rules];
}

interface TableState {
  /** undefined: the table does not exist. */
  chains: Map<string, ChainText> | undefined;
  elements: Map<string, Map<string, string>>;
}

function readTable(): TableState {
  const chains = listChains();
  return { chains, elements: (chains ? listElements() : undefined) ?? new Map<string, Map<string, string>>() };
}

/** Whether the table, a set or a base chain (or a base chain's rules) is missing: someone else's flush. */
function baseBroken(t: TableState): boolean {
  if (!t.chains) return true;
  for (const [name] of SETS) if (!t.elements.has(name)) return true;
  for (const def of BASE_CHAINS) if (chainLines(def, t.chains.get(def.name)).length > 0) return true;
  return false;
}

/** The repair transaction: infrastructure as it should be, stale values replaced, then the elements. */
function repairLines(c: Compiled, t: TableState): NftLine<Elem>[] {
  const { chains, elements } = t;
  const lines: NftLine<Elem>[] = [];
  const push = (text: string) => lines.push({ text });
  if (!chains) push(`add table ${T} { comment "cnikit: masquerade, port mappings, bridge isolation"; }`);
  for (const [name, type] of SETS) push(`add ${type.includes(' : ') ? 'map' : 'set'} ${T} ${name} { type ${type}; }`);
  for (const def of [...BASE_CHAINS, ...c.chains]) for (const l of chainLines(def, chains?.get(def.name))) push(l);
  const dropChains = new Set<string>();
  const wanted = new Set(c.elems.map((e) => `${e.set}\0${normElement(e.key)}`));
  for (const e of c.elems) {
    const cur = elements.get(e.set)?.get(normElement(e.key));
    if (cur === undefined || e.data === undefined || cur === normElement(e.data)) continue;
    if (e.kind === 'owner' && e.set.startsWith('portowner')) {
      // The address moved from a dead attachment to this one: that attachment's host
      // ports to it go now, since its DEL will find the address owned by another and
      // leave them (they are keyed by host port, so this ADD's elements do not replace them).
      const f = e.set.slice(-1);
      const addr = normElement(e.key);
      for (const set of [`ports${f}`, `ports${f}ip`]) {
        for (const [k, v] of elements.get(set) ?? []) {
          if (v.split(' . ')[0] === addr && !wanted.has(`${set}\0${k}`)) push(`delete element ${T} ${set} { ${k} }`);
        }
      }
    }
    // A mapping to the same container address is this attachment's own (the owner
    // element of that address is ours or replaced in this transaction): replace it.
    if (e.kind === 'conflict' && cur.split(' . ')[0] !== normElement(e.data).split(' . ')[0]) {
      throw new FirewallError(`${e.describe} is already published (to ${cur}) by another container`);
    }
    push(`delete element ${T} ${e.set} { ${e.key} }`);
  }
  for (const p of c.policies) {
    const keep = netChain(p).name;
    for (const name of chains?.keys() ?? []) if (name.startsWith(netChainPrefix(p.bridge)) && name !== keep) dropChains.add(name);
    if (!p.isolate && elements.get('isolated')?.has(p.bridge)) push(`delete element ${T} isolated { "${p.bridge}" }`);
  }
  lines.push(...c.elems.map(addElementLine));
  // Old policy chains go last: only once no element jumps to them.
  for (const name of dropChains) push(`flush chain ${T} ${name}`), push(`delete chain ${T} ${name}`);
  return lines;
}

function setupNft(ops: readonly SetupOp[]): void {
  const c = compile(ops);
  if (c.elems.length === 0) return;
  const lines: NftLine<Elem>[] = [];
  for (const e of c.elems) lines.push(addElementLine(e));
  const r = apply(lines);
  if (r.ok) return;
  if (withMissingChains(c, lines, r)) return;
  // First use, a new policy, a stale value, or a flushed table: read, repair, retry.
  repairNft(ops, c, true);
}

/**
 * A subnet's first address (its chain went with the last one, see
 * dropUnusedChains): when the only refusals were jumps to such chains that
 * are not there, the chains and every element go in one netlink transaction,
 * with no `nft` exec and no read of the table. False when that does not
 * apply or does not work; the caller then repairs.
 */
function withMissingChains(c: Compiled, lines: readonly NftLine<Elem>[], r: NftOutcome<Elem>): boolean {
  const wanted = new Set<string>();
  for (const f of r.failures) {
    const d = f.line?.tag?.data;
    if (!f.message.includes('No such file or directory') || !d?.startsWith('goto ')) return false;
    wanted.add(d.slice(5));
  }
  const chains: ChainChange[] = [];
  const elems: ElemChange[] = [];
  try {
    for (const def of c.chains) {
      if (!wanted.has(def.name)) continue;
      if (!isSubnetChain(def.name)) return false;
      const rules: Uint8Array[] = [];
      for (const rule of def.rules) rules.push(encodeRule(rule));
      chains.push({ name: def.name, comment: def.comment, rules });
    }
    if (chains.length !== wanted.size) return false;
    for (const l of lines) {
      if (!l.elem) return false;
      elems.push(l.elem);
    }
    const out = applyBatch(TABLE_NAME, SET_TYPES, elems, chains);
    for (const e of out.errors) if (e !== 0) return false;
    return true;
  } catch (e) {
    if (e instanceof BatchUnsupported) return false;
    throw e;
  }
}

/**
 * Reads the table and writes what `ops` need, table and base chains included,
 * in one transaction, retried when a concurrent change got in between. When
 * the table or a base chain was gone (and `withLive`), every live attachment
 * goes into that same transaction: the rules a flush took are back.
 */
function repairNft(ops: readonly SetupOp[], c: Compiled, withLive: boolean): void {
  let r: NftOutcome<Elem> | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const t = readTable();
    let cc = c;
    if (withLive && baseBroken(t)) {
      const live = liveOps('nftables');
      if (live.length > 0) cc = compile([...ops, ...live]);
    }
    r = nftRun(repairLines(cc, t));
    if (r.ok) return;
  }
  const f = r!.failures[0]!;
  throw new FirewallError(`${f.line?.tag?.describe ?? 'nftables setup'}: ${f.message}`, r!.stderr);
}

/** After a DEL found the table's sets gone: the other live attachments get their rules back. */
function rebuildAfterFlush(exclude: AttachmentKey): void {
  if (!baseBroken(readTable())) return;
  const live = liveOps('nftables', exclude);
  if (live.length > 0) repairNft(live, compile(live), false);
}

// ---- DEL: owner-guarded, already-gone tolerant ----------------------------

interface Keyed {
  set: string;
  key: string;
  data: string;
  keyAtoms?: Atom[];
  dataAtoms?: Atom[];
}

interface DelItem extends Keyed {
  /** When the add-probe fails: 'bare' deletes the key anyway (ours, whatever it holds); 'drop' leaves it (another's). */
  onProbeFail: 'bare' | 'drop';
  mode: 'probe' | 'bare' | 'drop';
}

interface DelGroup {
  owner: Keyed;
  items: DelItem[];
  dropped: boolean;
}

type DelTag = { group: DelGroup; role: 'owner' } | { group: DelGroup; item: DelItem; role: 'probe' | 'bare' };

function delLines(groups: readonly DelGroup[]): NftLine<DelTag>[] {
  const lines: NftLine<DelTag>[] = [];
  const add = (e: Keyed, tag: DelTag) =>
    lines.push({ text: `add element ${T} ${e.set} { ${e.key} : ${e.data} }`, tag, elem: { op: 'add', set: e.set, key: e.key, data: e.data, keyAtoms: e.keyAtoms, dataAtoms: e.dataAtoms } });
  const del = (e: Keyed, tag: DelTag) =>
    lines.push({ text: `delete element ${T} ${e.set} { ${e.key} }`, tag, elem: { op: 'delete', set: e.set, key: e.key, keyAtoms: e.keyAtoms } });
  for (const g of groups) {
    if (g.dropped) continue;
    add(g.owner, { group: g, role: 'owner' });
    del(g.owner, { group: g, role: 'owner' });
    for (const it of g.items) {
      if (it.mode === 'drop') continue;
      // Adding the exact value first makes the delete succeed when it was already gone,
      // and fail (EEXIST) when the key now holds something else.
      if (it.mode === 'probe') add(it, { group: g, item: it, role: 'probe' });
      del(it, { group: g, item: it, role: it.mode === 'probe' ? 'probe' : 'bare' });
    }
  }
  return lines;
}

/** Returns whether an owner map was missing (the table or its sets are gone). */
function runDel(groups: DelGroup[], what: string): boolean {
  let missing = false;
  for (let attempt = 0; attempt < 4 * groups.length + 8; attempt++) {
    const lines = delLines(groups);
    if (lines.length === 0) return missing;
    const r = apply(lines);
    if (r.ok) return missing;
    for (const f of r.failures) {
      const t = f.line?.tag;
      if (!t) throw new FirewallError(`${what} failed: ${f.message}`, r.stderr);
      if (t.role === 'owner') {
        t.group.dropped = true;
        // ENOENT, not EEXIST: not another owner's address, but no owner map at all.
        if (f.message.includes('No such file or directory')) missing = true;
      } else if (t.role === 'probe') {
        t.item.mode = t.item.onProbeFail;
      } else {
        t.item.mode = 'drop';
      }
    }
  }
  throw new FirewallError(`${what} did not converge`);
}

/**
 * Per-subnet chains (masq-*, psnat-*, pmasqall) go with the last element that
 * jumps to them: each is offered for deletion, and the kernel keeps the ones
 * still in use (see deleteUnusedChains).
 */
function dropUnusedChains(names: readonly string[]): void {
  if (names.length === 0) return;
  try {
    deleteUnusedChains(TABLE_NAME, names);
    return;
  } catch (e) {
    if (!(e instanceof BatchUnsupported)) throw e;
  }
  // One transaction per chain: a chain in use (EBUSY) or gone fails alone and changes nothing.
  for (const name of names) nftRun([{ text: `flush chain ${T} ${name}` }, { text: `delete chain ${T} ${name}` }]);
}

function isSubnetChain(name: string): boolean {
  return name.startsWith('masq-') || name.startsWith('psnat-') || name === MASQ_ALL_CHAIN.name;
}

// ---- checks ----------------------------------------------------------------

function checkCompiled(c: Compiled, extraBase: readonly string[]): void {
  const chains = listChains();
  if (!chains) throw new FirewallError(`nftables table ${T} is missing`);
  for (const def of BASE_CHAINS.filter((b) => extraBase.includes(b.name)).concat(c.chains)) {
    const cur = chains.get(def.name);
    if (!cur) throw new FirewallError(`nftables chain ${def.name} is missing`);
    for (const rule of def.rules) if (!cur.rules.includes(rule)) throw new FirewallError(`rule "${rule}" is missing from nftables chain ${def.name}`);
  }
  const got = getElements(c.elems.map((e) => ({ set: e.set, key: e.key })));
  if ('missing' in got) {
    const e = c.elems[got.missing];
    throw new FirewallError(`${e?.describe ?? 'an element'} is missing (${e ? `${e.set} { ${e.key} }` : got.message})`);
  }
  c.elems.forEach((e, i) => {
    if (e.data !== undefined && got.values[i] !== normElement(e.data)) {
      throw new FirewallError(`${e.describe} is ${got.values[i]}, not ${normElement(e.data)}`);
    }
  });
}

// ---- GC --------------------------------------------------------------------

function gcOwners(
  prefix: 'masq' | 'port',
  network: string,
  keep: ReadonlyArray<{ containerId: string; ifname: string }>,
): RemovedAttachment[] {
  const keepTags = new Set(keep.map((k) => attachmentTag(k.containerId, k.ifname)));
  const net = networkTag(network);
  for (let attempt = 0; ; attempt++) {
    const chains = listChains();
    const elements = chains ? listElements() : undefined;
    if (!chains || !elements) return [];
    const removed = new Map<string, RemovedAttachment>();
    const lines: string[] = [];
    const gone = new Map<string, Set<string>>();
    const del = (set: string, key: string) => {
      lines.push(`delete element ${T} ${set} { ${key} }`);
      (gone.get(set) ?? gone.set(set, new Set()).get(set)!).add(key);
    };
    for (const f of [4, 6] as const) {
      const ownerSet = `${prefix}owner${f}`;
      for (const [addr, tag] of elements.get(ownerSet) ?? []) {
        const o = decodeOwner(tag);
        if (!o || o.net !== net || keepTags.has(o.att)) continue;
        const r = removed.get(o.att) ?? { tag: o.att, addresses: [] };
        r.addresses.push(parseIP(addr));
        removed.set(o.att, r);
        del(ownerSet, addr);
        if (prefix === 'masq') {
          if (elements.get(`masq${f}`)?.has(addr)) del(`masq${f}`, addr);
        } else {
          for (const set of [`ports${f}`, `ports${f}ip`]) {
            // Normalized keys (address . proto . port) are valid nft input as they are.
            for (const [k, v] of elements.get(set) ?? []) if (v.split(' . ')[0] === addr) del(set, k);
          }
          if (elements.get(`portsnat${f}`)?.has(addr)) del(`portsnat${f}`, addr);
        }
      }
    }
    // Elements no owner element claims belong to no attachment (whatever left them): they go too.
    for (const f of [4, 6] as const) {
      const owned = elements.get(`${prefix}owner${f}`) ?? new Map<string, string>();
      const sets = prefix === 'masq' ? [`masq${f}`] : [`ports${f}`, `ports${f}ip`, `portsnat${f}`];
      for (const set of sets) {
        for (const [k, v] of elements.get(set) ?? []) {
          const addr = set.startsWith('ports') && !set.startsWith('portsnat') ? v.split(' . ')[0]! : k;
          if (!owned.has(addr) && !gone.get(set)?.has(k)) del(set, k);
        }
      }
    }
    // Per-subnet chains nothing jumps to any more.
    const chainPrefix = prefix === 'masq' ? 'masq-' : 'psnat-';
    const used = new Set<string>();
    for (const f of [4, 6]) {
      const set = prefix === 'masq' ? `masq${f}` : `portsnat${f}`;
      for (const [k, v] of elements.get(set) ?? []) if (!gone.get(set)?.has(k)) used.add(v.replace(/^goto /, ''));
    }
    for (const name of chains.keys()) {
      if (name.startsWith(chainPrefix) && !used.has(name)) lines.push(`flush chain ${T} ${name}`, `delete chain ${T} ${name}`);
    }
    const r = nftRun(lines.map((text) => ({ text })));
    if (r.ok) return [...removed.values()];
    // A concurrent ADD may have started using a chain we meant to delete: read again.
    if (attempt >= 3) throw new FirewallError(`nftables GC of network ${network} failed: ${r.failures[0]!.message}`, r.stderr);
  }
}

// ---- the backend -----------------------------------------------------------

export class NftablesFirewall implements Firewall {
  readonly backend = 'nftables' as const;

  addMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    setupNft([{ kind: 'masquerade', key, entries }]);
  }

  delMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    validateKey(key);
    validateEntries(entries);
    const ownValue = ownerValue(key);
    const own = formatIP(ownValue);
    const groups: DelGroup[] = [];
    for (const e of entries) {
      const f = e.address.family;
      const addr = formatIP(e.address);
      const keyAtoms = [e.address];
      groups.push({
        owner: { set: `masqowner${f}`, key: addr, keyAtoms, data: own, dataAtoms: [ownValue] },
        items: [{ set: `masq${f}`, key: addr, keyAtoms, ...gotoChain(masqChain(e.subnet, e.exempt).name), onProbeFail: 'bare', mode: 'probe' }],
        dropped: false,
      });
    }
    if (runDel(groups, `removing masquerade for ${describeKey(key)}`)) rebuildAfterFlush(key);
    const chains: string[] = [];
    for (const e of entries) chains.push(masqChain(e.subnet).name);
    dropUnusedChains(chains);
  }

  checkMasquerade(key: AttachmentKey, entries: MasqEntry[]): void {
    const c = compile([{ kind: 'masquerade', key, entries }]);
    checkCompiled(c, ['postrouting']);
  }

  gcMasquerade(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[] {
    return gcOwners('masq', network, keep);
  }

  ensureNetwork(policy: NetworkPolicy): void {
    setupNft([{ kind: 'network', policy }]);
  }

  checkNetwork(policy: NetworkPolicy): void {
    checkCompiled(compile([{ kind: 'network', policy }]), ['forward']);
  }

  removeNetwork(bridge: string): void {
    validateBridge(bridge);
    for (let attempt = 0; ; attempt++) {
      const chains = listChains();
      const elements = chains ? listElements() : undefined;
      if (!chains || !elements) return;
      const lines: string[] = [];
      for (const set of ['net', 'bridges', 'isolated']) if (elements.get(set)?.has(bridge)) lines.push(`delete element ${T} ${set} { "${bridge}" }`);
      for (const name of chains.keys()) if (name.startsWith(netChainPrefix(bridge))) lines.push(`flush chain ${T} ${name}`, `delete chain ${T} ${name}`);
      const r = nftRun(lines.map((text) => ({ text })));
      if (r.ok) {
        // A network goes when no container uses it: per-subnet chains an interrupted DEL left go too.
        const subnetChains: string[] = [];
        for (const name of chains.keys()) if (isSubnetChain(name)) subnetChains.push(name);
        dropUnusedChains(subnetChains);
        return;
      }
      if (attempt >= 3) throw new FirewallError(`removing the rules of bridge ${bridge} failed: ${r.failures[0]!.message}`, r.stderr);
    }
  }

  addPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    if ((request.conditions?.[4]?.length ?? 0) + (request.conditions?.[6]?.length ?? 0) > 0) {
      throw new FirewallError('port mapping conditions are iptables match arguments: the nftables backend cannot apply them');
    }
    setupNft([{ kind: 'ports', key, request }]);
  }

  delPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    validateKey(key);
    const ownValue = ownerValue(key);
    const own = formatIP(ownValue);
    const groups: DelGroup[] = [];
    const chains: string[] = [];
    for (const p of flattenPorts(request)) {
      const cip = formatIP(p.container);
      const keyAtoms = [p.container];
      const items: DelItem[] = [];
      for (const m of p.mappings) items.push({ ...mappingKey(m), ...mappingData(p.container, m.containerPort), onProbeFail: 'drop', mode: 'probe' });
      const snat = portSnatTarget(request, p.subnet);
      // The SNAT element is keyed by the container address, which the owner check has proven ours.
      if (snat) items.push({ set: `portsnat${p.family}`, key: cip, keyAtoms, ...gotoChain(snat.name), onProbeFail: 'bare', mode: 'probe' });
      if (snat) chains.push(snat.name);
      groups.push({ owner: { set: `portowner${p.family}`, key: cip, keyAtoms, data: own, dataAtoms: [ownValue] }, items, dropped: false });
    }
    if (runDel(groups, `removing port mappings for ${describeKey(key)}`)) rebuildAfterFlush(key);
    dropUnusedChains(chains);
  }

  checkPortMappings(key: AttachmentKey, request: PortMappingRequest): void {
    checkCompiled(compile([{ kind: 'ports', key, request }]), ['hostports', 'prerouting', 'output', 'postrouting']);
  }

  gcPortMappings(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[] {
    return gcOwners('port', network, keep);
  }

  setup(ops: readonly SetupOp[]): void {
    setupNft(ops);
  }

  reload(ops: readonly SetupOp[]): void {
    repairNft(ops, compile(ops), false);
  }
}
