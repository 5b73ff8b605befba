// What one portmap ADD published, per host (see lib/state/scope.ts), and how
// an attachment's published ports are given back: its rules, its entries in
// the port index and its record, as its DEL would. Also used by bridge when
// it reclaims the address of a container that is gone, so that no DNAT rule
// of the dead container forwards to the address's next holder.
import type { AttachmentKey, PortMappingRequest, Backend } from '../../lib/firewall/index.ts';
import { openFirewall } from '../../lib/firewall/index.ts';
import { AttachmentStore } from '../../lib/state/attachments.ts';
import { withFileLock } from '../../lib/state/index.ts';
import { hostStateDir } from '../../lib/state/scope.ts';
import type { Logger } from '../../lib/log/index.ts';
import { parsePrefix, type Prefix } from '../../lib/ip/index.ts';
import { PublishedPorts } from './published.ts';
import { unacceptPublished } from './forward.ts';
import { hostIPAddr, type Published } from './mappings.ts';

const PLUGIN = 'portmap';

export interface PortmapRecord {
  network: string;
  containerId: string;
  ifname: string;
  backend: Backend;
  /** Container addresses with prefix length, one per family. */
  containers: string[];
  ports: Published[];
  snat: boolean;
  masqAll: boolean;
  /** conditionsV4/V6: extra iptables match arguments of the DNAT rules. */
  conditions?: { 4?: string[]; 6?: string[] };
  /** CNI_NETNS and the host end of the container's veth: how a later ADD tells that this holder is gone. */
  netns?: string;
  hostVeth?: string;
  /** The published ports are also accepted in iptables' FORWARD (see forward.ts). */
  forwardAccepts?: boolean;
}

export function portmapStore(dataDir: string, network: string): AttachmentStore<PortmapRecord> {
  return new AttachmentStore<PortmapRecord>(dataDir, PLUGIN, network);
}

export function portIndex(dataDir: string): PublishedPorts {
  return new PublishedPorts(`${hostStateDir(dataDir)}/${PLUGIN}-ports`);
}

/** Held while the port index and the records are read and changed together (per host, like the index). */
export function portmapLock(dataDir: string): string {
  return `${hostStateDir(dataDir)}/${PLUGIN}.lock`;
}

export function requestOf(r: Pick<PortmapRecord, 'containers' | 'ports' | 'snat' | 'masqAll' | 'conditions'>): PortMappingRequest {
  // Loops rather than array builtins on the ADD and DEL paths: each builtin's first use costs tens of µs under Bun.
  const containers: Prefix[] = [];
  for (const c of r.containers) containers.push(parsePrefix(c));
  const mappings: PortMappingRequest['mappings'] = [];
  for (const p of r.ports) mappings.push({ hostIP: hostIPAddr(p), hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol });
  return { ...(r.conditions ? { conditions: r.conditions } : {}), containers, mappings, snat: r.snat, masqAll: r.masqAll };
}

/**
 * Gives back the ports an attachment of this host published (rules, index,
 * record), if it has a record; for the reclaim of a container that is gone.
 * Not under the portmap lock the caller may hold: takes it itself.
 */
export function releasePublished(dataDir: string, key: AttachmentKey, why: string, log: Logger): void {
  const records = portmapStore(dataDir, key.network);
  const r = records.read(key);
  if (!r) return;
  const req = requestOf(r);
  openFirewall(r.backend).delPortMappings(key, req);
  if (r.forwardAccepts) unacceptPublished(key, req);
  withFileLock(portmapLock(dataDir), () => {
    portIndex(dataDir).remove(key, r.ports);
    records.remove(key);
  });
  log.warn({ network: key.network, containerId: key.containerId, ifname: key.ifname, ports: r.ports }, `reclaimed the published ports of container ${key.containerId} (${key.ifname}) on network ${key.network}: ${why}`);
}
