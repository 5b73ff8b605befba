// Side-by-side timing of plugin execs: every round runs each contender once,
// in turn, so drift on the machine hits all of them alike. Runs inside a lab
// host namespace of its own, like the tests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { withNetns } from '../lib/netns/index.ts';
import { deleteNetnsAndState } from '../test/lab.ts';

export interface Contender {
  name: string;
  /** Untimed preparation of one round (e.g. a fresh container namespace). */
  setup?: () => void;
  /** The timed part: returns nothing, throws on failure. */
  run: () => void;
  teardown?: () => void;
}

export interface Stats {
  name: string;
  n: number;
  median: number;
  p95: number;
  min: number;
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/**
 * Time given to the kernel's deferred work between an untimed step and the
 * timed one: deleting a network namespace (the previous contender's
 * teardown) runs its cleanup in a kernel worker afterwards, several ms of CPU
 * and RCU waits that would otherwise land on whichever contender runs next.
 */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 30);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function settle(): void {
  if (SETTLE_MS > 0) Atomics.wait(sleeper, 0, 0, SETTLE_MS);
}

/** Stats of samples (ms) taken elsewhere, e.g. by an asynchronous suite. */
export function summarize(name: string, samples: readonly number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return { name, n: s.length, median: quantile(s, 0.5), p95: quantile(s, 0.95), min: s[0] ?? NaN };
}

export function measure(contenders: Contender[], rounds: number, warmup = 2): Stats[] {
  const samples = contenders.map(() => [] as number[]);
  for (let r = 0; r < warmup + rounds; r++) {
    contenders.forEach((c, i) => {
      c.setup?.();
      settle();
      const t0 = process.hrtime.bigint();
      c.run();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      c.teardown?.();
      if (r >= warmup) samples[i]!.push(ms);
    });
  }
  return contenders.map((c, i) => {
    const s = samples[i]!.sort((a, b) => a - b);
    return { name: c.name, n: s.length, median: quantile(s, 0.5), p95: quantile(s, 0.95), min: s[0] ?? NaN };
  });
}

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Exec a plugin as a runtime does (or netavark, which takes arguments too); throws on a non-zero exit. */
export function execPlugin(binary: string, env: Record<string, string>, stdin: string, args: string[] = []): ExecResult {
  const r = spawnSync(binary, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, input: stdin, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${binary} ${[...args, env.CNI_COMMAND ?? ''].join(' ')}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

const LAB_PREFIX = 'ckb';
const LAB_NAME = new RegExp(`^${LAB_PREFIX}([0-9a-z]+)-(host|c\\d+)$`);
const DIR_PREFIX = 'cnikit-bench-';

/** Whether the bench run that named something with this base-36 pid is gone. */
function runIsGone(pid36: string): boolean {
  const pid = Number.parseInt(pid36, 36);
  return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !existsSync(`/proc/${pid}`);
}

/**
 * Remove what killed runs left: the runs are synchronous, so a SIGTERM or
 * SIGKILL never reaches their finally; their names carry the pid instead.
 */
function sweepDeadRuns(): void {
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const name of netns) {
    const m = LAB_NAME.exec(name);
    if (m?.[1] && runIsGone(m[1])) deleteNetnsAndState(name);
  }
  for (const name of readdirSync(tmpdir())) {
    if (name.startsWith(DIR_PREFIX) && runIsGone(name.slice(DIR_PREFIX.length))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** The scratch directory of this run, removed by the run or by the next one. */
export function benchDirectory(): string {
  const dir = join(tmpdir(), `${DIR_PREFIX}${process.pid.toString(36)}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A lab of namespaces for one bench run, all named with one prefix and all removed by close(). */
export class BenchLab {
  readonly prefix = `${LAB_PREFIX}${process.pid.toString(36)}`;
  readonly host = `${this.prefix}-host`;
  private n = 0;
  private readonly made = new Set<string>();

  constructor() {
    sweepDeadRuns();
    this.add(this.host);
    ip(['-n', this.host, 'link', 'set', 'lo', 'up']);
  }

  private add(name: string): void {
    ip(['netns', 'add', name]);
    this.made.add(name);
  }

  container(): string {
    const name = `${this.prefix}-c${this.n++}`;
    this.add(name);
    return `/run/netns/${name}`;
  }

  remove(path: string): void {
    const name = path.replace('/run/netns/', '');
    deleteNetnsAndState(name);
    this.made.delete(name);
  }

  /** Run fn with this process in the lab host namespace, so execs start there. */
  inHost<T>(fn: () => T): T {
    return withNetns(`/run/netns/${this.host}`, fn);
  }

  close(): void {
    for (const name of this.made) deleteNetnsAndState(name);
    this.made.clear();
  }
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, Linux ${release()}, NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'} (cnikit runs as a Bun-compiled executable: Node's start-up is not in these figures)`;
}

const f = (x: number) => x.toFixed(2);

/**
 * A markdown table of one comparison; ratio = median / reference median.
 * `also` names a second yardstick (e.g. netavark) that gets a ratio column
 * of its own when it is among the stats, so both readings sit side by side.
 */
export function table(title: string, stats: Stats[], reference: string, also?: { name: string; label: string }): string {
  const ratio = (s: Stats, to: Stats | undefined) => (to && s !== to ? `${f(s.median / to.median)}x` : '—');
  const ref = stats.find((s) => s.name === reference);
  const other = also ? stats.find((s) => s.name === also.name) : undefined;
  const head = ['contender', 'n', 'median ms', 'p95 ms', 'min ms', 'ratio to reference', ...(other && also ? [`ratio to ${also.label}`] : [])];
  const rows = stats.map((s) => `| ${[s.name, s.n, f(s.median), f(s.p95), f(s.min), ratio(s, ref), ...(other ? [ratio(s, other)] : [])].join(' | ')} |`);
  return [`### ${title}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---|').join('')}`, ...rows, ''].join('\n');
}
