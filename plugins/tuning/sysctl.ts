// A tuning sysctl key → its '/'-separated name under /proc/sys (for
// lib/netlink's readSysctl/writeSysctl), or why it is refused.
// Keys are as the reference takes them (net.ipv4.conf.IFNAME.arp_notify,
// IFNAME standing for the container's interface) or with '/' separators
// (net/ipv4/conf/eth0.100/arp_notify, for interface names with dots). Every
// segment must be a plain name: no empty, '.' or '..' segment, no other
// characters, so no key can leave /proc/sys/net. The file is opened inside
// the container's namespace, where net.* entries are the namespace's own.

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const IFNAME_SEGMENT = /^[A-Za-z0-9_.@-]+$/;

export function sysctlPath(key: string, ifname: string): string | { reason: string } {
  if (key.length === 0 || key.length > 256) return { reason: 'empty or too long' };
  let parts: string[];
  if (key.includes('/')) {
    parts = key.split('/');
  } else {
    parts = key.split('.');
    // net.ipv4.conf.<if>.<leaf>: an interface name may hold dots only in the '/' form.
  }
  for (let i = 0; i < parts.length; i++) if (parts[i] === 'IFNAME') parts[i] = ifname;
  if (parts[0] !== 'net') return { reason: 'only net.* sysctls may be set' };
  if (parts.length < 3) return { reason: 'not a sysctl of the network namespace' };
  const perInterface = (parts[1] === 'ipv4' || parts[1] === 'ipv6') && (parts[2] === 'conf' || parts[2] === 'neigh');
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    const ok = perInterface && i === 3 ? IFNAME_SEGMENT.test(p) && p !== '.' && p !== '..' : SEGMENT.test(p);
    if (!ok) return { reason: `segment "${p.replace(/[^\x20-\x7e]/g, '?')}" is not a plain name` };
  }
  if (perInterface && parts.length !== 5) return { reason: 'an interface sysctl is net.ipv4|ipv6.conf|neigh.<interface>.<name>' };
  return parts.join('/');
}
