// The CNI protocol around a plugin: environment and stdin in, one result or
// error object out, exit status. Plugins only implement the commands.
import type { ValidateFunction } from 'ajv';
import type { NetConf, Result, Attachment } from '../spec/index.ts';
import { validationError } from '../spec/index.ts';
import { validateResult, validateResult040 } from '../spec/validators.gen.js';
import { keysNetConf, keysResult, keysResult040 } from '../spec/keys.gen.js';
import { normalizeKeys, type KeyTree } from '../spec/keys.ts';
import { tryParseIP, tryParsePrefix } from '../ip/index.ts';
import { inspectNetns, NetnsError } from '../netns/index.ts';
import { readFd, writeAll, isCharacterDevice } from '../fs/index.ts';
import { openLogger, type Logger } from '../log/index.ts';
import { CniError, ErrorCode } from './errors.ts';
import { readInvocation, type Invocation, type Command } from './env.ts';
import { LATEST_VERSION, SUPPORTED_VERSIONS, compareVersions, isSupported, requireSupported } from './version.ts';
import { convertResult, toCurrent, type AnyResult } from './result.ts';
import { versionAnswer } from './version-command.ts';

export { CniError, ErrorCode } from './errors.ts';
export { checkKnownArgs, validateIfname, validateContainerId, type Invocation, type Command } from './env.ts';
export { convertResult, toCurrent } from './result.ts';
export { SUPPORTED_VERSIONS, LATEST_VERSION, compareVersions } from './version.ts';

export interface Context<C> {
  inv: Invocation;
  conf: C;
  /** The prevResult of a chain, lifted to the 1.1.0 shape. */
  prevResult?: Result;
  log: Logger;
}

type MaybeAsync<T> = T | Promise<T>;

export interface Plugin<C extends NetConf> {
  name: string;
  /** Precompiled validator of the plugin's configuration (lib/spec). */
  validate: ValidateFunction;
  /**
   * The key tree of the configuration (lib/spec keys.gen), for Go-style key
   * spellings; NetConf's when not given. Declared, not looked up from
   * validate: keys.gen's keyTreeOfValidator holds every validator, and
   * importing it bundled all of them into each plugin's executable entry
   * (their schemas built at start-up: ~7% of a no-op exec, measured).
   */
  keys?: KeyTree;
  /**
   * 'container' (default): CNI_NETNS must be another namespace than the
   * plugin's own, so a mistake cannot reconfigure the host. 'host': it must
   * be the plugin's own (Docker's --net host). 'any': not looked at, for
   * IPAM plugins, which only pass it along (as the reference's do).
   */
  netns?: 'container' | 'host' | 'any';
  add(ctx: Context<C>): MaybeAsync<Result>;
  check(ctx: Context<C>): MaybeAsync<void>;
  del(ctx: Context<C>): MaybeAsync<void>;
  gc(ctx: Context<C>, valid: Attachment[]): MaybeAsync<void>;
  status(ctx: Context<C>): MaybeAsync<void>;
}

export interface Io {
  env: NodeJS.ProcessEnv;
  readStdin(): string;
  writeStdout(text: string): void;
}

export const processIo: Io = {
  env: process.env,
  // A terminal (a character device; /dev/null reads empty anyway) would block:
  // treat it as no input. Not node:tty, whose import costs ~2.5 ms under Bun.
  readStdin: () => (isCharacterDevice(0) ? '' : readFd(0)),
  // Synchronous write: the process may exit right after.
  writeStdout: (text) => writeAll(1, text),
};

const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

type Parsed = { value: unknown } | { error: Error };

function parse(stdin: string): Parsed {
  try {
    return { value: JSON.parse(stdin) };
  } catch (e) {
    return { error: e as Error };
  }
}

function decode(parsed: Parsed): Record<string, unknown> {
  if ('error' in parsed) {
    throw new CniError(ErrorCode.DecodingFailure, `error decoding network configuration from stdin: ${parsed.error.message}`);
  }
  const conf = parsed.value;
  if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) {
    throw new CniError(ErrorCode.DecodingFailure, 'error decoding network configuration from stdin: not a JSON object');
  }
  return conf as Record<string, unknown>;
}

