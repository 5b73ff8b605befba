// VERSION: the one command whose answer is the same from every plugin of the
// executable. main.ts answers it through this module (and version-main.ts)
// alone, without loading the plugin: loading a plugin's bundle was most of
// what a VERSION exec cost above an empty program, measured. lib/skel's
// dispatch answers it with the same function.
import { CniError, ErrorCode } from './errors.ts';
import { readInvocation } from './env.ts';
import { LATEST_VERSION, SUPPORTED_VERSIONS, isSupported } from './version.ts';

function asked(stdin: string): unknown {
  if (stdin.trim() === '') return undefined;
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `error decoding network configuration from stdin: ${(e as Error).message}`);
  }
  if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) {
    throw new CniError(ErrorCode.DecodingFailure, 'error decoding network configuration from stdin: not a JSON object');
  }
  return (conf as { cniVersion?: unknown }).cniVersion;
}

/** The VERSION answer (with its newline) to this stdin: in the version asked for (SPEC "VERSION Success"), else the latest. */
export function versionAnswer(stdin: string): string {
  const v = asked(stdin);
  const version = typeof v === 'string' && v !== '' ? v : LATEST_VERSION;
  return JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS }) + '\n';
}

export interface VersionIo {
  env: NodeJS.ProcessEnv;
  readStdin(): string;
  writeStdout(text: string): void;
}

/** A whole VERSION invocation as runPlugin runs one; returns the exit status. */
export function runVersion(io: VersionIo): number {
  let version = LATEST_VERSION;
  try {
    const stdin = io.readStdin();
    try {
      const v = asked(stdin);
      if (typeof v === 'string' && isSupported(v)) version = v;
    } catch {
      // Reported below, by versionAnswer, after the environment.
    }
    // The environment is checked as for any command (CNI_ARGS syntax).
    readInvocation(io.env);
    io.writeStdout(versionAnswer(stdin));
    return 0;
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(ErrorCode.Internal, e instanceof Error ? e.message : String(e));
    const out: Record<string, unknown> = { cniVersion: version, code: err.code, msg: err.message };
    if (err.details !== undefined) out.details = err.details;
    io.writeStdout(JSON.stringify(out) + '\n');
    return 1;
  }
}
