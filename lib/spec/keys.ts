// Keys as Go's encoding/json reads them. Runtimes and configs written for the
// Go reference plugins send struct field names ("HostPort", "IngressRate"),
// which Go matches to a field case-insensitively. normalizeKeys renames such
// keys to the schema's spelling before validation, from trees generated out of
// the JSON Schemas (keys.gen.js), so every schema gets the rule without a line
// per field. It runs on every plugin exec: plain loops, no regex, no copies.

/** The property names a schema knows at one depth, and the trees below them. */
export interface KeyTree {
  /** Lower-case name → canonical name ('' when two names differ only in case: left as they are). */
  readonly k?: Readonly<Record<string, string>>;
  /** Canonical name → the tree of its value. */
  readonly c?: Readonly<Record<string, KeyTree>>;
  /** The tree of every array item. */
  readonly i?: KeyTree;
  /** The tree of the values of keys the schema does not name (additionalProperties). */
  readonly a?: KeyTree;
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Renames, in place, every key that matches a known name but for case to that
 * name. As Go: an exact-case key wins over the others (they are dropped); of
 * several that match but for case, the last one wins. Unknown keys stay.
 */
export function normalizeKeys(value: unknown, tree: KeyTree | undefined): void {
  if (tree === undefined || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    const items = tree.i;
    if (items !== undefined) for (let n = 0; n < value.length; n++) normalizeKeys(value[n], items);
    return;
  }
  const o = value as Record<string, unknown>;
  const known = tree.k;
  const children = tree.c;
  const rest = tree.a;
  // Keys are collected first: renaming while a for-in runs may visit a key twice.
  const keys = Object.keys(o);
  let moved: string[] | undefined;
  for (let n = 0; n < keys.length; n++) {
    const key = keys[n] as string;
    let name: string | undefined = known === undefined ? undefined : known[key];
    if (name === undefined && known !== undefined) name = known[key.toLowerCase()];
    if (name === undefined || name === '') {
      if (rest !== undefined) normalizeKeys(o[key], rest);
      continue;
    }
    if (name !== key) {
      const v = o[key];
      delete o[key];
      // Taken by the exact-case key (and not by an earlier rename): that one wins.
      if (hasOwn.call(o, name) && (moved === undefined || !moved.includes(name))) continue;
      o[name] = v;
      (moved ??= []).push(name);
    }
    if (children !== undefined) {
      const sub = children[name];
      if (sub !== undefined) normalizeKeys(o[name], sub);
    }
  }
}
