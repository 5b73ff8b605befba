// Set-element changes to the cnikit table over NETLINK_NETFILTER, as one
// nf_tables batch, without exec'ing nft. This is the whole firewall work of a
// steady-state ADD or DEL (nftables.ts keeps a container to map elements), so
// it is where an `nft` exec (its start-up and its cache dumps, which grow with
// the maps) was most of a plugin's time. Anything else goes through `nft -f`.
import { sys, SysError, errnoName, NETLINK_NETFILTER } from '../sys/index.ts';
import { attr, nested, str, concat, struct, parseAttrs, nlmsg, walkMessages, NLMSG_HDRLEN as HEADER, NLA_F_NESTED } from '../netlink/codec.ts';
import { type IPAddr, ipToBytes, tryParseIP } from '../ip/index.ts';
import { findCoreutil } from '../fs/index.ts';

const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_DUMP = 0x300;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_DELCHAIN = 5;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFT_MSG_GETGEN = 16;
const NFPROTO_INET = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_USE = 6;
const NFTA_CHAIN_USERDATA = 12;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NLM_F_APPEND = 0x800;
const NFTNL_UDATA_CHAIN_COMMENT = 0;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_USERDATA = 6;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
const IFNAMSIZ = 16;
const te = new TextEncoder();

const VERDICTS: Record<string, number> = { drop: 0, accept: 1, continue: -1, return: -5 };
const JUMPS: Record<string, number> = { jump: -3, goto: -4 };
const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

/** One value of a key or data: an address, a number (protocol, port) or nft text. */
export type Atom = IPAddr | number | string;

/**
 * One `add element` or `delete element` of the table, in nft's own text for
 * key and data. The caller may also give the values themselves (keyAtoms,
 * dataAtoms: one per part of a concatenation, or a verdict's words), which
 * are then encoded as they are instead of parsed back from the text.
 */
export interface ElemChange {
  op: 'add' | 'delete';
  set: string;
  key: string;
  data?: string;
  comment?: string;
  keyAtoms?: readonly Atom[];
  dataAtoms?: readonly Atom[];
}

/** A set's type as nft declares it: "ipv4_addr . inet_service : verdict". */
export type SetTypes = ReadonlyMap<string, string>;

/** The batch cannot go over netlink (a type not encoded here, or no nfnetlink): use nft. */
export class BatchUnsupported extends Error {}

/** A plain decimal ("0", "80"), or -1: no regular expression on the plugin path (its first use costs ~50 µs). */
function decimal(text: string): number {
  if (text.length === 0 || text.length > 10) return -1;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** One atom of a key or value, 4-byte aligned as nf_tables registers hold it in a concatenation. */
function encodeAtom(type: string, atom: Atom, inConcat: boolean): Uint8Array {
  const pad = (b: Uint8Array) => (inConcat && b.length % 4 !== 0 ? concat([b, new Uint8Array(4 - (b.length % 4))]) : b);
  const text = typeof atom === 'string' ? atom.trim() : '';
  switch (type) {
    case 'ipv4_addr':
    case 'ipv6_addr': {
      const ip = typeof atom === 'string' ? tryParseIP(text) : typeof atom === 'number' ? undefined : atom;
      if (!ip || ip.family !== (type === 'ipv4_addr' ? 4 : 6)) throw new BatchUnsupported(`"${String(text || atom)}" is not an ${type}`);
      return ipToBytes(ip);
    }
    case 'inet_proto': {
      const p = typeof atom === 'number' ? atom : typeof atom === 'string' ? (PROTOCOLS[text] ?? decimal(text)) : NaN;
      if (!(p >= 0 && p <= 255)) throw new BatchUnsupported(`"${text}" is not an inet_proto`);
      return pad(Uint8Array.of(p));
    }
    case 'inet_service': {
      const n = typeof atom === 'number' ? atom : typeof atom === 'string' ? decimal(text) : NaN;
      if (!(Number.isInteger(n) && n >= 0 && n <= 65535)) throw new BatchUnsupported(`"${text}" is not an inet_service`);
      return pad(Uint8Array.of(n >> 8, n & 0xff));
    }
    case 'ifname': {
      if (typeof atom !== 'string') throw new BatchUnsupported('an ifname is text');
      const bare = text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
      const name = te.encode(bare);
      if (name.length >= IFNAMSIZ) throw new BatchUnsupported(`"${text}" is not an ifname`);
      const b = new Uint8Array(IFNAMSIZ);
      b.set(name);
      return b;
    }
    default:
      throw new BatchUnsupported(`set type ${type} is not encoded here`);
  }
}

function encodeValue(type: string, text: string, given?: readonly Atom[]): Uint8Array {
  const types = type.split(' . ');
  const atoms: readonly Atom[] = given ?? text.split(' . ');
  if (atoms.length !== types.length) throw new BatchUnsupported(`"${text}" does not match ${type}`);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < atoms.length; i++) parts.push(encodeAtom(types[i]!, atoms[i]!, types.length > 1));
  return concat(parts);
}

