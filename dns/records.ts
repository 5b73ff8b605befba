// The name records the dnsname plugin writes and the responder serves: one
// JSON file per attachment (network + container ID + ifname) in a directory
// per host network namespace, so labs and nested runtimes on one machine
// each get their own names and their own responder. Kept light: the plugin
// imports this on every ADD and DEL.
import { readFileIfExists, listDirIfExists, removeFile } from '../lib/fs/index.ts';
import { writeFileAtomic } from '../lib/state/index.ts';
import { DEFAULT_DATA_DIR } from '../lib/state/attachments.ts';
import { hostStateDir } from '../lib/state/scope.ts';

export interface NameRecord {
  network: string;
  containerId: string;
  ifname: string;
  /** Lower-case names the container answers to on this network (name and aliases, without the domain). */
  names: string[];
  domainName: string;
  /** The container's addresses with prefix length. */
  ips: string[];
  /** The network's gateway addresses: where the responder listens for it. */
  gateways: string[];
  /** No upstream forwarding for this network's containers. */
  internal: boolean;
}

/** `<dataDir>/ns-<id>/dnsname` (lib/state's per-host directory): records, the responder's lock and log. */
export function dnsRoot(dataDir = DEFAULT_DATA_DIR): string {
  return `${hostStateDir(dataDir)}/dnsname`;
}

export function recordsDir(root: string): string {
  return `${root}/records`;
}

export function lockPath(root: string): string {
  return `${root}/responder.lock`;
}

// '@' occurs neither in network names nor in container IDs (SPEC section 1) nor in ifnames here.
function fileName(network: string, containerId: string, ifname: string): string {
  return `${network}@${containerId}@${ifname}.json`;
}

export function writeRecord(root: string, r: NameRecord): void {
  writeFileAtomic(`${recordsDir(root)}/${fileName(r.network, r.containerId, r.ifname)}`, JSON.stringify(r));
}

export function readRecord(root: string, network: string, containerId: string, ifname: string): NameRecord | undefined {
  return parse(readFileIfExists(`${recordsDir(root)}/${fileName(network, containerId, ifname)}`));
}

export function removeRecord(root: string, network: string, containerId: string, ifname: string): void {
  removeFile(`${recordsDir(root)}/${fileName(network, containerId, ifname)}`);
}

function parse(text: string | undefined): NameRecord | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const r = JSON.parse(text) as NameRecord;
    return Array.isArray(r.names) && Array.isArray(r.ips) && Array.isArray(r.gateways) ? r : undefined;
  } catch {
    // Writes are atomic: a file that does not parse is damage from outside, read as absent.
    return undefined;
  }
}

/** Every record under root, optionally of one network only. */
export function listRecords(root: string, network?: string): NameRecord[] {
  const out: NameRecord[] = [];
  const dir = recordsDir(root);
  for (const n of listDirIfExists(dir)) {
    if (!n.endsWith('.json') || (network !== undefined && !n.startsWith(`${network}@`))) continue;
    const r = parse(readFileIfExists(`${dir}/${n}`));
    if (r) out.push(r);
  }
  return out;
}
