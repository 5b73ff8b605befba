// iptables-restore / iptables-save plumbing: building a --noflush script from
// per-table lines, knowing which request line a failing script line came
// from, and reading a table back.
import { runTool, firstLine, type ToolResult } from './exec.ts';
import { withFileLock } from '../state/index.ts';
import { hostStateDir } from '../state/scope.ts';
import { DEFAULT_DATA_DIR } from '../state/attachments.ts';
import { FirewallError, type RemovedAttachment } from './types.ts';

export type Family = 4 | 6;
export type Table = 'filter' | 'nat' | 'raw' | 'mangle';

/** One command line of a restore script, e.g. "-A CHAIN -j X", tagged with what it is for. */
export interface Line<T = unknown> {
  text: string;
  tag?: T;
}

/** Lines per table; `declare` lines (":CHAIN - [0:0]", create-or-flush under --noflush) go first in their table. */
export class Script<T = unknown> {
  private readonly tables = new Map<Table, { declare: Line<T>[]; commands: Line<T>[] }>();

  private table(t: Table) {
    let v = this.tables.get(t);
    if (!v) this.tables.set(t, (v = { declare: [], commands: [] }));
    return v;
  }

  declare(t: Table, chain: string, tag?: T): this {
    const d = this.table(t).declare;
    if (!d.some((l) => l.text === `:${chain} - [0:0]`)) d.push({ text: `:${chain} - [0:0]`, tag });
    return this;
  }

  add(t: Table, text: string, tag?: T): this {
    this.table(t).commands.push({ text, tag });
    return this;
  }

  /** Adds the line unless it is already there: shared infrastructure several plans may each ensure. */
  once(t: Table, text: string, tag?: T): this {
    if (!this.table(t).commands.some((l) => l.text === text)) this.add(t, text, tag);
    return this;
  }

  get empty(): boolean {
    for (const v of this.tables.values()) if (v.declare.length + v.commands.length > 0) return false;
    return true;
  }

  /** The script text and, per script line (1-based), the request line it came from. */
  render(): { text: string; lines: (Line<T> | undefined)[] } {
    const out: string[] = [];
    const lines: (Line<T> | undefined)[] = [undefined];
    const emit = (s: string, l?: Line<T>) => {
      out.push(s);
      lines.push(l);
    };
    // filter before nat: a failing check in filter then stops the script before nat changes anything.
    for (const t of ['raw', 'mangle', 'filter', 'nat'] as const) {
      const v = this.tables.get(t);
      if (!v || v.declare.length + v.commands.length === 0) continue;
      emit(`*${t}`);
      for (const l of v.declare) emit(l.text, l);
      for (const l of v.commands) emit(l.text, l);
      emit('COMMIT');
    }
    return { text: out.join('\n') + '\n', lines };
  }

  /** A copy without the given request lines. */
  without(drop: ReadonlySet<Line<T>>): Script<T> {
    const s = new Script<T>();
    for (const [t, v] of this.tables) {
      const nt = s.table(t);
      nt.declare = v.declare.filter((l) => !drop.has(l));
      nt.commands = v.commands.filter((l) => !drop.has(l));
    }
    return s;
  }
}

export interface RestoreOutcome<T> {
  ok: boolean;
  /** The request line that failed, when the tool named a line. */
  failed?: Line<T>;
  stderr: string;
}

function restoreTool(f: Family): string {
  return f === 4 ? 'iptables-restore' : 'ip6tables-restore';
}

function saveTool(f: Family): string {
  return f === 4 ? 'iptables-save' : 'ip6tables-save';
}

/** One iptables-restore --noflush transaction; -w waits for the xtables lock (legacy iptables). */
export function restore<T>(f: Family, script: Script<T>): RestoreOutcome<T> {
  if (script.empty) return { ok: true, stderr: '' };
  const { text, lines } = script.render();
  const r: ToolResult = runTool(restoreTool(f), ['-w', '--noflush'], text);
  if (r.status === 0) return { ok: true, stderr: r.stderr };
  // "iptables-restore: line 3 failed: ..." (nft and legacy) or "Error occurred at line: 3".
  const m = /line (\d+) failed/.exec(r.stderr) ?? /Error occurred at line: (\d+)/.exec(r.stderr);
  const failed = m ? lines[Number(m[1])] : undefined;
  return { ok: false, failed, stderr: r.stderr };
}

