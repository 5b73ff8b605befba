// The rules of cnikit's own chains (nftables.ts) as nf_tables expressions, so
// a chain can be made in the same netlink transaction as the elements that
// jump to it: a subnet's first address (its chain went with the last one)
// then costs no `nft` exec. Only the small grammar those chains use is
// spoken here; anything else throws BatchUnsupported and goes through nft.
//
// The expressions are the ones nft itself emits for the same text (checked
// against `nft --debug=netlink`), so `nft list` prints the rule back as
// written and CHECK, which compares listings, sees no difference.
import { attr, nested, str, concat } from '../netlink/codec.ts';
import { tryParsePrefix, ipToBytes } from '../ip/index.ts';
import { BatchUnsupported } from './nfnetlink.ts';

const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NFT_META_OIFNAME = 7;
const NFT_META_NFPROTO = 15;
const NFT_CMP_EQ = 0;
const NFT_CMP_NEQ = 1;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFPROTO = { 4: 2, 6: 10 } as const;
const IFNAMSIZ = 16;
// Offsets of the source and destination address in each family's header.
const ADDR_OFFSET = { 4: { saddr: 12, daddr: 16 }, 6: { saddr: 8, daddr: 24 } } as const;
const VERDICTS: Record<string, number> = { drop: 0, accept: 1, return: -5 };
const te = new TextEncoder();

function be32(type: number, v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return attr(type, b);
}

function expr(name: string, data: readonly Uint8Array[]): Uint8Array {
  return nested(NFTA_LIST_ELEM, [str(NFTA_EXPR_NAME, name), ...(data.length > 0 ? [nested(NFTA_EXPR_DATA, data)] : [])]);
}

function value(type: number, bytes: Uint8Array): Uint8Array {
  return nested(type, [attr(NFTA_DATA_VALUE, bytes)]);
}

const meta = (key: number) => expr('meta', [be32(2, key), be32(1, NFT_REG_1)]);
const cmp = (op: number, bytes: Uint8Array) => expr('cmp', [be32(1, NFT_REG_1), be32(2, op), value(3, bytes)]);
const payload = (offset: number, len: number) =>
  expr('payload', [be32(1, NFT_REG_1), be32(2, NFT_PAYLOAD_NETWORK_HEADER), be32(3, offset), be32(4, len)]);
const bitwise = (mask: Uint8Array) =>
  expr('bitwise', [be32(1, NFT_REG_1), be32(2, NFT_REG_1), be32(3, mask.length), value(4, mask), value(5, new Uint8Array(mask.length))]);

function verdict(word: string): Uint8Array {
  if (word === 'masquerade') return expr('masq', []);
  const code = VERDICTS[word];
  if (code === undefined) throw new BatchUnsupported(`verdict "${word}" is not encoded here`);
  const c = new Uint8Array(4);
  new DataView(c.buffer).setInt32(0, code);
  return expr('immediate', [be32(1, NFT_REG_VERDICT), nested(2, [nested(NFTA_DATA_VERDICT, [attr(NFTA_VERDICT_CODE, c)])])]);
}

/** `ip daddr != 10.88.0.0/16` and the like: the prefix's bytes, or a full load and a mask where it ends inside a byte. */
function addressMatch(family: 4 | 6, field: 'saddr' | 'daddr', op: number, text: string, out: Uint8Array[]): void {
  const p = tryParsePrefix(text.includes('/') ? text : `${text}/${family === 4 ? 32 : 128}`);
  if (!p || p.ip.family !== family) throw new BatchUnsupported(`"${text}" is not an IPv${family} prefix`);
  const bytes = ipToBytes(p.ip);
  const offset = ADDR_OFFSET[family][field];
  if (p.length > 0 && p.length % 8 === 0) {
    out.push(payload(offset, p.length / 8), cmp(op, bytes.slice(0, p.length / 8)));
    return;
  }
  const mask = new Uint8Array(bytes.length);
  for (let i = 0; i < p.length; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  const net = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) net[i] = bytes[i]! & mask[i]!;
  out.push(payload(offset, bytes.length), bitwise(mask), cmp(op, net));
}

function ifnameBytes(quoted: string): Uint8Array {
  if (!(quoted.length >= 2 && quoted.startsWith('"') && quoted.endsWith('"'))) throw new BatchUnsupported(`${quoted} is not a quoted name`);
  const name = te.encode(quoted.slice(1, -1));
  if (name.length >= IFNAMSIZ) throw new BatchUnsupported(`${quoted} is too long for an interface name`);
  const b = new Uint8Array(IFNAMSIZ);
  b.set(name);
  return b;
}

/**
 * The expressions of one rule: matches on `ip`/`ip6` `saddr`/`daddr` (an
 * address or prefix, `!=` allowed) and on `oifname` (a quoted name, `!=`
 * allowed, or `@set`), then `masquerade`, `drop`, `return` or `accept`.
 */
export function encodeRule(text: string): Uint8Array {
  // Single spaces: these are cnikit's own rule texts (and no regular expression on the plugin path).
  const words = text.split(' ');
  const out: Uint8Array[] = [];
  let family: 4 | 6 | undefined;
  let i = 0;
  while (i < words.length - 1) {
    const w = words[i]!;
    if ((w === 'ip' || w === 'ip6') && (words[i + 1] === 'saddr' || words[i + 1] === 'daddr')) {
      const f = w === 'ip' ? 4 : 6;
      const operand = words[i + 2] === '!=' ? words[i + 3] : words[i + 2];
      if (operand === undefined || operand.startsWith('{') || operand.startsWith('@')) throw new BatchUnsupported(`"${text}": only a single address or prefix is encoded here`);
      // nft states the family once per rule, before the first match of it.
      if (family !== f) out.push(meta(NFT_META_NFPROTO), cmp(NFT_CMP_EQ, Uint8Array.of(NFPROTO[f])));
      family = f;
      addressMatch(f, words[i + 1] as 'saddr' | 'daddr', words[i + 2] === '!=' ? NFT_CMP_NEQ : NFT_CMP_EQ, operand, out);
      i += words[i + 2] === '!=' ? 4 : 3;
    } else if (w === 'oifname') {
      const negated = words[i + 1] === '!=';
      const operand = negated ? words[i + 2] : words[i + 1];
      if (operand === undefined) throw new BatchUnsupported(`"${text}": oifname without a name`);
      out.push(meta(NFT_META_OIFNAME));
      if (operand.startsWith('@')) {
        if (negated) throw new BatchUnsupported(`"${text}": a negated set lookup is not encoded here`);
        out.push(expr('lookup', [str(1, operand.slice(1)), be32(2, NFT_REG_1)]));
      } else {
        out.push(cmp(negated ? NFT_CMP_NEQ : NFT_CMP_EQ, ifnameBytes(operand)));
      }
      i += negated ? 3 : 2;
    } else {
      throw new BatchUnsupported(`"${text}": "${w}" is not encoded here`);
    }
  }
  if (i !== words.length - 1) throw new BatchUnsupported(`"${text}" does not end in a verdict`);
  out.push(verdict(words[i]!));
  return concat(out);
}
