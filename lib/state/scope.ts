// Host-side state is per network namespace. Bridges, host ports, firewall
// tables and routes belong to the namespace a plugin runs in, and one
// machine runs plugins in many (nested runtimes, kind-style nodes, lab
// hosts): a record that describes one of them must be invisible from the
// others, or a dead container of one host blocks a port of every host.
//
// The key is the inode of the namespace file (/proc/self/ns/net). The kernel
// gives every live namespace a distinct one and keeps it for the namespace's
// whole life; it needs no socket or ioctl (one stat), and the initial
// namespace's is fixed (0xF0000000). An inode is reused only after its
// namespace is gone: records left by a namespace that died without its DELs
// are then seen by a later one, which finds their links and netns gone and
// reclaims them (see liveness.ts) or sweeps them in GC. A never-reused
// 64-bit cookie (SO_NETNS_COOKIE) would leave such records unreachable for
// good instead.
import { sys } from '../sys/index.ts';

let cached: string | undefined;

/**
 * The identity of the network namespace this process runs in. Computed on
 * first use and kept: call it before any withNetns (plugins build their
 * stores first), since inside one the main thread is in another namespace.
 */
export function hostNamespaceId(): string {
  cached ??= String(sys.stat('/proc/self/ns/net').ino);
  return cached;
}

/** `<dataDir>/ns-<id>`: where every record of the objects of the namespace with that id lives. */
export function namespaceStateDir(dataDir: string, id: string | number): string {
  return `${dataDir}/ns-${id}`;
}

/** The state dir of the namespace this process runs in. */
export function hostStateDir(dataDir: string): string {
  return namespaceStateDir(dataDir, hostNamespaceId());
}
