// What one bridge ADD made (see lib/state/attachments.ts).
import { AttachmentStore } from '../../lib/state/attachments.ts';

export interface RecordIP {
  /** Container address with prefix length, e.g. 10.88.0.5/16. */
  address: string;
  gateway?: string;
}

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  bridge: string;
  hostVeth: string;
  netns?: string;
  ips: RecordIP[];
  /** The container MAC the spoof check (macspoofchk) allows on the host veth. */
  spoofCheckMac?: string;
  /** nonMasqueradeCIDRs at ADD time: the masquerade DEL removes was made with them. */
  masqExempt?: string[];
  /** The bridge's MAC when this attachment was made: CHECK reports a bridge whose MAC changed since. */
  bridgeMac?: string;
  /** The firewall backend that holds this attachment's masquerade rules. */
  masqBackend?: 'iptables' | 'nftables';
  /** The bridge's `isolate` option, so that a firewall reload can rebuild its policy. */
  isolate?: boolean;
}

export function recordStore(dataDir: string, network: string): AttachmentStore<AttachmentRecord> {
  return new AttachmentStore<AttachmentRecord>(dataDir, 'bridge', network);
}
