// lib/firewall: one interface, two backends (iptables-restore, nft). The
// plugins state intents (masquerade, isolation, port mappings); the backend
// turns them into rules of its own layout (see iptables.ts and nftables.ts).
import { exists, realPath } from '../fs/index.ts';
import { findTool } from './exec.ts';
import { IptablesFirewall } from './iptables.ts';
import { NftablesFirewall } from './nftables.ts';
import { FirewallError, type Backend, type Firewall } from './types.ts';

export * from './types.ts';
export { addMacSpoofCheck, delMacSpoofCheck, checkMacSpoofCheck } from './macspoof.ts';
export { checkConditions } from './iptables-ports.ts';
export { findTool } from './exec.ts';
export { addForwardAccepts, delForwardAccepts, checkForwardAccepts, gcForwardAccepts, type ForwardRequest, type PublishedAccept, type IngressPolicy } from './forward.ts';
export { setLiveAttachments, type LiveAttachments } from './live.ts';

/**
 * Whether the iptables tools can work here, without running them (an exec
 * costs milliseconds on every ADD): iptables-restore must be installed, and
 * the legacy variant also needs the kernel's x_tables (the nf_tables variant
 * only needs nf_tables, like nft).
 */
export function iptablesUsable(): boolean {
  const path = findTool('iptables-restore');
  if (!path) return false;
  const target = realPath(path) ?? path;
  if (target.includes('legacy')) return exists('/proc/net/ip_tables_names');
  return true;
}

/**
 * The backend when the configuration names none: nftables when nft is
 * installed, else iptables. Unlike the reference (iptables first), because the
 * nftables layout keeps a container to map elements, so ADD and DEL cost the
 * same with 10 or 1,000 containers; iptables-nft's DEL grows with the table.
 * Both write to the same kernel nf_tables, so they coexist with other users.
 */
export function detectBackend(): Backend {
  if (findTool('nft')) return 'nftables';
  if (iptablesUsable()) return 'iptables';
  throw new FirewallError('neither iptables-restore nor nft is installed: cannot set up firewall rules');
}

const instances = new Map<Backend, Firewall>();

/** The firewall of the given backend, or of the detected one. Cheap: nothing is run until an operation. */
export function openFirewall(backend?: Backend): Firewall {
  const b = backend ?? detectBackend();
  if (b !== 'iptables' && b !== 'nftables') throw new FirewallError(`unknown firewall backend "${String(b)}" (iptables or nftables)`);
  let fw = instances.get(b);
  if (!fw) instances.set(b, (fw = b === 'iptables' ? new IptablesFirewall() : new NftablesFirewall()));
  return fw;
}
