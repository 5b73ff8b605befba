// CNI spec versions: what we speak, and comparisons between them.
import { CniError, ErrorCode } from './errors.ts';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

function parts(v: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) throw new CniError(ErrorCode.DecodingFailure, `invalid cniVersion ${JSON.stringify(v)}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] as number) - (pb[i] as number);
  return 0;
}

export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** The version a configuration asks for, or error 1 naming what we support. */
export function requireSupported(v: unknown): string {
  if (typeof v !== 'string' || v === '') {
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions: the configuration has no cniVersion', `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  parts(v);
  if (!isSupported(v)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `incompatible CNI versions: config is ${JSON.stringify(v)}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`, `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v;
}