export function mustRestore<T>(f: Family, script: Script<T>, what: string): void {
  const r = restore(f, script);
  if (!r.ok) throw new FirewallError(`${what} (IPv${f}) failed: ${firstLine(r.stderr)}`, r.stderr);
}

/** A table as iptables-save prints it: chain names and "-A CHAIN ..." rule lines. */
export interface SavedTable {
  chains: Set<string>;
  rules: string[];
}

export function save(f: Family, table: Table): SavedTable {
  const r = runTool(saveTool(f), ['-t', table]);
  if (r.status !== 0) throw new FirewallError(`${saveTool(f)} -t ${table} failed: ${firstLine(r.stderr)}`, r.stderr);
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0]!);
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

/** The chain a saved "-A CHAIN ..." line belongs to. */
export function chainOf(rule: string): string {
  return rule.split(' ')[1] ?? '';
}

/** The saved rule as a delete command. */
export function asDelete(rule: string): string {
  return '-D' + rule.slice(2);
}

// ---- plans: what an operation does in one family, and its repair ----------

export const FAMILIES: readonly Family[] = [4, 6];

/** An operation compiled for one family: the lines to try first, and how to repair from the tables as they are. */
export interface Plan {
  describe: string;
  tables: readonly Table[];
  fast(s: Script<Plan>): void;
  slow(s: Script<Plan>, state: ReadonlyMap<Table, SavedTable>): void;
}

export interface RunOptions {
  /** Skip the fast path: repair from the tables as they are (a reload). */
  force?: boolean;
  /** More plans for the repair, decided from the tables read (e.g. every live attachment's, when a flush took the base chains). */
  more?: (state: ReadonlyMap<Table, SavedTable>) => Plan[];
}

/** Runs plans of one family in one transaction; on failure reads the tables and runs every plan's repair. */
export function runPlans(f: Family, plans: readonly Plan[], opts: RunOptions = {}): void {
  if (plans.length === 0) return;
  let outcome: RestoreOutcome<Plan> = { ok: false, stderr: '' };
  if (!opts.force) {
    const fast = new Script<Plan>();
    for (const p of plans) p.fast(fast);
    outcome = restore(f, fast);
    if (outcome.ok) return;
  }
  // Repairs read the tables, then write what is missing: two at once (first
  // ADDs on a host, in parallel) would both insert a missing jump. One at a
  // time per host network namespace; the fast path above needs no lock.
  withFileLock(`${hostStateDir(DEFAULT_DATA_DIR)}/iptables-repair.lock`, () => repair(f, plans, opts));
}

function repair(f: Family, plans: readonly Plan[], opts: RunOptions): void {
  let outcome: RestoreOutcome<Plan> = { ok: false, stderr: '' };
  // A chain made by something else between the read and the write collides on `-N`: read again and retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    const state = new Map<Table, SavedTable>();
    const read = (ps: readonly Plan[]) => {
      for (const p of ps) for (const t of p.tables) if (!state.has(t)) state.set(t, save(f, t));
    };
    read(plans);
    const extra = opts.more?.(state) ?? [];
    read(extra);
    const slow = new Script<Plan>();
    for (const p of [...plans, ...extra]) p.slow(slow, state);
    outcome = restore(f, slow);
    if (outcome.ok) return;
  }
  const what = outcome.failed?.tag?.describe ?? plans.map((p) => p.describe).join(', ');
  throw new FirewallError(`${what} (IPv${f}): ${firstLine(outcome.stderr)}`, outcome.stderr);
}

export function mergeRemoved(lists: RemovedAttachment[][]): RemovedAttachment[] {
  const m = new Map<string, RemovedAttachment>();
  for (const r of lists.flat()) {
    const e = m.get(r.tag);
    if (e) e.addresses.push(...r.addresses);
    else m.set(r.tag, { tag: r.tag, addresses: [...r.addresses] });
  }
  return [...m.values()];
}

