// Published ports on a host whose FORWARD policy drops (Docker, firewalld,
// `iptables -P FORWARD DROP`): the DNAT'd new connection must be accepted in
// FORWARD, in the table where the drop is (iptables' filter table), or the
// port does not answer from other hosts. Exactly the published container
// address and port are accepted, and only for connections DNAT'd from the
// published host port (see lib/firewall/forward.ts).
import { addForwardAccepts, delForwardAccepts, checkForwardAccepts, type AttachmentKey, type PortMappingRequest, type PublishedAccept, type ForwardRequest } from '../../lib/firewall/index.ts';
import { flattenPorts } from '../../lib/firewall/ports.ts';

function publishedOf(req: PortMappingRequest): PublishedAccept[] {
  const out: PublishedAccept[] = [];
  for (const fam of flattenPorts(req)) {
    for (const m of fam.mappings) out.push({ container: m.container, protocol: m.protocol, containerPort: m.containerPort, hostPort: m.hostPort });
  }
  return out;
}

/** The accepts of an attachment's published ports, as acceptPublished adds them (for `cnikit firewall reload`). */
export function publishedRequest(req: PortMappingRequest): ForwardRequest {
  return { owner: 'pub', addresses: [], published: publishedOf(req) };
}

/** Only where iptables is there to hold them (the caller records that first: see iptablesUsable). */
export function acceptPublished(key: AttachmentKey, req: PortMappingRequest): void {
  const published = publishedOf(req);
  if (published.length > 0) addForwardAccepts(key, { owner: 'pub', addresses: [], published });
}

export function unacceptPublished(key: AttachmentKey, req: PortMappingRequest): void {
  const published = publishedOf(req);
  if (published.length > 0) delForwardAccepts(key, { owner: 'pub', addresses: [], published });
}

export function checkPublished(key: AttachmentKey, req: PortMappingRequest): void {
  const published = publishedOf(req);
  if (published.length > 0) checkForwardAccepts(key, { owner: 'pub', addresses: [], published });
}