function encodeData(type: string, text: string, given?: readonly Atom[]): Uint8Array {
  if (type !== 'verdict') return attr(NFTA_DATA_VALUE, encodeValue(type, text, given));
  const words = given ? (given as string[]) : text.trim().split(' ');
  if (words.length > 2) throw new BatchUnsupported(`"${text}" is not a verdict`);
  const [word, chain] = words;
  const code = new Uint8Array(4);
  if (word !== undefined && word in JUMPS && chain) {
    new DataView(code.buffer).setInt32(0, JUMPS[word]!);
    return nested(NFTA_DATA_VERDICT, [attr(NFTA_VERDICT_CODE, code), str(NFTA_VERDICT_CHAIN, chain)]);
  }
  if (word !== undefined && word in VERDICTS && !chain) {
    new DataView(code.buffer).setInt32(0, VERDICTS[word]!);
    return nested(NFTA_DATA_VERDICT, [attr(NFTA_VERDICT_CODE, code)]);
  }
  throw new BatchUnsupported(`"${text}" is not a verdict`);
}

function encodeComment(comment: string, attrType = NFTA_SET_ELEM_USERDATA, udataType = NFTNL_UDATA_SET_ELEM_COMMENT): Uint8Array {
  const text = te.encode(comment);
  // nftnl udata TLV: one byte type, one byte length, the NUL-terminated text.
  if (text.length + 1 > 255) throw new BatchUnsupported('comment too long');
  return attr(attrType, concat([Uint8Array.of(udataType, text.length + 1), text, Uint8Array.of(0)]));
}

/** A regular chain of the table made (or, if it is there, emptied) and given its rules, each as nft-rules.ts encodes it. */
export interface ChainChange {
  name: string;
  comment?: string;
  rules: readonly Uint8Array[];
}

/** The messages of one ChainChange: create, flush, then each rule appended. */
function chainMessages(table: string, c: ChainChange, seq: number): Uint8Array[] {
  const sub = NFNL_SUBSYS_NFTABLES << 8;
  const out = [
    message(sub | NFT_MSG_NEWCHAIN, NLM_F_ACK | NLM_F_CREATE, seq, NFPROTO_INET, 0, [
      str(NFTA_CHAIN_TABLE, table),
      str(NFTA_CHAIN_NAME, c.name),
      ...(c.comment ? [encodeComment(c.comment, NFTA_CHAIN_USERDATA, NFTNL_UDATA_CHAIN_COMMENT)] : []),
    ]),
    message(sub | NFT_MSG_DELRULE, NLM_F_ACK, seq + 1, NFPROTO_INET, 0, [str(NFTA_RULE_TABLE, table), str(NFTA_RULE_CHAIN, c.name)]),
  ];
  for (let i = 0; i < c.rules.length; i++) {
    out.push(message(sub | NFT_MSG_NEWRULE, NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND, seq + 2 + i, NFPROTO_INET, 0, [
      str(NFTA_RULE_TABLE, table),
      str(NFTA_RULE_CHAIN, c.name),
      attr(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, c.rules[i]!),
    ]));
  }
  return out;
}

