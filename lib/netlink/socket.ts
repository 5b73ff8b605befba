// A netlink socket of lib/sys with request/acknowledge and dump round trips.
// Synchronous on purpose: the caller may be inside a setns'd section.
import { sys, SysError, errnoName } from '../sys/index.ts';
import { concat, struct } from './codec.ts';

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

const SOL_NETLINK = 270;
const NETLINK_GET_STRICT_CHK = 12;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const HEADER = 16;
const RECV_BUFFER = 1 << 16;

export class NetlinkError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
  ) {
    super(`${op}: ${errnoName(errno)}`);
  }
}

export interface Message {
  type: number;
  /** Payload after the 16-byte nlmsghdr. */
  body: Uint8Array;
}

// One receive buffer for every socket: exchanges are synchronous and what
// they return is copied out, and a fresh 64 KiB buffer per socket (bridge
// ADD opens three) would cost zeroing for nothing.
const recvBuf = new Uint8Array(RECV_BUFFER);

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = recvBuf;

  private constructor(private readonly fd: number) {}

  static open(protocol: number): NetlinkSocket {
    return new NetlinkSocket(sys.netlinkSocket(protocol));
  }

  close(): void {
    sys.close(this.fd);
  }

  /**
   * NETLINK_GET_STRICT_CHK: the kernel then honours filters in dump requests
   * (e.g. ifa_index) instead of returning everything. False on kernels
   * without it (before 4.20); callers filter the answer themselves anyway.
   */
  strict(on: boolean): boolean {
    return sys.setsockoptInt(this.fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, on ? 1 : 0);
  }

  private send(type: number, flags: number, body: Uint8Array): number {
    const seq = ++this.seq;
    const header = struct(HEADER, (dv) => {
      dv.setUint32(0, HEADER + body.length, true);
      dv.setUint16(4, type, true);
      dv.setUint16(6, flags | NLM_F_REQUEST, true);
      dv.setUint32(8, seq, true);
      dv.setUint32(12, 0, true);
    });
    sys.send(this.fd, concat([header, body]));
    return seq;
  }

  /**
   * Receives until the exchange `seq` ends: with the ack (or error) of a
   * request or get, or NLMSG_DONE of a dump. Returns the data messages.
   */
  private receive(op: string, seq: number): Message[] {
    const out: Message[] = [];
    for (;;) {
      let n: number;
      try {
        n = sys.recv(this.fd, this.buf);
      } catch (e) {
        if (e instanceof SysError) throw new NetlinkError(op, e.errno);
        throw e;
      }
      const dv = new DataView(this.buf.buffer, 0, n);
      for (let off = 0; off + HEADER <= n; ) {
        const len = dv.getUint32(off, true);
        const type = dv.getUint16(off + 4, true);
        const mseq = dv.getUint32(off + 8, true);
        if (len < HEADER || off + len > n) break;
        if (mseq === seq) {
          if (type === NLMSG_DONE) return out;
          if (type === NLMSG_ERROR) {
            const err = dv.getInt32(off + HEADER, true);
            if (err !== 0) throw new NetlinkError(op, -err);
            return out;
          }
          // Copy: the receive buffer is reused.
          out.push({ type, body: this.buf.slice(off + HEADER, off + len) });
        }
        off += (len + 3) & ~3;
      }
    }
  }

  /** A change request; throws NetlinkError when the kernel refuses it. */
  request(op: string, type: number, flags: number, body: Uint8Array): void {
    this.receive(op, this.send(type, flags | NLM_F_ACK, body));
  }

  /** A get request answered by one message (or an error). Acked, so every exchange ends the same way. */
  get(op: string, type: number, body: Uint8Array): Message {
    const msgs = this.receive(op, this.send(type, NLM_F_ACK, body));
    const first = msgs[0];
    if (!first) throw new NetlinkError(op, 61 /* ENODATA */);
    return first;
  }

  dump(op: string, type: number, body: Uint8Array): Message[] {
    return this.receive(op, this.send(type, NLM_F_DUMP, body));
  }
}
