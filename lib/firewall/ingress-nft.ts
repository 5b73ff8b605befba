// The firewall plugin's ingress policy (same-bridge, isolated) for the
// nftables backend: a drop works from any table (a packet must be accepted
// by every base chain on the hook), so these live in a table of their own and
// a container is a few set elements; ADD and DEL are one `nft -f` each.
//
//   table inet cnikit-fw
//     set guarded4/6  { ipv4_addr / ipv6_addr }             containers with a policy
//     set same4/6     { ipv4_addr . ifname }                 same-bridge: container . its bridge
//     chain ingress   (hook forward, priority filter - 10)
//       ct state established,related return; ct status dnat return   (replies, published ports)
//       ip daddr . iifname @same4 return                                 (from the same bridge)
//       ip daddr @guarded4 drop
// The table, sets and chain are declared on every ADD (idempotent); the
// chain's rules are rewritten by flush + add in the same transaction, so a
// concurrent ADD never sees the chain half-written.
import { type IPAddr, formatIP } from '../ip/index.ts';
import { validateBridge } from './names.ts';
import { nftRun, mustNft, type NftLine } from './nft.ts';
import { FirewallError } from './types.ts';
import type { IngressPolicy } from './forward.ts';

export const INGRESS_TABLE = 'inet cnikit-fw';

function declarations(): NftLine<never>[] {
  const t = INGRESS_TABLE;
  return [
    { text: `add table ${t}` },
    { text: `add set ${t} guarded4 { type ipv4_addr; }` },
    { text: `add set ${t} guarded6 { type ipv6_addr; }` },
    { text: `add set ${t} same4 { type ipv4_addr . ifname; }` },
    { text: `add set ${t} same6 { type ipv6_addr . ifname; }` },
    { text: `add chain ${t} ingress { type filter hook forward priority filter - 10; policy accept; }` },
    { text: `flush chain ${t} ingress` },
    { text: `add rule ${t} ingress ct state established,related return` },
    { text: `add rule ${t} ingress ct status dnat return` },
    { text: `add rule ${t} ingress ip daddr . iifname @same4 return` },
    { text: `add rule ${t} ingress ip6 daddr . iifname @same6 return` },
    { text: `add rule ${t} ingress ip daddr @guarded4 drop` },
    { text: `add rule ${t} ingress ip6 daddr @guarded6 drop` },
  ];
}

function elements(policy: IngressPolicy, bridge: string, addresses: readonly IPAddr[]): string[] {
  validateBridge(bridge);
  const out: string[] = [];
  for (const a of addresses) {
    const ip = formatIP(a);
    out.push(`guarded${a.family} { ${ip} }`);
    if (policy === 'same-bridge') out.push(`same${a.family} { ${ip} . "${bridge}" }`);
  }
  return out;
}

export function addNftIngress(policy: IngressPolicy, bridge: string, addresses: readonly IPAddr[]): void {
  if (policy === 'open' || addresses.length === 0) return;
  const lines = declarations();
  for (const e of elements(policy, bridge, addresses)) lines.push({ text: `add element ${INGRESS_TABLE} ${e}` });
  mustNft(lines, `ingress policy ${policy} for bridge ${bridge}`);
}

/** `cnikit firewall reload`: the table and every live container's elements, in one transaction. */
export function reloadNftIngress(items: ReadonlyArray<{ policy: IngressPolicy; bridge: string; addresses: readonly IPAddr[] }>): void {
  const lines = declarations();
  let n = 0;
  for (const i of items) {
    if (i.policy === 'open') continue;
    for (const e of elements(i.policy, i.bridge, i.addresses)) lines.push({ text: `add element ${INGRESS_TABLE} ${e}` }), n++;
  }
  if (n > 0) mustNft(lines, 'reloading the ingress policies');
}

/** Removes the elements; succeeds when they or the whole table are already gone. */
export function delNftIngress(policy: IngressPolicy, bridge: string, addresses: readonly IPAddr[]): void {
  if (policy === 'open' || addresses.length === 0) return;
  const els = elements(policy, bridge, addresses);
  // `delete` of a missing element fails the transaction: add first, in the same
  // transaction, so the delete always finds it. Sets are declared first for the
  // same reason; without the table there is nothing to remove.
  const lines: NftLine<never>[] = [];
  for (const e of els) lines.push({ text: `add element ${INGRESS_TABLE} ${e}` });
  for (const e of els) lines.push({ text: `delete element ${INGRESS_TABLE} ${e}` });
  const r = nftRun(lines);
  if (r.ok) return;
  if (/No such file or directory/.test(r.stderr)) return;
  throw new FirewallError(`removing ingress policy ${policy} of bridge ${bridge} failed: ${r.failures[0]!.message}`, r.stderr);
}

/** Throws FirewallError when an element is missing. */
export function checkNftIngress(policy: IngressPolicy, bridge: string, addresses: readonly IPAddr[]): void {
  if (policy === 'open') return;
  for (const e of elements(policy, bridge, addresses)) {
    const r = nftRun([{ text: `get element ${INGRESS_TABLE} ${e}` }]);
    if (!r.ok) throw new FirewallError(`ingress policy element ${e} of ${INGRESS_TABLE} is missing`, r.stderr);
  }
}