function message(type: number, flags: number, seq: number, family: number, resId: number, attrs: readonly Uint8Array[]): Uint8Array {
  const body = concat([struct(4, (dv) => { dv.setUint8(0, family); dv.setUint8(1, 0); dv.setUint16(2, resId); }), ...attrs]);
  return nlmsg(type, flags, seq, body);
}

/** The netlink message of one change (throws BatchUnsupported for what this module does not speak). */
export function encodeChange(table: string, types: SetTypes, c: ElemChange, seq: number): Uint8Array {
  const type = types.get(c.set);
  if (!type) throw new BatchUnsupported(`set ${c.set} is not known`);
  const [keyType, dataType] = type.split(' : ');
  const elem: Uint8Array[] = [nested(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, encodeValue(keyType!, c.key, c.keyAtoms))])];
  if (c.op === 'add') {
    if ((c.data === undefined) !== (dataType === undefined)) throw new BatchUnsupported(`element ${c.key} of ${c.set} needs ${dataType ? 'a' : 'no'} value`);
    if (c.data !== undefined && dataType) elem.push(nested(NFTA_SET_ELEM_DATA, [encodeData(dataType, c.data, c.dataAtoms)]));
    if (c.comment) elem.push(encodeComment(c.comment));
  }
  // NLM_F_CREATE without NLM_F_EXCL: re-adding an identical element is a no-op,
  // a different value for the key is EEXIST (what `nft add element` does).
  const type_ = NFNL_SUBSYS_NFTABLES << 8 | (c.op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
  return message(type_, NLM_F_ACK | (c.op === 'add' ? NLM_F_CREATE : 0), seq, NFPROTO_INET, 0, [
    str(NFTA_SET_ELEM_LIST_TABLE, table),
    str(NFTA_SET_ELEM_LIST_SET, c.set),
    nested(NFTA_SET_ELEM_LIST_ELEMENTS, [nested(NFTA_LIST_ELEM, elem)]),
  ]);
}

const STRERROR: Record<number, string> = { 2: 'No such file or directory', 16: 'Device or resource busy', 17: 'File exists', 22: 'Invalid argument' };

export interface BatchOutcome {
  /** Per change, in order: 0 or the errno the kernel refused it with. */
  errors: number[];
  /** The message nft would print for a refused change. */
  messages: string[];
}

let seqBase = Math.floor(Math.random() * 0x3fffffff);
// Reused by every batch (synchronous; nothing refers to it after the batch).
const recvBuf = new Uint8Array(1 << 16);

/**
 * Applies the changes as one transaction (all or nothing, as `nft -f` does)
 * to table `inet <table>` in the calling thread's network namespace, after
 * making the given chains in the same transaction. Throws BatchUnsupported,
 * before sending anything, when a change cannot be encoded or nfnetlink
 * cannot be opened. A refused chain message fails the whole transaction:
 * every change then reports its errno.
 */