/** The input's cniVersion if it is one this suite speaks; no error for anything else, decoding reports those. */
function inputVersion(parsed: Parsed): string | undefined {
  if (!('value' in parsed)) return undefined;
  const v = (parsed.value as { cniVersion?: unknown } | null)?.cniVersion;
  return typeof v === 'string' && isSupported(v) ? v : undefined;
}

function checkNetns(inv: Invocation, mode: 'container' | 'host'): void {
  try {
    const own = inspectNetns(inv.netns).current;
    if (mode === 'container' && own) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${inv.netns} is the plugin's own network namespace; a container needs a namespace of its own`);
    }
    if (mode === 'host' && !own) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${inv.netns} is not the host's network namespace: the host plugin shares the host's network, so CNI_NETNS must be the runtime's own namespace`);
    }
  } catch (e) {
    throw toCniError(e);
  }
}

function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof NetnsError) {
    const code = e.reason === 'missing' ? ErrorCode.UnknownContainer : ErrorCode.InvalidEnvironment;
    return new CniError(code, `CNI_NETNS: ${e.message}`);
  }
  return new CniError(ErrorCode.Internal, e instanceof Error ? e.message : String(e));
}

function invalidPrevResult(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, `invalid prevResult: ${msg}`);
}

/** Addresses are parsed as Go's net.IP/IPNet would be: a result that names no real address is refused. */
function checkPrevResultAddresses(r: AnyResult): void {
  const ips = r.ips ?? [];
  for (let n = 0; n < ips.length; n++) {
    const ip = ips[n]!;
    if (!tryParsePrefix(ip.address)) throw invalidPrevResult(`"prevResult.ips.${n}.address" must be an address with a prefix length, got ${JSON.stringify(ip.address)}`);
    if (ip.gateway !== undefined && !tryParseIP(ip.gateway)) throw invalidPrevResult(`"prevResult.ips.${n}.gateway" must be an IP address, got ${JSON.stringify(ip.gateway)}`);
  }
  const routes = r.routes ?? [];
  for (let n = 0; n < routes.length; n++) {
    const rt = routes[n]!;
    if (!tryParsePrefix(rt.dst)) throw invalidPrevResult(`"prevResult.routes.${n}.dst" must be a CIDR, got ${JSON.stringify(rt.dst)}`);
    if (rt.gw !== undefined && !tryParseIP(rt.gw)) throw invalidPrevResult(`"prevResult.routes.${n}.gw" must be an IP address, got ${JSON.stringify(rt.gw)}`);
  }
}

/**
 * The prevResult read as a result of the version it declares (the config's
 * when it declares none), then lifted to the 1.1.0 shape.
 */
