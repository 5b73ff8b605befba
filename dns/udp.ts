// The responder's UDP sockets. Under Bun its native UDP socket, which
// answered a query flood about twice as fast as Bun's node:dgram in the same
// run (measured with bench/dns-load.ts on an echo server); under Node,
// node:dgram. Bun is a global, not an import, so nothing Bun-only reaches Node.
// Under Bun, replies are also sent in batches: Bun reads datagrams with
// recvmmsg and calls `data` for each of a batch before returning to its event
// loop, so the replies queued meanwhile leave in one sendmmsg (sendMany) from
// a setImmediate, instead of one system call each (strace of the bench: one
// sendmmsg per reply was most of the responder's system time).
import dgram from 'node:dgram';

export type OnDatagram = (msg: Buffer, reply: (answer: Buffer) => void) => void;

export interface UdpListener {
  close(): void;
}

/** Binds addr:port; onError is called once if binding fails or the socket breaks. */
export function listenUdp(addr: string, port: number, onDatagram: OnDatagram, onError: () => void): UdpListener {
  if (typeof Bun !== 'undefined') return listenBun(addr, port, onDatagram, onError);
  const s = dgram.createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4' });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      s.close();
    } catch {
      // never bound
    }
  };
  s.on('error', () => {
    close();
    onError();
  });
  s.on('message', (msg, rinfo) => onDatagram(msg, (a) => s.send(a, rinfo.port, rinfo.address)));
  s.bind({ address: addr, port, exclusive: true });
  return { close };
}

interface BunSender {
  sendMany(packets: readonly (Buffer | string | number)[]): number;
}

/** At most this many replies wait for one flush; more are flushed at once. */
const MAX_BATCH = 256;

/** Queues datagrams for one sendMany per event-loop turn. */
function batcher(): (sock: BunSender, msg: Buffer, port: number, address: string) => void {
  let queue: (Buffer | string | number)[] = [];
  let target: BunSender | undefined;
  const flush = () => {
    const q = queue;
    const t = target;
    queue = [];
    target = undefined;
    // A full socket buffer drops what did not fit (UDP: the client asks again); a closed socket all of it.
    if (!t || q.length === 0) return;
    try {
      t.sendMany(q);
    } catch {
      // closed in the meantime
    }
  };
  return (sock, msg, port, address) => {
    if (target !== undefined && target !== sock) flush();
    if (queue.length === 0) setImmediate(flush);
    target = sock;
    queue.push(msg, port, address);
    if (queue.length >= 3 * MAX_BATCH) flush();
  };
}

function listenBun(addr: string, port: number, onDatagram: OnDatagram, onError: () => void): UdpListener {
  let closed = false;
  let socket: { close(): void } | undefined;
  const send = batcher();
  Bun.udpSocket({
    hostname: addr,
    port,
    binaryType: 'buffer',
    socket: {
      data(sock, data, rport, raddr) {
        onDatagram(data, (a) => {
          if (!closed) send(sock, a, rport, raddr);
        });
      },
      error() {
        // A send that failed (e.g. the client's port gone): nothing to keep.
      },
    },
  }).then(
    (s) => {
      if (closed) s.close();
      else socket = s;
    },
    () => {
      if (!closed) onError();
    },
  );
  return {
    close() {
      closed = true;
      socket?.close();
    },
  };
}

export interface UdpClient {
  send(msg: Buffer, port: number, address: string): void;
  close(): void;
}

/** An unbound socket for questions to upstreams; answers go to onMessage. */
export function udpClient(family: 4 | 6, onMessage: (msg: Buffer, port: number, address: string) => void): UdpClient {
  if (typeof Bun === 'undefined') {
    const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('message', (m, r) => onMessage(m, r.port, r.address));
    s.on('error', () => undefined);
    return { send: (m, port, address) => s.send(m, port, address), close: () => s.close() };
  }
  // Created asynchronously: what is sent before it exists waits (bounded by the forwarder's limit).
  let socket: (BunSender & { send(m: Buffer, port: number, address: string): boolean; close(): void }) | undefined;
  let closed = false;
  const queue: [Buffer, number, string][] = [];
  const batched = batcher();
  Bun.udpSocket({
    hostname: family === 4 ? '0.0.0.0' : '::',
    binaryType: 'buffer',
    socket: {
      data(_s, data, port, address) {
        onMessage(data, port, address);
      },
      error() {
        // an upstream unreachable: its question times out
      },
    },
  }).then(
    (s) => {
      if (closed) return s.close();
      socket = s;
      for (const [m, port, address] of queue.splice(0)) s.send(m, port, address);
    },
    () => {
      queue.length = 0;
    },
  );
  return {
    send(m, port, address) {
      if (socket) batched(socket, m, port, address);
      else if (!closed) queue.push([m, port, address]);
    },
    close() {
      closed = true;
      socket?.close();
    },
  };
}
