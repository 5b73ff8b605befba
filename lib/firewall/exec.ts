// Running the firewall tools: argument arrays and stdin only, never a shell.
// The child inherits the calling thread's network namespace, so inside
// withNetns() the tools act on that namespace.
import { isExecutable } from '../fs/index.ts';
import { sys } from '../sys/index.ts';
import { FirewallError } from './types.ts';

export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

// Runtimes often exec plugins with a minimal PATH; the tools live in sbin.
const FALLBACK_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin'];
const resolved = new Map<string, string | null>();

/** The absolute path of a tool on PATH (or in the sbin directories), or undefined. */
export function findTool(name: string): string | undefined {
  const cached = resolved.get(name);
  if (cached !== undefined) return cached ?? undefined;
  let found: string | null = null;
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...FALLBACK_DIRS]) {
    if (!dir.startsWith('/')) continue;
    const p = `${dir}/${name}`;
    if (isExecutable(p)) {
      found = p;
      break;
    }
  }
  resolved.set(name, found);
  return found ?? undefined;
}

export function runTool(name: string, args: readonly string[], input = ''): ToolResult {
  const path = findTool(name);
  if (!path) throw new FirewallError(`${name} is not installed (looked in PATH and ${FALLBACK_DIRS.join(', ')})`);
  const r = sys.run(path, args, { input, timeoutMs: 60_000 });
  if (r.failure) throw new FirewallError(`cannot run ${name}: ${r.failure.message}`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the tool and throws a FirewallError with its stderr when it fails. */
export function mustRun(name: string, args: readonly string[], input = '', what = `${name} ${args.join(' ')}`): string {
  const r = runTool(name, args, input);
  if (r.status !== 0) throw new FirewallError(`${what} failed: ${firstLine(r.stderr)}`, r.stderr);
  return r.stdout;
}

export function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '' && !l.startsWith('# Warning'))?.trim() ?? '(no message)';
}
