// `nft` plumbing: one `nft -f -` transaction from lines, the failing lines
// mapped back to what they were for, and reading the table back (rules as
// text, elements as JSON).
import { runTool, firstLine } from './exec.ts';
import { tryParseIP, formatIP } from '../ip/index.ts';
import { FirewallError } from './types.ts';
import type { ElemChange } from './nfnetlink.ts';

export const TABLE = 'inet cnikit';

export interface NftLine<T> {
  text: string;
  tag?: T;
  /** The same change structured, when the line is an element change (see nfnetlink.ts). */
  elem?: ElemChange;
}

export interface NftFailure<T> {
  line?: NftLine<T>;
  message: string;
}

export interface NftOutcome<T> {
  ok: boolean;
  failures: NftFailure<T>[];
  stdout: string;
  stderr: string;
}

/** Runs the lines as one transaction (nft applies a file atomically). */
export function nftRun<T>(lines: readonly NftLine<T>[]): NftOutcome<T> {
  if (lines.length === 0) return { ok: true, failures: [], stdout: '', stderr: '' };
  const r = runTool('nft', ['-f', '-'], lines.map((l) => l.text).join('\n') + '\n');
  if (r.status === 0) return { ok: true, failures: [], stdout: r.stdout, stderr: r.stderr };
  const failures: NftFailure<T>[] = [];
  // "/dev/stdin:3:31-35: Error: Could not process rule: File exists"
  for (const m of r.stderr.matchAll(/^[^\n]*?:(\d+):\d+(?:-\d+)?: Error: ([^\n]*)$/gm)) {
    failures.push({ line: lines[Number(m[1]) - 1], message: m[2]! });
  }
  if (failures.length === 0) failures.push({ message: firstLine(r.stderr) });
  return { ok: false, failures, stdout: r.stdout, stderr: r.stderr };
}

export function mustNft(lines: readonly NftLine<unknown>[], what: string): void {
  const r = nftRun(lines);
  if (!r.ok) throw new FirewallError(`${what} failed: ${r.failures[0]!.message}`, r.stderr);
}

export function isExists(f: NftFailure<unknown>): boolean {
  return /File exists/.test(f.message);
}

/** One atom of an element as text: addresses canonical, quotes gone. */
function normAtom(a: string): string {
  const s = a.trim().replace(/^"(.*)"$/, '$1');
  const ip = tryParseIP(s);
  return ip ? formatIP(ip) : s;
}

/** An element key or value in a comparable form ("tcp . 8080", "goto masq-x", "::1"). */
export function normElement(text: string): string {
  return text.split(' . ').map(normAtom).join(' . ');
}

/** Chains of the table with their rule lines, as `nft -t list table` prints them. */
export interface ChainText {
  comment?: string;
  /** The "type ... hook ..." line of a base chain. */
  hook?: string;
  rules: string[];
}

/** The table's chains and rules, or undefined when the table does not exist. */
export function listChains(): Map<string, ChainText> | undefined {
  const r = runTool('nft', ['-t', 'list', 'table', ...TABLE.split(' ')]);
  if (r.status !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new FirewallError(`nft list table ${TABLE} failed: ${firstLine(r.stderr)}`, r.stderr);
  }
  return parseChains(r.stdout);
}

export function parseChains(text: string): Map<string, ChainText> {
  const chains = new Map<string, ChainText>();
  let current: ChainText | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const open = /^chain (\S+) \{$/.exec(line);
    if (open) {
      current = { rules: [] };
      chains.set(open[1]!, current);
      continue;
    }
    if (!current) continue;
    if (line === '}') {
      current = undefined;
    } else if (line.startsWith('type ') && line.includes(' hook ')) {
      current.hook = line;
    } else if (line.startsWith('comment "')) {
      current.comment = line.slice(9, -1);
    } else if (line !== '') {
      current.rules.push(line);
    }
  }
  return chains;
}

type Json = unknown;

function isObj(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonAtom(v: Json): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return normAtom(v);
  if (isObj(v)) {
    if (Array.isArray(v.concat)) return v.concat.map(jsonAtom).join(' . ');
    if (isObj(v.elem)) return jsonAtom(v.elem.val);
    for (const verdict of ['goto', 'jump'] as const) {
      const t = v[verdict];
      if (isObj(t) && typeof t.target === 'string') return `${verdict} ${t.target}`;
    }
    for (const verdict of ['accept', 'drop', 'return', 'continue'] as const) if (verdict in v) return verdict;
  }
  return JSON.stringify(v);
}

/** Elements of every set and map of the table: name → normalized key → normalized value ('' for sets). */
export function listElements(): Map<string, Map<string, string>> | undefined {
  const r = runTool('nft', ['-j', 'list', 'table', ...TABLE.split(' ')]);
  if (r.status !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new FirewallError(`nft -j list table ${TABLE} failed: ${firstLine(r.stderr)}`, r.stderr);
  }
  const out = new Map<string, Map<string, string>>();
  const doc = JSON.parse(r.stdout) as Json;
  const items = isObj(doc) && Array.isArray(doc.nftables) ? doc.nftables : [];
  for (const item of items) {
    if (!isObj(item)) continue;
    const s = isObj(item.set) ? item.set : isObj(item.map) ? item.map : undefined;
    if (!s || typeof s.name !== 'string') continue;
    const m = new Map<string, string>();
    for (const e of Array.isArray(s.elem) ? s.elem : []) {
      if (Array.isArray(e) && e.length === 2) m.set(jsonAtom(e[0]), jsonAtom(e[1]));
      else m.set(jsonAtom(e), '');
    }
    out.set(s.name, m);
  }
  return out;
}

/**
 * Reads single elements with `get element` (cost independent of the map's
 * size). Returns the normalized values in order, or the index of the first
 * element that is missing.
 */
export function getElements(items: ReadonlyArray<{ set: string; key: string }>): { values: string[] } | { missing: number; message: string } {
  if (items.length === 0) return { values: [] };
  const r = runTool('nft', ['-f', '-'], items.map((i) => `get element ${TABLE} ${i.set} { ${i.key} }`).join('\n') + '\n');
  if (r.status !== 0) {
    const m = /:(\d+):\d+(?:-\d+)?: Error: ([^\n]*)/.exec(r.stderr);
    return { missing: m ? Number(m[1]) - 1 : 0, message: m?.[2] ?? firstLine(r.stderr) };
  }
  const values: string[] = [];
  for (const m of r.stdout.matchAll(/elements = \{ (.*) \}/g)) {
    const body = m[1]!.replace(/ comment "[^"]*"/, '');
    const colon = body.indexOf(' : ');
    values.push(colon < 0 ? '' : normElement(body.slice(colon + 3)));
  }
  return { values };
}
