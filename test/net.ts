// Real traffic between lab namespaces: a server that answers every TCP
// connection or UDP datagram with the address it came from, and clients.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Lab } from './lab.ts';

const SERVER = `
const [proto, host, port] = process.argv.slice(1);
if (proto === 'tcp') {
  const net = require('node:net');
  const srv = net.createServer((s) => s.end(s.remoteAddress.replace(/^::ffff:/, '') + '\\n'));
  srv.listen({ host, port: Number(port) }, () => console.log('ready'));
} else {
  const dgram = require('node:dgram');
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (_m, r) => sock.send(r.address.replace(/^::ffff:/, '') + '\\n', r.port, r.address));
  sock.bind(Number(port), host, () => console.log('ready'));
}
`;

export interface PeerServer {
  stop(): void;
}

/** Starts a peer-address server in a namespace (path) and waits until it listens. */
export function startPeerServer(netns: string, proto: 'tcp' | 'udp', host: string, port: number, servers: ChildProcess[]): Promise<PeerServer> {
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', SERVER, proto, host, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
  });
  servers.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve({ stop: () => child.kill('SIGKILL') });
    });
    child.on('exit', (code) => reject(new Error(`peer server in ${netns} exited (${code}): ${err}`)));
  });
}

/** Connects over TCP from a namespace; returns what the server said (its view of our address) or undefined. */
export function tcpAsk(lab: Lab, netns: string, host: string, port: number, timeoutS = 2): string | undefined {
  const r = lab.exec('timeout', [String(timeoutS), 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port} && cat <&3`], { netns });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Sends one UDP datagram from a namespace and returns the reply, or undefined. */
export function udpAsk(lab: Lab, netns: string, host: string, port: number, timeoutS = 2, sourcePort = 0): string | undefined {
  const script = `
const dgram = require('node:dgram');
const s = dgram.createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});
s.on('message', (m) => { process.stdout.write(m.toString()); process.exit(0); });
s.bind(${sourcePort}, () => s.send('hi', ${port}, ${JSON.stringify(host)}));
setTimeout(() => process.exit(1), ${timeoutS * 1000});
`;
  const r = lab.exec(process.execPath, ['-e', script], { netns, env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function ping(lab: Lab, netns: string, address: string): boolean {
  return lab.exec('ping', ['-c1', '-W1', address], { netns }).status === 0;
}

/** The lab host's addresses on its uplink, and the outside host's. */
export const UPLINK = { host4: '203.0.113.1', host6: 'fd00:ff::1', outside4: '203.0.113.2', outside6: 'fd00:ff::2' } as const;

/**
 * "Another host": one more namespace of the run, linked to the lab host by a
 * veth (uplink0) with IPv4 and IPv6 addresses. It has no route to any
 * container subnet, so only masquerade lets replies come back. Returns its path.
 */
export function addOutside(lab: Lab): string {
  const outside = `/run/netns/${lab.addNetns('out')}`;
  // No duplicate address detection on the lab's links: a tentative link-local
  // address would hold the first IPv6 packets back for a second.
  for (const ns of [lab.hostPath, outside]) {
    lab.exec('sysctl', ['-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0'], { netns: ns });
  }
  lab.ip(['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.replace('/run/netns/', '')]);
  lab.ip(['addr', 'add', `${UPLINK.host4}/24`, 'dev', 'uplink0']);
  lab.ip(['addr', 'add', `${UPLINK.host6}/64`, 'dev', 'uplink0', 'nodad']);
  lab.ip(['link', 'set', 'uplink0', 'up']);
  lab.ip(['addr', 'add', `${UPLINK.outside4}/24`, 'dev', 'eth0'], outside);
  lab.ip(['addr', 'add', `${UPLINK.outside6}/64`, 'dev', 'eth0', 'nodad'], outside);
  lab.ip(['link', 'set', 'eth0', 'up'], outside);
  lab.ip(['link', 'set', 'lo', 'up'], outside);
  return outside;
}
