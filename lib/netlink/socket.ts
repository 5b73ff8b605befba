// A netlink socket of lib/sys with request/acknowledge and dump round trips.
// Synchronous on purpose: the caller may be inside a setns'd section.
import { sys, SysError, errnoName, EAGAIN, MSG_DONTWAIT } from '../sys/index.ts';
import { findCoreutil } from '../fs/index.ts';
import { nlmsg, walkMessages, NLMSG_HDRLEN } from './codec.ts';

export const NLM_F_ACK = 0x4;
/** Send the answer to the requester too (tc answers a get only as a notification otherwise). */
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

const SOL_NETLINK = 270;
const NETLINK_GET_STRICT_CHK = 12;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
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

  private constructor(
    private readonly fd: number,
    private readonly protocol: number,
  ) {}

  static open(protocol: number): NetlinkSocket {
    return new NetlinkSocket(sys.netlinkSocket(protocol), protocol);
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

  private frame(type: number, flags: number, body: Uint8Array): { seq: number; bytes: Uint8Array } {
    const seq = ++this.seq;
    return { seq, bytes: nlmsg(type, flags, seq, body) };
  }

  private send(type: number, flags: number, body: Uint8Array): number {
    const { seq, bytes } = this.frame(type, flags, body);
    sys.send(this.fd, bytes);
    return seq;
  }

  /**
   * Receives until the exchange `seq` ends: with the ack (or error) of a
   * request or get, or NLMSG_DONE of a dump. Returns the data messages.
   * With MSG_DONTWAIT, undefined when nothing more is queued yet.
   */
  private receive(op: string, seq: number): Message[];
  private receive(op: string, seq: number, flags: number): Message[] | undefined;
  private receive(op: string, seq: number, flags = 0): Message[] | undefined {
    const out: Message[] = [];
    for (;;) {
      let n: number;
      try {
        n = sys.recv(this.fd, this.buf, flags);
      } catch (e) {
        if (e instanceof SysError && e.errno === EAGAIN && flags & MSG_DONTWAIT) return undefined;
        if (e instanceof SysError) throw new NetlinkError(op, e.errno);
        throw e;
      }
      const ended = walkMessages(this.buf, n, (type, mseq, off, len, dv) => {
        if (mseq !== seq) return;
        if (type === NLMSG_DONE) return true;
        if (type === NLMSG_ERROR) {
          const err = dv.getInt32(off + NLMSG_HDRLEN, true);
          if (err !== 0) throw new NetlinkError(op, -err);
          return true;
        }
        // Copy: the receive buffer is reused.
        out.push({ type, body: this.buf.slice(off + NLMSG_HDRLEN, off + len) });
      });
      if (ended) return out;
    }
  }

  /** A change request; throws NetlinkError when the kernel refuses it. */
  request(op: string, type: number, flags: number, body: Uint8Array): void {
    this.receive(op, this.send(type, flags | NLM_F_ACK, body));
  }

  /**
   * A change request sent by a short-lived child instead of this process.
   * The kernel runs a request in the task that sends it, and some go on
   * long after their change is in effect: deleting a link waits 15–40 ms
   * here (an RCU barrier, then the device's last references) once the link
   * is already gone. `cat` is handed the request in a pipe and a socket
   * opened here as its stdout, writes one to the other (one read, one
   * write: netlink takes a write(2) as a message) and sits out the wait in
   * the kernel. This returns as soon as
   * `inEffect()` sees the change, or with the kernel's refusal, which comes
   * back on that socket. Without `cat` (or `opts.program`), or when the
   * change does not show within `opts.patienceMs`, the request is made here.
   *
   * The child's socket is opened in the caller's current namespace, which
   * must be this socket's (Netlink.with and inNetns keep both the same).
   */
  requestFromChild(op: string, type: number, flags: number, body: Uint8Array, inEffect: () => boolean, opts: { program?: string; patienceMs?: number } = {}): void {
    const cat = opts.program ?? findCoreutil('cat');
    if (!cat) return this.request(op, type, flags, body);
    let relay: NetlinkSocket;
    try {
      relay = NetlinkSocket.open(this.protocol);
    } catch {
      // Out of fds or socket buffers: this socket still works.
      return this.request(op, type, flags, body);
    }
    try {
      const { seq, bytes } = relay.frame(type, flags | NLM_F_ACK, body);
      if (!relay.startRelay(cat, bytes)) return this.request(op, type, flags, body);
      const deadline = performance.now() + (opts.patienceMs ?? 2000);
      for (;;) {
        // inEffect's own request queues behind the child's for the kernel's
        // rtnl lock, so it sees the change once the child's part under the
        // lock is over; a refusal wakes the wait at once.
        if (relay.receive(op, seq, MSG_DONTWAIT) !== undefined || inEffect()) return;
        if (performance.now() > deadline) return this.request(op, type, flags, body);
        sys.waitReadable(relay.fd, 0.25);
      }
    } finally {
      relay.close();
    }
  }

  /** Starts `cat` with the request in a pipe as its stdin and this socket as its stdout; false when it cannot. */
  private startRelay(cat: string, request: Uint8Array): boolean {
    let ends: [number, number];
    try {
      ends = sys.pipe();
    } catch {
      return false;
    }
    const [r, w] = ends;
    try {
      try {
        // A pipe holds a page or more before a write blocks; a request is far smaller.
        sys.write(w, request);
      } finally {
        sys.close(w);
      }
      sys.startDetached(cat, [], [r, this.fd, null]);
      return true;
    } catch {
      return false;
    } finally {
      sys.close(r);
    }
  }

  /** A get request answered by one message (or an error). Acked, so every exchange ends the same way. */
  get(op: string, type: number, body: Uint8Array, flags = 0): Message {
    const msgs = this.receive(op, this.send(type, flags | NLM_F_ACK, body));
    const first = msgs[0];
    if (!first) throw new NetlinkError(op, 61 /* ENODATA */);
    return first;
  }

  dump(op: string, type: number, body: Uint8Array): Message[] {
    return this.receive(op, this.send(type, NLM_F_DUMP, body));
  }
}
