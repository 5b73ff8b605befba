// The name grammars every plugin checks: CNI network names and container IDs
// (SPEC: alphanumeric first, then alphanumerics, '_', '.' or '-'), and Linux
// interface names. Char-code loops rather than regular expressions: these
// run in every plugin exec, where a regular expression's first use costs
// ~50 µs under Bun.

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ */
export function isCniName(s: string): boolean {
  if (s.length === 0 || !isAlnum(s.charCodeAt(0))) return false;
  for (let i = 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnum(c) && c !== 95 /* _ */ && c !== 46 /* . */ && c !== 45 /* - */) return false;
  }
  return true;
}

/** ^[A-Za-z0-9_.@-]{1,15}$: an interface name that is also safe as it is in iptables arguments and nft strings. */
export function isPlainIfname(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnum(c) && c !== 95 && c !== 46 && c !== 64 /* @ */ && c !== 45) return false;
  }
  return true;
}

/** A character the kernel refuses in an interface name (dev_valid_name): '/', ':', whitespace; NUL too. */
export function hasIfnameForbiddenChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 47 || c === 58 || c === 32 || c === 0 || (c >= 9 && c <= 13) || (c > 127 && s[i]!.trim() === '')) return true;
  }
  return false;
}
