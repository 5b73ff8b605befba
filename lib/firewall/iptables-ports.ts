// Port mappings for the iptables backend.
//
// Layout (nat table, per family):
//   PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL -m comment --comment "cnikit hostports" -j CNIK-HOSTPORTS
//   CNIK-HOSTPORTS      -p PROTO [-d HOSTIP] --dport HP -m comment --comment "cnikit:NET:ATT" -j DNAT --to-destination CIP:CP
//                       (host-address-specific mappings are inserted first, so they win over any-address ones)
//   POSTROUTING         -m comment --comment "cnikit hostports snat" -j CNIK-HOSTPORTS-SNAT
//   CNIK-HOSTPORTS-SNAT -d CIP -m conntrack --ctstate DNAT -m comment --comment "cnikit:NET:ATT" -j CNIK-P-<hash>
//   CNIK-P-<hash>       -s SUBNET -j MASQUERADE (hairpin); -s 127.0.0.0/8 -j MASQUERADE (localhost); or -j MASQUERADE (masqAll)
// iptables walks CNIK-HOSTPORTS linearly per new connection; the nftables
// backend uses maps instead.
import { formatIP, formatPrefix } from '../ip/index.ts';
import { validateKey, networkTag, attachmentTag, attachmentChainTag, describeKey } from './names.ts';
import { Script, restore, mustRestore, save, chainOf, asDelete, mergeRemoved, FAMILIES, type Family, type Plan, type SavedTable } from './restore.ts';
import { flattenPorts, describeMapping, localhostOf, type FamilyPorts, type FlatMapping } from './ports.ts';
import { FirewallError, type AttachmentKey, type PortMappingRequest, type RemovedAttachment } from './types.ts';
import { parseIP } from '../ip/index.ts';

const DNAT_CHAIN = 'CNIK-HOSTPORTS';
const SNAT_CHAIN = 'CNIK-HOSTPORTS-SNAT';
const HOOKS = [
  `PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "cnikit hostports" -j ${DNAT_CHAIN}`,
  `OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "cnikit hostports" -j ${DNAT_CHAIN}`,
  `POSTROUTING -m comment --comment "cnikit hostports snat" -j ${SNAT_CHAIN}`,
];

interface PortSpec {
  tag: string;
  chain: string;
  /** DNAT rules, without the -A/-I. */
  dnat: { rule: string; specific: boolean; mapping: FlatMapping }[];
  dispatch: string;
  body: string[];
}

