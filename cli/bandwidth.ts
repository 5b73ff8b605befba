// `cnikit run --bandwidth-in/--bandwidth-out RATE`: the `bandwidth`
// capability argument, for networks whose conflist has the bandwidth
// plugin (a kubenet-style list). Pure.

export class BandwidthError extends Error {}

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/**
 * Bits per second from "10mbit", "10M", "500k", "1g", "2500" (bits): SI
 * multiples, as Kubernetes' bandwidth annotations and `tc`'s "mbit" mean.
 */
export function parseRate(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)(?:bit)?$/i.exec(s.trim());
  if (!m) throw new BandwidthError(`${flag} "${s}": expected bits per second such as 10mbit, 10M, 500k`);
  const rate = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (rate < 8) throw new BandwidthError(`${flag} "${s}": below 8 bits/s (one byte per second)`);
  return rate;
}

/**
 * The burst given with a rate: a tenth of a second at that rate, and never
 * under 64 KiB, so that a full-size frame (and a GSO one, split) always fits.
 */
export function defaultBurst(rate: number): number {
  return Math.max(Math.ceil(rate / 10), 64 * 1024 * 8);
}

export interface BandwidthArgs {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** runtimeConfig.bandwidth for --bandwidth-in (to the container) and --bandwidth-out (from it); undefined when neither is given. */
export function bandwidthArgs(inRate: string | undefined, outRate: string | undefined): BandwidthArgs | undefined {
  const out: BandwidthArgs = {};
  if (inRate !== undefined) {
    out.ingressRate = parseRate(inRate, '--bandwidth-in');
    out.ingressBurst = defaultBurst(out.ingressRate);
  }
  if (outRate !== undefined) {
    out.egressRate = parseRate(outRate, '--bandwidth-out');
    out.egressBurst = defaultBurst(out.egressRate);
  }
  return inRate === undefined && outRate === undefined ? undefined : out;
}
