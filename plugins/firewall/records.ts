// What one firewall ADD added, and the request that adds (or removes) it
// again: for the plugin's DEL and CHECK, and for `cnikit firewall reload`
// (plugins/live.ts), which must not load the plugin itself.
import type { ForwardRequest, IngressPolicy } from '../../lib/firewall/forward.ts';
import { parseIP, type IPAddr } from '../../lib/ip/index.ts';

export interface FirewallRecord {
  network: string;
  containerId: string;
  ifname: string;
  backend: 'iptables' | 'nftables';
  /** The container's addresses (no prefix length). */
  addresses: string[];
  adminChain: string;
  ingressPolicy: IngressPolicy;
  /** The bridge the ingress policy names (prevResult.interfaces[0]). */
  bridge?: string;
  /** Whether the FORWARD accepts went to iptables' filter table. */
  accepts: boolean;
}

export function requestOf(r: FirewallRecord): ForwardRequest {
  const addresses: IPAddr[] = [];
  for (const a of r.addresses) addresses.push(parseIP(a));
  return {
    owner: 'fw',
    adminChain: r.adminChain,
    addresses,
    published: [],
    ...(r.backend === 'iptables' && r.bridge ? { ingress: { policy: r.ingressPolicy, bridge: r.bridge } } : {}),
  };
}
