// Results travel between versions: plugins build the 1.1.0 shape and print it
// in the version the configuration asked for; a prevResult arrives in the
// configuration's version and is lifted to 1.1.0 before a plugin sees it.
import type { Result, Result040, IPConfig040, Interface } from '../spec/index.ts';
import { compareVersions } from './version.ts';

export type AnyResult = Result | Result040;

function familyOf(address: string): '4' | '6' {
  return address.includes(':') ? '6' : '4';
}

/**
 * Lift a result of any supported version to the 1.1.0 shape. Fields the spec
 * does not name (e.g. portmap's chosen portMappings) travel along: runtimes
 * ignore what they do not know, and a chain should not lose them.
 */
export function toCurrent(r: AnyResult): Result {
  const { cniVersion: _c, interfaces: _i, ips: _ip, routes: _r, dns: _d, ...extra } = r;
  const out: Result = { cniVersion: '1.1.0', ...extra };
  // Loops, not map: the first use of an array builtin costs a plugin exec tens of µs under Bun.
  if (r.interfaces) {
    out.interfaces = [];
    for (const i of r.interfaces) out.interfaces.push({ ...i });
  }
  if (r.ips) {
    out.ips = [];
    for (const ip of r.ips) {
      const { version: _v, ...rest } = ip as IPConfig040;
      out.ips.push(rest);
    }
  }
  if (r.routes) {
    out.routes = [];
    for (const rt of r.routes) out.routes.push({ ...rt });
  }
  if (r.dns) out.dns = { ...r.dns };
  return out;
}

function interface040(i: Interface): Interface {
  const out: Interface = { name: i.name };
  if (i.mac !== undefined) out.mac = i.mac;
  if (i.sandbox !== undefined) out.sandbox = i.sandbox;
  return out;
}

/** Print form of a 1.1.0-shaped result in the requested version. */
export function convertResult(r: Result, version: string): AnyResult {
  if (compareVersions(version, '1.0.0') >= 0) return { ...toCurrent(r), cniVersion: version };
  const out: Result040 = { cniVersion: version };
  if (r.interfaces) {
    out.interfaces = [];
    for (const i of r.interfaces) out.interfaces.push(interface040(i));
  }
  if (r.ips) {
    out.ips = [];
    for (const ip of r.ips) {
      const o: IPConfig040 = { version: familyOf(ip.address), address: ip.address };
      if (ip.gateway !== undefined) o.gateway = ip.gateway;
      if (ip.interface !== undefined) o.interface = ip.interface;
      out.ips.push(o);
    }
  }
  if (r.routes) {
    out.routes = [];
    for (const rt of r.routes) out.routes.push(rt.gw === undefined ? { dst: rt.dst } : { dst: rt.dst, gw: rt.gw });
  }
  if (r.dns) out.dns = { ...r.dns };
  return out;
}
