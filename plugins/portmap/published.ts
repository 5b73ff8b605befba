// The host ports cnikit publishes, indexed by protocol and port: one file
// per port under <dataDir>/portmap-ports/<protocol>/<port> listing who holds
// it. Checking a port or choosing a free one reads only the ports in
// question, so an ADD costs the same with 10 or 1,000 containers. Kept under
// the portmap lock; the per-attachment records stay the source of truth.
import { createFile, rewriteFile } from '../../lib/state/index.ts';
import { readFileIfExists, removeFile } from '../../lib/fs/index.ts';
import type { AttachmentKey, Protocol } from '../../lib/firewall/index.ts';
import type { Published } from './mappings.ts';

export interface PortHolder extends AttachmentKey {
  hostIP: string;
  containerPort: number;
}

function sameKey(a: AttachmentKey, b: AttachmentKey): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}

export class PublishedPorts {
  constructor(private readonly dir: string) {}

  private file(protocol: Protocol, port: number): string {
    return `${this.dir}/${protocol}/${port}`;
  }

  holders(protocol: Protocol, port: number): PortHolder[] {
    const text = readFileIfExists(this.file(protocol, port));
    if (text === undefined) return [];
    try {
      return JSON.parse(text) as PortHolder[];
    } catch {
      return [];
    }
  }

  /**
   * Only read and written under the portmap lock, so a file is rewritten in
   * place (no new inode, ~0.2 ms on ext4) and a new one created directly.
   */
  private write(protocol: Protocol, port: number, holders: PortHolder[], existed: boolean): void {
    const file = this.file(protocol, port);
    if (holders.length === 0) removeFile(file);
    else if (existed) rewriteFile(file, JSON.stringify(holders));
    else createFile(file, JSON.stringify(holders));
  }

  /** Drops one holder of a port (e.g. one whose record is gone). */
  drop(protocol: Protocol, port: number, key: AttachmentKey): void {
    const rest: PortHolder[] = [];
    for (const h of this.holders(protocol, port)) if (!sameKey(h, key)) rest.push(h);
    this.write(protocol, port, rest, true);
  }

  add(key: AttachmentKey, ports: readonly Published[]): void {
    for (const p of ports) {
      const holders: PortHolder[] = [];
      const before = this.holders(p.protocol, p.hostPort);
      for (const h of before) if (!sameKey(h, key) || h.hostIP !== p.hostIP) holders.push(h);
      holders.push({ ...key, hostIP: p.hostIP, containerPort: p.containerPort });
      this.write(p.protocol, p.hostPort, holders, before.length > 0);
    }
  }

  remove(key: AttachmentKey, ports: readonly Published[]): void {
    for (const p of ports) this.drop(p.protocol, p.hostPort, key);
  }
}