function liftPrevResult(raw: unknown, confVersion: string): Result {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidPrevResult('not a JSON object');
  const declared = (raw as { cniVersion?: unknown }).cniVersion;
  if (declared !== undefined && (typeof declared !== 'string' || !isSupported(declared))) {
    throw new CniError(ErrorCode.IncompatibleVersion, `incompatible CNI versions: prevResult is ${JSON.stringify(declared)}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`, `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const version = declared ?? confVersion;
  const current = compareVersions(version, '1.0.0') >= 0;
  normalizeKeys(raw, current ? keysResult : keysResult040);
  const result = { ...(raw as object), cniVersion: version };
  const problem = validationError(current ? validateResult : validateResult040, result);
  if (problem) throw invalidPrevResult(problem.replace(/^"/, '"prevResult.'));
  checkPrevResultAddresses(result as AnyResult);
  return toCurrent(result as AnyResult);
}

/**
 * On DEL, what only ADD uses must not stop a teardown (SPEC: DEL completes
 * even when things are gone or odd): an invalid runtimeConfig, prevResult or
 * args is dropped and the plugin works from its records. Returns what was
 * dropped, or the problem that remains.
 */
function relaxForDel(validate: ValidateFunction, conf: Record<string, unknown>, problem: string): { dropped: string[]; problem?: string } {
  const dropped: string[] = [];
  let left: string | undefined = problem;
  while (left !== undefined) {
    const path = validate.errors?.[0]?.instancePath ?? '';
    let field: string | undefined;
    for (const f of DEL_DROPPABLE) if (path === `/${f}` || path.startsWith(`/${f}/`)) field = f;
    if (field === undefined) break;
    delete conf[field];
    dropped.push(field);
    left = validationError(validate, conf);
  }
  return left === undefined ? { dropped } : { dropped, problem: left };
}

const DEL_DROPPABLE = ['runtimeConfig', 'prevResult', 'args'] as const;

async function dispatch<C extends NetConf>(plugin: Plugin<C>, io: Io, state: { version: string }): Promise<void> {
  // stdin first: an error about the environment is still answered in the
  // input's protocol version (SPEC §5 Error), which only stdin tells.
  const stdin = io.readStdin();
  const parsed = parse(stdin);
  // Keys as Go's encoding/json matches them, before anything reads the config.
  if ('value' in parsed) normalizeKeys(parsed.value, plugin.keys ?? keysNetConf);
  state.version = inputVersion(parsed) ?? state.version;
  const inv = readInvocation(io.env);

  if (inv.command === 'VERSION') {
    io.writeStdout(versionAnswer(stdin));
    return;
  }

  const raw = decode(parsed);
  state.version = requireSupported(raw.cniVersion);
  const min = MIN_VERSION[inv.command];
  if (min && compareVersions(state.version, min) < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version ${state.version} does not allow ${inv.command} (needs ${min} or later)`);
  }
  let problem = validationError(plugin.validate, raw);
  let dropped: string[] = [];
  if (problem && inv.command === 'DEL') ({ dropped, problem } = relaxForDel(plugin.validate, raw, problem));
  if (problem) throw new CniError(ErrorCode.InvalidConfig, `invalid network configuration: ${problem}`);
  const conf = raw as C;

  const netnsMode = plugin.netns ?? 'container';
  if ((inv.command === 'ADD' || inv.command === 'CHECK') && netnsMode !== 'any') checkNetns(inv, netnsMode);

  const log = await openLogger(conf.logFile ?? io.env.CNIKIT_LOG_FILE, {
    plugin: plugin.name,
    network: conf.name,
    containerId: inv.containerId || undefined,
    ifname: inv.ifname || undefined,
  });
  const ctx: Context<C> = { inv, conf, log };
  if (dropped.length > 0) log.warn({ dropped }, 'DEL: ignoring invalid input; the plugin\'s records say what to undo');
  if (conf.prevResult !== undefined) {
    try {
      ctx.prevResult = liftPrevResult(conf.prevResult, state.version);
    } catch (e) {
      if (inv.command !== 'DEL') throw e;
      log.warn({ err: (e as Error).message }, 'DEL: ignoring an invalid prevResult');
    }
  }
  log.info({ command: inv.command }, 'start');

  switch (inv.command) {
    case 'ADD': {
      const result = await plugin.add(ctx);
      io.writeStdout(JSON.stringify(convertResult(result, state.version)) + '\n');
      break;
    }
    case 'CHECK':
      await plugin.check(ctx);
      break;
    case 'DEL':
      await plugin.del(ctx);
      break;
    case 'GC':
      await plugin.gc(ctx, conf['cni.dev/valid-attachments'] ?? []);
      break;
    case 'STATUS':
      await plugin.status(ctx);
      break;
  }
  log.info({ command: inv.command }, 'done');
}

/** Run one CNI invocation; returns the exit status. */
export async function runPlugin<C extends NetConf>(plugin: Plugin<C>, io: Io = processIo): Promise<number> {
  const state = { version: LATEST_VERSION };
  try {
    await dispatch(plugin, io, state);
    return 0;
  } catch (e) {
    const err = toCniError(e);
    const out: Record<string, unknown> = { cniVersion: state.version, code: err.code, msg: err.message };
    if (err.details !== undefined) out.details = err.details;
    io.writeStdout(JSON.stringify(out) + '\n');
    return 1;
  }
}