export function applyBatch(table: string, types: SetTypes, changes: readonly ElemChange[], chains: readonly ChainChange[] = []): BatchOutcome {
  let chainMsgs = 0;
  for (const c of chains) chainMsgs += 2 + c.rules.length;
  const first = (seqBase += chainMsgs + changes.length + 3);
  const resId = NFNL_SUBSYS_NFTABLES;
  const parts: Uint8Array[] = [message(NFNL_MSG_BATCH_BEGIN, 0, first, 0, resId, [])];
  let seq = first + 1;
  for (const c of chains) {
    for (const m of chainMessages(table, c, seq)) parts.push(m);
    seq += 2 + c.rules.length;
  }
  const firstChange = seq;
  for (let i = 0; i < changes.length; i++) parts.push(encodeChange(table, types, changes[i]!, firstChange + i));
  parts.push(message(NFNL_MSG_BATCH_END, 0, firstChange + changes.length, 0, resId, []));
  const batch = concat(parts);
  // A request after the batch: its answer comes after every answer of the batch.
  const fenceSeq = firstChange + changes.length + 1;
  const fence = message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, NLM_F_ACK, fenceSeq, 0, 0, []);
  let fd: number;
  try {
    fd = sys.netlinkSocket(NETLINK_NETFILTER);
  } catch (e) {
    if (e instanceof SysError) throw new BatchUnsupported(e.message);
    throw e;
  }
  let deleted = false;
  try {
    sys.send(fd, batch);
    sys.send(fd, fence);
    const errors: number[] = [];
    for (let i = 0; i < changes.length; i++) errors.push(0);
    // Against the batch header (a failed commit) or a chain message: the whole transaction.
    let batchError: number = 0;
    readUntil(fd, fenceSeq, (type, seq, off, _len, dv) => {
      if (type !== NLMSG_ERROR) return;
      const err = Math.abs(dv.getInt32(off + HEADER, true));
      const i = seq - firstChange;
      if (i >= 0 && i < changes.length) errors[i] = err;
      else if (err !== 0 && batchError === 0) batchError = err;
    });
    let failed = false;
    for (const e of errors) if (e !== 0) failed = true;
    if (batchError !== 0 && (!failed || chains.length > 0)) {
      for (let i = 0; i < errors.length; i++) if (errors[i] === 0) errors[i] = batchError;
      failed = true;
    }
    for (const c of changes) if (c.op === 'delete') deleted = !failed;
    const messages: string[] = [];
    for (const e of errors) messages.push(e === 0 ? '' : `Could not process rule: ${STRERROR[e] ?? errnoName(e)}`);
    return { errors, messages };
  } catch (e) {
    if (e instanceof SysError) throw new Error(`nf_tables batch: ${e.message}`);
    throw e;
  } finally {
    if (deleted) handOver(fd);
    else sys.close(fd);
  }
}

/** Reads answers, calling `on` for each message (type, seq, its offset and length in recvBuf, a view of it) until it returns true. */
function readMessages(fd: number, on: (type: number, seq: number, off: number, len: number, dv: DataView) => boolean | void): void {
  while (!walkMessages(recvBuf, sys.recv(fd, recvBuf), on));
}

/** Reads every answer up to the fence's ack, calling `on` for each message before it. */
function readUntil(fd: number, fenceSeq: number, on: (type: number, seq: number, off: number, len: number, dv: DataView) => void): void {
  readMessages(fd, (type, seq, off, len, dv) => {
    if (seq === fenceSeq && type === NLMSG_ERROR) return true;
    on(type, seq, off, len, dv);
  });
}

/** How many rules a chain of table `inet <table>` has (a dump of them, filtered by the kernel). */
function countRules(fd: number, table: string, chain: string): number {
  const seq = ++seqBase;
  sys.send(fd, message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE, NLM_F_DUMP, seq, NFPROTO_INET, 0, [
    str(NFTA_RULE_TABLE, table),
    str(NFTA_RULE_CHAIN, chain),
  ]));
  let n = 0;
  readMessages(fd, (type, got) => {
    if (got !== seq) return;
    if (type === NLMSG_DONE || type === NLMSG_ERROR) return true;
    if (type === (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE)) n++;
  });
  return n;
}

/**
 * Deletes each named chain of table `inet <table>` that nothing jumps to any
 * more, its rules with it. The kernel counts a chain's rules and the rules
 * and map elements that jump to it (NFTA_CHAIN_USE), so a read of that and
 * of the chain's rules tells a chain in use, which stays without a
 * transaction (an aborted one costs an RCU grace period). A chain that looks unused is
 * deleted in a transaction of its own, which the kernel refuses (EBUSY) if
 * an element started to jump to it since: a DEL can offer every chain its
 * elements pointed at, and an ADD that starts using one again either holds
 * it or finds it missing and recreates it. Returns the chains deleted.
 * Throws BatchUnsupported when nfnetlink cannot be opened.
 */
