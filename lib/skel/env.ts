// The CNI_* environment of one invocation, checked per command as SPEC
// section 2 and the reference skel require.
import { CniError, ErrorCode } from './errors.ts';
import { isCniName, hasIfnameForbiddenChar } from '../spec/names.ts';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Command = (typeof COMMANDS)[number];

type Var = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH';

const REQUIRED: Record<Command, readonly Var[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

export interface Invocation {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs, in order. */
  args: Map<string, string>;
  path: string[];
}

export function validateContainerId(id: string): void {
  if (!isCniName(id) || id.length > 1024) {
    throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_CONTAINERID ${JSON.stringify(id)}: must start with an alphanumeric character, then alphanumerics, '_', '.' or '-'`);
  }
}

const te = new TextEncoder();

/** Not Buffer.byteLength: the first use of Buffer costs ~0.2-0.5 ms of a plugin exec under Bun. */
function utf8Length(s: string): number {
  return te.encode(s).length;
}

/** Linux interface name rules (dev_valid_name): 1-15 bytes, not . or .., no '/', ':' or whitespace. */
export function validateIfname(name: string, variable = 'CNI_IFNAME'): void {
  const bad =
    name.length === 0 || utf8Length(name) > 15 || name === '.' || name === '..' || hasIfnameForbiddenChar(name);
  if (bad) {
    throw new CniError(ErrorCode.InvalidEnvironment, `invalid ${variable} ${JSON.stringify(name)}: an interface name has 1 to 15 characters and no '/', ':' or whitespace`);
  }
}

/** CNI_ARGS: "K=V;K2=V2". */
export function parseCniArgs(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0 || pair.indexOf('=', eq + 1) !== -1) {
      throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS pair ${JSON.stringify(pair)}: expected KEY=VALUE`);
    }
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/** Refuse CNI_ARGS keys a plugin does not know, unless IgnoreUnknown is set (as the reference does). */
export function checkKnownArgs(args: Map<string, string>, known: readonly string[]): void {
  const ignore = (args.get('IgnoreUnknown') ?? '').toLowerCase();
  if (ignore === '1' || ignore === 'true') return;
  for (const key of args.keys()) {
    if (key !== 'IgnoreUnknown' && !known.includes(key)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_ARGS key ${JSON.stringify(key)} (known: ${known.join(', ') || 'none'}; set IgnoreUnknown=1 to ignore)`);
    }
  }
}

function nonEmpty(parts: string[]): string[] {
  const out: string[] = [];
  for (const p of parts) if (p !== '') out.push(p);
  return out;
}

export function readInvocation(env: NodeJS.ProcessEnv): Invocation {
  const raw = env.CNI_COMMAND ?? '';
  if (raw === '') throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!(COMMANDS as readonly string[]).includes(raw)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND ${JSON.stringify(raw)}: expected one of ${COMMANDS.join(', ')}`);
  }
  const command = raw as Command;
  const missing: Var[] = [];
  for (const v of REQUIRED[command]) if (!env[v]) missing.push(v);
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  const inv: Invocation = {
    command,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: nonEmpty((env.CNI_PATH ?? '').split(':')),
  };
  if (REQUIRED[command].includes('CNI_CONTAINERID')) validateContainerId(inv.containerId);
  if (REQUIRED[command].includes('CNI_IFNAME')) validateIfname(inv.ifname);
  return inv;
}
