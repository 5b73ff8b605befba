// Docker's -p syntax: [IP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/PROTO], as
// runtimeConfig.portMappings (with podman's `range`). Pure.
import type { PortMapping } from '../lib/spec/index.ts';

export class PublishError extends Error {}

function portRange(s: string, what: string, spec: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m) throw new PublishError(`invalid ${what} "${s}" in -p ${spec}`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (a < 1 || b > 65535 || b < a) throw new PublishError(`invalid ${what} range "${s}" in -p ${spec}`);
  return [a, b];
}

export function parsePublish(spec: string): PortMapping {
  let rest = spec;
  let protocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    protocol = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
    if (!['tcp', 'udp', 'sctp'].includes(protocol)) throw new PublishError(`invalid protocol "${protocol}" in -p ${spec}`);
  }
  let hostIP = '';
  // [::1]:8080:80 or 127.0.0.1:8080:80 (an IPv6 address in brackets).
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIP = v6[1]!;
    rest = v6[2]!;
  }
  const parts = rest.split(':');
  if (!v6 && parts.length === 3) hostIP = parts.shift()!;
  if (parts.length > 2 || parts.some((p) => p === '' && parts.length === 1)) throw new PublishError(`invalid -p ${spec}`);
  const [hostText, containerText] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['', parts[0]!];
  const [cFrom, cTo] = portRange(containerText, 'container port', spec);
  const count = cTo - cFrom + 1;
  let hostPort = 0;
  if (hostText !== '') {
    const [hFrom, hTo] = portRange(hostText, 'host port', spec);
    if (hTo - hFrom + 1 !== count) throw new PublishError(`-p ${spec}: the host and container port ranges differ in length`);
    hostPort = hFrom;
  } else if (count > 1) {
    throw new PublishError(`-p ${spec}: a container port range needs a host port range`);
  }
  const m: PortMapping = { hostPort, containerPort: cFrom, protocol: protocol as PortMapping['protocol'] };
  if (hostIP) m.hostIP = hostIP;
  if (count > 1) m.range = count;
  return m;
}

/** "0.0.0.0:8080->80/tcp" style, as `docker ps` prints published ports. */
export function describePublished(p: { hostIP: string; hostPort: number; containerPort: number; protocol: string }): string {
  const ip = p.hostIP === '' ? '0.0.0.0' : p.hostIP.includes(':') ? `[${p.hostIP}]` : p.hostIP;
  return `${ip}:${p.hostPort}->${p.containerPort}/${p.protocol}`;
}
