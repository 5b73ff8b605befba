// What counts as a name the responder can serve: RFC 1035 lengths, labels of
// letters, digits, '-' and '_' (container names often have '_').
const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;

/** Undefined when valid, else why not. */
export function checkDnsName(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > 253) return 'it is longer than 253 characters';
  for (const label of name.split('.')) {
    if (label.length > 63) return `label "${label}" is longer than 63 characters`;
    if (!LABEL.test(label)) return `label "${label}" may hold only letters, digits, '-' and '_', and neither start nor end with '-'`;
  }
  return undefined;
}
