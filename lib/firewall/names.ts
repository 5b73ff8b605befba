// Everything that turns caller-supplied names into firewall text. Names never
// reach rule text as they are, except interface names after a strict check:
// chains, comments and nft owner tags are built from SHA-256 hashes, so no
// network name, container ID or ifname can inject rule syntax, and chain
// names stay within iptables' 28 characters.
import { type IPAddr, type Prefix, contains, formatIP, formatPrefix } from '../ip/index.ts';
import { sys } from '../sys/index.ts';
import { isCniName, isPlainIfname, hasIfnameForbiddenChar } from '../spec/names.ts';
import { FirewallError, type AttachmentKey, type MasqEntry, type NetworkPolicy } from './types.ts';

export function validateKey(key: AttachmentKey): void {
  if (!isCniName(key.network)) {
    throw new FirewallError(`network name "${printable(key.network)}" is not a valid CNI network name`);
  }
  if (!isCniName(key.containerId)) {
    throw new FirewallError(`container ID "${printable(key.containerId)}" is not a valid CNI container ID`);
  }
  // CNI allows any ifname the kernel allows; only its hash reaches the rules.
  if (key.ifname.length === 0 || key.ifname.length > 15 || hasIfnameForbiddenChar(key.ifname) || key.ifname === '.' || key.ifname === '..') {
    throw new FirewallError(`interface name "${printable(key.ifname)}" is not a valid interface name`);
  }
}

/**
 * Bridge names go into rules verbatim (-i/-o, iifname/oifname), so they must
 * be plain: no wildcard characters ('+' for iptables, '*' for nft), no quotes,
 * spaces or separators.
 */
export function validateBridge(bridge: string): void {
  if (!isPlainIfname(bridge)) {
    throw new FirewallError(
      `bridge name "${printable(bridge)}" must be 1-15 characters of letters, digits, '_', '.', '@' or '-'`,
    );
  }
}

export function validateEntries(entries: readonly MasqEntry[]): void {
  for (const e of entries) {
    if (!contains(e.subnet, e.address)) {
      throw new FirewallError(`masquerade address ${formatIP(e.address)} is not inside its subnet ${formatPrefix(e.subnet)}`);
    }
  }
}

export function validatePolicy(p: NetworkPolicy): void {
  validateBridge(p.bridge);
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

function sha256(...parts: string[]): string {
  // NUL cannot occur in any of the parts, so the encoding is unambiguous.
  return sys.sha256hex(parts.join('\0'));
}

/** 16 hex digits naming a network (for GC: which attachments belong to it). */
export function networkTag(network: string): string {
  return sha256('network', network).slice(0, 16);
}

/** 16 hex digits naming an attachment within its network. */
export function attachmentTag(containerId: string, ifname: string): string {
  return sha256('attachment', containerId, ifname).slice(0, 16);
}

/** 16 hex digits naming a bridge. */
export function bridgeTag(bridge: string): string {
  return sha256('bridge', bridge).slice(0, 16);
}

/** 8 hex digits naming a network policy, so a changed policy gets a new chain name. */
export function policyTag(p: NetworkPolicy): string {
  return sha256('policy', p.bridge, p.isolate ? 'isolate' : '-', p.icc ? 'icc' : '-').slice(0, 8);
}

/** 16 hex digits naming a subnet. */
/** Names what a masquerade chain exempts beyond its subnet (none: ''). */
export function exemptTag(subnet: Prefix, exempt: readonly Prefix[] | undefined): string {
  if (!exempt) return '';
  let text = '';
  for (const p of exempt) if (p.ip.family === subnet.ip.family) text += `${formatPrefix(p)} `;
  return text === '' ? '' : sha256('exempt', formatPrefix(subnet), text).slice(0, 8);
}

export function subnetTag(subnet: Prefix): string {
  return sha256('subnet', formatPrefix(subnet)).slice(0, 16);
}

/**
 * A short human-readable description for comments. Only characters that are
 * safe inside a double-quoted iptables or nft comment are kept (validation has
 * already limited network and container names to [A-Za-z0-9_.-]).
 */
export function describeKey(key: AttachmentKey): string {
  let ifname = '';
  for (let i = 0; i < key.ifname.length; i++) ifname += isPlainIfname(key.ifname[i]!) ? key.ifname[i] : '_';
  return `net=${key.network.slice(0, 48)} id=${key.containerId.slice(0, 12)} if=${ifname}`;
}

/** The IPv4 or IPv6 multicast range: never masqueraded, as in the reference. */
export function multicastOf(family: 4 | 6): string {
  return family === 4 ? '224.0.0.0/4' : 'ff00::/8';
}

export function hostPrefix(ip: IPAddr): string {
  return `${formatIP(ip)}/${ip.family === 4 ? 32 : 128}`;
}

/** 20 hex digits naming an attachment across networks (iptables per-attachment chain names). */
export function attachmentChainTag(key: AttachmentKey): string {
  return sha256('attachment-chain', key.network, key.containerId, key.ifname).slice(0, 20);
}
