// The firewall interface the plugins use. Operations are stated as intents
// (masquerade this attachment, isolate this bridge); each backend turns them
// into one transaction per family (iptables) or one transaction (nftables).
import type { IPAddr, Prefix } from '../ip/index.ts';

export type Backend = 'iptables' | 'nftables';

/** Who owns a rule: the CNI attachment (network + container ID + ifname). */
export interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

/** One container address to masquerade, with the subnet it can reach unmasqueraded. */
export interface MasqEntry {
  address: IPAddr;
  subnet: Prefix;
  /** More destinations reached unmasqueraded (e.g. a cluster's pod CIDR); those of another family are ignored. */
  exempt?: readonly Prefix[];
}

/**
 * Per-bridge forwarding policy. Every network of the suite should be ensured
 * (even with isolate false and icc true), so that isolated networks know which
 * bridges to block.
 */
export interface NetworkPolicy {
  bridge: string;
  /** The subnets on the bridge; their families choose the families the rules are made for (both when empty). */
  subnets: Prefix[];
  /** Containers on this bridge can neither reach nor be reached from other bridges of the suite. */
  isolate: boolean;
  /** false: containers on this bridge cannot reach each other (needs bridge-nf-call-iptables=1). */
  icc: boolean;
}

export type Protocol = 'tcp' | 'udp' | 'sctp';

/** One published port of a container, as portmap's runtimeConfig.portMappings (ranges are expanded by the caller). */
export interface PortMapping {
  /** Absent: every host address of the container address's family. */
  hostIP?: IPAddr;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

export interface PortMappingRequest {
  /**
   * The container's addresses with their subnet length, as in prevResult
   * (e.g. 10.88.0.5/16), at most one per family. A mapping goes to the address
   * of its hostIP's family, or to each of them when hostIP is absent. The
   * subnet is what hairpin SNAT covers.
   */
  containers: Prefix[];
  mappings: PortMapping[];
  /** Masquerade hairpin, localhost and (with masqAll) all DNATed traffic (portmap `snat`, default true). */
  snat?: boolean;
  /** Masquerade all DNATed connections, not only hairpin and localhost ones (portmap `masqAll`). */
  masqAll?: boolean;
  /**
   * Extra iptables match arguments for the DNAT rules of each family
   * (portmap `conditionsV4`/`conditionsV6`, e.g. ["-s", "10.0.0.0/8"]).
   * iptables backend only.
   */
  conditions?: { 4?: string[]; 6?: string[] };
}

/** A change that can share a transaction with others (see Firewall.setup). */
export type SetupOp =
  | { kind: 'network'; policy: NetworkPolicy }
  | { kind: 'masquerade'; key: AttachmentKey; entries: MasqEntry[] }
  | { kind: 'ports'; key: AttachmentKey; request: PortMappingRequest };

/** What GC found and removed. */
export interface RemovedAttachment {
  /** The attachment tag (hash of container ID and ifname) the rules carried. */
  tag: string;
  addresses: IPAddr[];
}

export interface Firewall {
  readonly backend: Backend;
  /** Outbound SNAT for traffic from each address to anywhere outside its subnet and not multicast. Idempotent. */
  addMasquerade(key: AttachmentKey, entries: MasqEntry[]): void;
  /** Removes exactly what addMasquerade(key, entries) added; succeeds when already gone. */
  delMasquerade(key: AttachmentKey, entries: MasqEntry[]): void;
  /** Throws FirewallError naming what is missing when the rules are not in place. */
  checkMasquerade(key: AttachmentKey, entries: MasqEntry[]): void;
  /** Removes the masquerade of every attachment of `network` not in `keep`; returns what it removed. */
  gcMasquerade(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[];

  /** Idempotent per-bridge rules: isolation between isolated bridges, icc=false drop within the bridge. */
  ensureNetwork(policy: NetworkPolicy): void;
  /** Throws FirewallError naming what is missing when the bridge's rules are not as the policy says. */
  checkNetwork(policy: NetworkPolicy): void;
  /** Removes the bridge's rules; succeeds when already gone. */
  removeNetwork(bridge: string): void;

  /** DNAT for the mappings to the container, with hairpin and localhost SNAT. Idempotent. */
  addPortMappings(key: AttachmentKey, request: PortMappingRequest): void;
  /** Removes exactly what addPortMappings(key, request) added; succeeds when already gone. */
  delPortMappings(key: AttachmentKey, request: PortMappingRequest): void;
  /** Throws FirewallError naming what is missing when the mappings are not in place. */
  checkPortMappings(key: AttachmentKey, request: PortMappingRequest): void;
  /** Removes the port mappings of every attachment of `network` not in `keep`; returns what it removed. */
  gcPortMappings(network: string, keep: ReadonlyArray<{ containerId: string; ifname: string }>): RemovedAttachment[];

  /**
   * Several setup operations in the fewest transactions (one per family for
   * iptables, one for nftables): what a plugin ADD calls so that its firewall
   * cost is one exec per family.
   */
  setup(ops: readonly SetupOp[]): void;

  /**
   * Rebuilds from scratch what `ops` need, also the table, base chains and
   * hooks, whatever is left of them (after a `nft flush ruleset`, a firewalld
   * reload, an iptables restart): one transaction per family (nftables: one).
   * Idempotent. A port two operations publish to different containers goes to
   * the first.
   */
  reload(ops: readonly SetupOp[]): void;
}

export class FirewallError extends Error {
  constructor(
    message: string,
    /** The tool's own words (stderr), when a command failed. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'FirewallError';
  }
}
