// Delegation to another plugin (IPAM from bridge, plugins of a chain from the
// driver): exec it from CNI_PATH as a runtime would, or run cnikit's own in
// this process through the same skel, so the effect is identical and one
// process start is saved.
import { isExecutable } from '../fs/index.ts';
import { CniError, ErrorCode, runPlugin, type Plugin, type Command } from '../skel/index.ts';
import type { NetConf } from '../spec/index.ts';
import { sys } from '../sys/index.ts';

export interface Invocation {
  command: Command;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as "K=V;K2=V2". */
  args?: string;
  path: string[];
}

/** Resolves a plugin type to cnikit's own implementation, if it is one. */
export type InProcessResolver = (type: string) => Promise<Plugin<NetConf> | undefined>;

export interface DelegateOptions {
  inProcess?: InProcessResolver;
  /** Kills an exec'd plugin after this many ms. */
  timeoutMs?: number;
}

/** The caller's environment with this invocation's CNI_* on top, as the reference invoke does. */
function envOf(inv: Invocation): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CNI_COMMAND: inv.command, CNI_PATH: inv.path.join(':') };
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns !== undefined && inv.netns !== '') env.CNI_NETNS = inv.netns;
  if (inv.ifname !== undefined) env.CNI_IFNAME = inv.ifname;
  if (inv.args !== undefined && inv.args !== '') env.CNI_ARGS = inv.args;
  return env;
}

/** The executable named `type` in the first CNI_PATH directory that has it. */
export function findPlugin(type: string, path: string[]): string {
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniError(ErrorCode.InvalidConfig, `invalid plugin type ${JSON.stringify(type)}`);
  }
  for (const dir of path) {
    const candidate = `${dir}/${type}`;
    if (isExecutable(candidate)) return candidate;
  }
  throw new CniError(ErrorCode.InvalidConfig, `failed to find plugin "${type}" in path [${path.join(' ')}]`);
}

function parseOutput(type: string, stdout: string, status: number | null, stderr: string): unknown {
  const text = stdout.trim();
  let parsed: unknown;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CniError(ErrorCode.Internal, `plugin ${type} printed something that is not JSON: ${text.slice(0, 200)}`);
    }
  }
  if (status === 0) return parsed;
  const err = parsed as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  if (err && typeof err.code === 'number' && typeof err.msg === 'string') {
    throw new CniError(err.code, `plugin ${type}: ${err.msg}`, typeof err.details === 'string' ? err.details : undefined);
  }
  const why = stderr.trim() || text || `exit status ${status}`;
  throw new CniError(ErrorCode.Internal, `plugin ${type} failed: ${why.slice(0, 500)}`);
}

/**
 * Runs `conf.type` for `inv`. Returns the parsed stdout (the result of ADD,
 * undefined for the other commands); a failure becomes a CniError with the
 * plugin's own code and a message naming it.
 */
export async function delegate(conf: NetConf, inv: Invocation, opts: DelegateOptions = {}): Promise<unknown> {
  const type = conf.type;
  const stdin = JSON.stringify(conf);
  const env = envOf(inv);
  const own = await opts.inProcess?.(type);
  if (own) {
    let stdout = '';
    const status = await runPlugin(own, {
      env,
      readStdin: () => stdin,
      writeStdout: (text) => {
        stdout += text;
      },
    });
    return parseOutput(type, stdout, status, '');
  }
  const binary = findPlugin(type, inv.path);
  const r = sys.run(binary, [], { env, input: stdin, timeoutMs: opts.timeoutMs });
  if (r.failure) {
    throw new CniError(ErrorCode.Internal, r.failure.kind === 'timeout' ? `plugin ${type} did not finish within ${opts.timeoutMs} ms` : `cannot run plugin ${type}: ${r.failure.message}`);
  }
  return parseOutput(type, r.stdout, r.status, r.stderr);
}