function ipPort(f: Family, ip: string, port: number): string {
  return f === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

// One iptables argument each: no quotes, spaces or newlines (restore input
// is line text), and no target of their own (they only narrow the match).
const CONDITION_TOKEN = /^[A-Za-z0-9_.:\/!,+=@%-]+$/;
const TARGET_FLAGS = new Set(['-j', '--jump', '-g', '--goto']);

/** Throws FirewallError unless every argument is a plain iptables match argument. */
export function checkConditions(args: readonly string[]): void {
  for (const a of args) {
    if (!CONDITION_TOKEN.test(a) || TARGET_FLAGS.has(a)) {
      throw new FirewallError(`port mapping condition "${a.replace(/[^\x20-\x7e]/g, '?')}" is not a plain iptables match argument`);
    }
  }
}

function conditionArgs(req: PortMappingRequest, family: Family): string {
  const args = req.conditions?.[family] ?? [];
  checkConditions(args);
  return args.length > 0 ? ` ${args.join(' ')}` : '';
}

function portSpec(key: AttachmentKey, p: FamilyPorts, req: PortMappingRequest): PortSpec {
  const tag = `cnikit:${networkTag(key.network)}:${attachmentTag(key.containerId, key.ifname)}`;
  const comment = `-m comment --comment "${tag} ${describeKey(key)}"`;
  const chain = `CNIK-P-${attachmentChainTag(key)}`;
  const cip = formatIP(p.container);
  const host = `${cip}/${p.family === 4 ? 32 : 128}`;
  const dnat = p.mappings.map((m) => ({
    rule:
      `${DNAT_CHAIN} -p ${m.protocol}${m.hostIP ? ` -d ${formatIP(m.hostIP)}/${p.family === 4 ? 32 : 128}` : ''}${conditionArgs(req, p.family)} ` +
      `-m ${m.protocol} --dport ${m.hostPort} ${comment} -j DNAT --to-destination ${ipPort(p.family, cip, m.containerPort)}`,
    specific: m.hostIP !== undefined,
    mapping: m,
  }));
  const snat = req.snat ?? true;
  const body = req.masqAll
    ? [`${chain} -j MASQUERADE`]
    : snat
      ? [`${chain} -s ${formatPrefix(p.subnet)} -j MASQUERADE`, `${chain} -s ${localhostOf(p.family)} -j MASQUERADE`]
      : [];
  return { tag, chain, dnat, body, dispatch: `${SNAT_CHAIN} -d ${host} -m conntrack --ctstate DNAT ${comment} -j ${chain}` };
}

function ensureBase(s: Script<Plan>, nat: SavedTable, plan: Plan): void {
  for (const c of [DNAT_CHAIN, SNAT_CHAIN]) if (!nat.chains.has(c)) s.once('nat', `-N ${c}`, plan);
  for (const h of HOOKS) if (!nat.rules.includes(`-A ${h}`)) s.once('nat', `-A ${h}`, plan);
}

function appendSpec(s: Script<Plan>, spec: PortSpec, plan: Plan): void {
  for (const b of spec.body) s.add('nat', `-A ${b}`, plan);
  s.add('nat', `-A ${spec.dispatch}`, plan);
  for (const d of spec.dnat) s.add('nat', d.specific ? `-I ${d.rule.replace(DNAT_CHAIN, `${DNAT_CHAIN} 1`)}` : `-A ${d.rule}`, plan);
}

/** Saved rules of this attachment (by its tag) in the shared chains. */
function taggedRules(nat: SavedTable, tag: string): string[] {
  return nat.rules.filter((r) => (chainOf(r) === DNAT_CHAIN || chainOf(r) === SNAT_CHAIN) && r.includes(`"${tag} `));
}

export class IptablesPorts {
  addPlans(key: AttachmentKey, req: PortMappingRequest): Map<Family, Plan[]> {
    validateKey(key);
    const out = new Map<Family, Plan[]>();
    for (const p of flattenPorts(req)) {
      const spec = portSpec(key, p, req);
      const plan: Plan = {
        describe: `port mappings ${p.mappings.map(describeMapping).join(', ')} for ${describeKey(key)}`,
        tables: ['nat'],
        fast(s) {
          // -N fails on a repeated ADD; the slow path then replaces the old rules.
          s.add('nat', `-N ${spec.chain}`, plan);
          appendSpec(s, spec, plan);
        },
        slow(s, state) {
          const nat = state.get('nat')!;
          ensureBase(s, nat, plan);
          for (const r of taggedRules(nat, spec.tag)) s.add('nat', asDelete(r), plan);
          if (nat.chains.has(spec.chain)) s.declare('nat', spec.chain, plan);
          else s.add('nat', `-N ${spec.chain}`, plan);
          appendSpec(s, spec, plan);
        },
      };
      out.set(p.family, [plan]);
    }
    return out;
  }

  /** Returns whether a flush took the base chains (a rule was gone, and CNIK-HOSTPORTS with it). */
  del(key: AttachmentKey, req: PortMappingRequest): boolean {
    validateKey(key);
    let broken = false;
    for (const p of flattenPorts(req)) {
      const spec = portSpec(key, p, req);
      let script = new Script<'rule' | 'chain'>();
      script.declare('nat', spec.chain, 'chain');
      script.add('nat', `-D ${spec.dispatch}`, 'rule');
      for (const d of spec.dnat) script.add('nat', `-D ${d.rule}`, 'rule');
      script.add('nat', `-X ${spec.chain}`, 'chain');
      let done = false;
      let gone = false;
      for (let attempt = 0; attempt <= spec.dnat.length + 1 && !done; attempt++) {
        const r = restore(p.family, script);
        if (r.ok) done = true;
        else if (r.failed?.tag === 'rule') {
          gone = true;
          script = script.without(new Set([r.failed]));
        } else break;
      }
      if (done) {
        if (gone && !save(p.family, 'nat').chains.has(DNAT_CHAIN)) broken = true;
        continue;
      }
      // Something this request does not name still uses the chain: remove by tag.
      const nat = save(p.family, 'nat');
      const s = new Script();
      for (const r of taggedRules(nat, spec.tag)) s.add('nat', asDelete(r));
      if (nat.chains.has(spec.chain)) {
        s.declare('nat', spec.chain);
        s.add('nat', `-X ${spec.chain}`);
      }
      mustRestore(p.family, s, `removing port mappings for ${describeKey(key)}`);
    }
    return broken;
  }

  check(key: AttachmentKey, req: PortMappingRequest): void {
    validateKey(key);
    for (const p of flattenPorts(req)) {
      const spec = portSpec(key, p, req);
      const s = new Script<string>();
      for (const h of HOOKS) s.add('nat', `-C ${h}`, `the hook rule "${h}"`);
      for (const d of spec.dnat) s.add('nat', `-C ${d.rule}`, `the DNAT rule for ${describeMapping(d.mapping)}`);
      s.add('nat', `-C ${spec.dispatch}`, `the SNAT dispatch for ${formatIP(p.container)}`);
      for (const b of spec.body) s.add('nat', `-C ${b}`, `rule "${b}"`);
      const r = restore(p.family, s);
      if (!r.ok) throw new FirewallError(`${r.failed?.tag ?? 'a port-mapping rule'} is missing (IPv${p.family}, ${describeKey(key)})`, r.stderr);
    }
  }

  gc(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[] {
    const keepTags = new Set(keep.map((k) => attachmentTag(k.containerId, k.ifname)));
    const net = networkTag(network);
    const re = new RegExp(`--comment "?cnikit:${net}:([0-9a-f]{16})`);
    const lists: RemovedAttachment[][] = [];
    for (const f of FAMILIES) {
      const nat = save(f, 'nat');
      const removed = new Map<string, RemovedAttachment>();
      const chains = new Set<string>();
      const s = new Script();
      for (const r of nat.rules) {
        if (chainOf(r) !== DNAT_CHAIN && chainOf(r) !== SNAT_CHAIN) continue;
        const m = re.exec(r);
        if (!m || keepTags.has(m[1]!)) continue;
        s.add('nat', asDelete(r));
        const e = removed.get(m[1]!) ?? { tag: m[1]!, addresses: [] };
        removed.set(m[1]!, e);
        if (chainOf(r) === SNAT_CHAIN) {
          const chain = / -j (CNIK-P-[0-9a-f]+)$/.exec(r)?.[1];
          const dst = / -d ([^ /]+)/.exec(r)?.[1];
          if (chain) chains.add(chain);
          if (dst) e.addresses.push(parseIP(dst));
        }
      }
      for (const c of chains) {
        if (!nat.chains.has(c)) continue;
        s.declare('nat', c);
        s.add('nat', `-X ${c}`);
      }
      mustRestore(f, s, `port-mapping GC of network ${network}`);
      lists.push([...removed.values()]);
    }
    return mergeRemoved(lists);
  }
}
