// A separate process for the parallel-ADD test: it runs in whatever network
// namespace it was started in (the test starts it with nsenter into the lab).
// Usage: bun worker.ts <iptables|nftables> <add|del> <index> [ports]
import { openFirewall, type Backend } from '../index.ts';
import { parseIP, parsePrefix } from '../../ip/index.ts';

const [backend, op, indexText, withPorts] = process.argv.slice(2);
const i = Number(indexText);
const fw = openFirewall(backend as Backend);
const key = { network: 'par', containerId: `c${i}`, ifname: 'eth0' };
const entries = [
  { address: parseIP(`10.77.${i >> 8}.${i & 255}`), subnet: parsePrefix('10.77.0.0/16') },
  { address: parseIP(`fd77::${(i + 1).toString(16)}`), subnet: parsePrefix('fd77::/64') },
];
const ports = {
  containers: [parsePrefix(`10.77.${i >> 8}.${i & 255}/16`)],
  mappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' as const }],
};
try {
  if (op === 'add') {
    fw.setup([{ kind: 'masquerade', key, entries }, ...(withPorts ? [{ kind: 'ports' as const, key, request: ports }] : [])]);
  } else {
    fw.delMasquerade(key, entries);
    if (withPorts) fw.delPortMappings(key, ports);
  }
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n${(e as { detail?: string }).detail ?? ''}\n`);
  process.exit(1);
}
