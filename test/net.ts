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
export function udpAsk(lab: Lab, netns: string, host: string, port: number, timeoutS = 2): string | undefined {
  const script = `
const dgram = require('node:dgram');
const s = dgram.createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});
s.on('message', (m) => { process.stdout.write(m.toString()); process.exit(0); });
s.send('hi', ${port}, ${JSON.stringify(host)});
setTimeout(() => process.exit(1), ${timeoutS * 1000});
`;
  const r = lab.exec(process.execPath, ['-e', script], { netns, env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function ping(lab: Lab, netns: string, address: string): boolean {
  return lab.exec('ping', ['-c1', '-W1', address], { netns }).status === 0;
}
