// MAC spoof check (the bridge's macspoofchk): frames that enter a bridge from
// a container's host-side veth must carry the container's MAC. nftables
// bridge family, as the reference does it, but with two sets instead of a
// chain per container: the checked ports, and the allowed (port . MAC) pairs,
// so a container is two elements and a frame one lookup.
import { mustRun, runTool } from './exec.ts';
import { validateBridge } from './names.ts';
import { FirewallError } from './types.ts';

const T = 'bridge cnikit';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function checked(port: string, mac: string): void {
  validateBridge(port);
  if (!MAC.test(mac)) throw new FirewallError(`invalid MAC address "${mac}" for the spoof check`);
}

// `flush chain` + `add rule` keeps the one rule unique however often (and
// however concurrently: nft transactions are atomic) this runs.
const SETUP = [
  `add table ${T}`,
  `add set ${T} checked { type ifname; }`,
  `add set ${T} allowed { type ifname . ether_addr; }`,
  `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
  `flush chain ${T} prerouting`,
  `add rule ${T} prerouting iifname @checked iifname . ether saddr != @allowed drop`,
];

export function addMacSpoofCheck(port: string, mac: string): void {
  checked(port, mac);
  const lines = [...SETUP, `add element ${T} checked { "${port}" }`, `add element ${T} allowed { "${port}" . ${mac} }`];
  mustRun('nft', ['-f', '-'], lines.join('\n') + '\n', `MAC spoof check for ${port}`);
}

/** Removes the port's elements; succeeds when they (or the table) are already gone. */
export function delMacSpoofCheck(port: string, mac: string): void {
  checked(port, mac);
  // One element at a time: a missing one must not keep the other in place.
  for (const el of [`checked { "${port}" }`, `allowed { "${port}" . ${mac} }`]) {
    const r = runTool('nft', ['-f', '-'], `delete element ${T} ${el}\n`);
    if (r.status !== 0 && !/No such file or directory/.test(r.stderr)) {
      throw new FirewallError(`removing the MAC spoof check of ${port} failed: ${r.stderr.trim()}`, r.stderr);
    }
  }
}

/** Throws FirewallError naming what is missing. */
export function checkMacSpoofCheck(port: string, mac: string): void {
  checked(port, mac);
  const r = runTool('nft', ['list', 'table', T]);
  if (r.status !== 0) throw new FirewallError(`the MAC spoof check table ${T} is missing`);
  const text = r.stdout.replace(/\s+/g, ' ');
  if (!text.includes(`"${port}" . ${mac}`)) throw new FirewallError(`the MAC spoof check of ${port} (${mac}) is missing`);
}
