// Per-namespace sysctls through /proc/sys: net.* entries resolve against the
// network namespace of the thread that opens them, so call these inside
// withNetns() to read or set a container's (or the lab host's) value.
import { readFile, writeFile } from '../fs/index.ts';

function path(key: string): string {
  // Interface names may contain dots (eth0.100); '/' separates keys here.
  if (key.includes('..') || key.startsWith('/')) throw new Error(`invalid sysctl key "${key}"`);
  return `/proc/sys/${key.includes('/') ? key : key.replaceAll('.', '/')}`;
}

/** `key` as "net/ipv4/ip_forward" or "net.ipv4.ip_forward". */
export function readSysctl(key: string): string {
  return readFile(path(key)).trim();
}

export function writeSysctl(key: string, value: string): void {
  writeFile(path(key), value);
}