export function deleteUnusedChains(table: string, chains: readonly string[]): string[] {
  if (chains.length === 0) return [];
  let fd: number;
  try {
    fd = sys.netlinkSocket(NETLINK_NETFILTER);
  } catch (e) {
    if (e instanceof SysError) throw new BatchUnsupported(e.message);
    throw e;
  }
  const deleted: string[] = [];
  try {
    let first = (seqBase += chains.length + 2);
    for (let i = 0; i < chains.length; i++) {
      sys.send(fd, message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN, 0, first + i, NFPROTO_INET, 0, [
        str(NFTA_CHAIN_TABLE, table),
        str(NFTA_CHAIN_NAME, chains[i]!),
      ]));
    }
    let fenceSeq = first + chains.length;
    sys.send(fd, message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, NLM_F_ACK, fenceSeq, 0, 0, []));
    const uses: number[] = [];
    for (let i = 0; i < chains.length; i++) uses.push(-1);
    readUntil(fd, fenceSeq, (type, seq, off, len) => {
      const i = seq - first;
      if (i < 0 || i >= chains.length || type !== (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN)) return;
      const use = parseAttrs(recvBuf, off + HEADER + 4, off + len).get(NFTA_CHAIN_USE);
      if (use && use.length >= 4) uses[i] = new DataView(use.buffer, use.byteOffset, 4).getUint32(0);
    });
    // Each of a chain's own rules is one use: more uses than rules are jumps to it.
    const unused: string[] = [];
    for (let i = 0; i < chains.length; i++) {
      if (uses[i]! < 0) continue;
      if (uses[i]! <= 1 || uses[i]! <= countRules(fd, table, chains[i]!)) unused.push(chains[i]!);
    }
    if (unused.length === 0) return deleted;

    first = (seqBase += 3 * unused.length + 2);
    for (let i = 0; i < unused.length; i++) {
      const seq = first + 3 * i;
      sys.send(fd, concat([
        message(NFNL_MSG_BATCH_BEGIN, 0, seq, 0, NFNL_SUBSYS_NFTABLES, []),
        message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELCHAIN, NLM_F_ACK, seq + 1, NFPROTO_INET, 0, [
          str(NFTA_CHAIN_TABLE, table),
          str(NFTA_CHAIN_NAME, unused[i]!),
        ]),
        message(NFNL_MSG_BATCH_END, 0, seq + 2, 0, NFNL_SUBSYS_NFTABLES, []),
      ]));
    }
    fenceSeq = first + 3 * unused.length;
    sys.send(fd, message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, NLM_F_ACK, fenceSeq, 0, 0, []));
    // Acked with 0, and no error against its batch as a whole (a failed commit).
    const acked: boolean[] = [];
    const failed: boolean[] = [];
    for (let i = 0; i < unused.length; i++) acked.push(false), failed.push(false);
    readUntil(fd, fenceSeq, (type, seq, off, _len, dv) => {
      if (type !== NLMSG_ERROR || seq < first || seq >= fenceSeq) return;
      const i = Math.floor((seq - first) / 3);
      const err = dv.getInt32(off + HEADER, true);
      if (err !== 0) failed[i] = true;
      else if ((seq - first) % 3 === 1) acked[i] = true;
    });
    for (let i = 0; i < unused.length; i++) if (acked[i] && !failed[i]) deleted.push(unused[i]!);
    return deleted;
  } catch (e) {
    if (e instanceof SysError) throw new Error(`nf_tables batch: ${e.message}`);
    throw e;
  } finally {
    if (deleted.length > 0) handOver(fd);
    else sys.close(fd);
  }
}

/**
 * After a commit that deleted something, the kernel frees the old objects
 * after an RCU grace period, and the release of any nfnetlink socket waits
 * for that (nf_tables flushes its destroy work on NETLINK_URELEASE): 10–20 ms
 * here, at close or at our exit, after the change is already in effect. A
 * short-lived child holds the socket instead, so the release, and that wait,
 * happens in the background once the grace period is long over.
 */
function handOver(fd: number): void {
  const sleep = findCoreutil('sleep');
  if (!sleep) return sys.close(fd);
  try {
    // No stdout/stderr: a runtime reads the plugin's output until every holder closes it.
    sys.startDetached(sleep, ['1'], [null, null, null, fd]);
  } catch {
    // Without the child, the release just waits here.
  }
  sys.close(fd);
}
