// DNS questions from inside a lab namespace, as a container's resolver asks
// them (UDP, or TCP with the 2-byte length), and a tiny upstream server for
// the "outside" namespace. Both run as node children (dns-packet from the
// worktree's node_modules) under nsenter.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './dist.ts';
import type { Lab } from './lab.ts';

const ASK = `
const dnsPacket = require('dns-packet');
const [server, name, type, proto] = process.argv.slice(1);
const q = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
const done = (m) => {
  const r = dnsPacket.decode(m);
  console.log(JSON.stringify({ id: r.id, rcode: r.rcode, aa: r.flag_aa, answers: r.answers.map((a) => String(a.data)) }));
  process.exit(0);
};
if (proto === 'tcp') {
  const s = require('node:net').connect(53, server);
  let buf = Buffer.alloc(0);
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0))); });
  const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
  s.write(Buffer.concat([len, q]));
} else {
  const s = require('node:dgram').createSocket(server.includes(':') ? 'udp6' : 'udp4');
  s.on('message', done);
  s.send(q, 53, server);
}
setTimeout(() => { console.log('timeout'); process.exit(1); }, 4000);
`;

export interface DnsAnswer {
  id: number;
  rcode: string;
  aa: boolean;
  answers: string[];
}

/** One question to server:53 from netns; undefined when nothing answered. */
export function ask(lab: Lab, netns: string, server: string, name: string, type = 'A', proto: 'udp' | 'tcp' = 'udp'): DnsAnswer | undefined {
  const r = lab.exec(process.execPath, ['-e', ASK, server, name, type, proto], { netns, env: { ...process.env, NODE_EXTRA_CA_CERTS: '', NODE_PATH: `${ROOT}/node_modules` } });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as DnsAnswer;
}

const UPSTREAM = `
const dnsPacket = require('dns-packet');
const [host, zone, fixedRcode] = process.argv.slice(1);
const names = JSON.parse(zone);
const rcode = Number(fixedRcode || 0);
const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', (m, r) => {
  let q;
  try { q = dnsPacket.decode(m); } catch { return; }
  const question = q.questions[0];
  const data = !rcode && question && question.type === 'A' ? names[question.name.toLowerCase()] : undefined;
  const answers = data ? [{ type: 'A', name: question.name, ttl: 30, data }] : [];
  s.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (rcode || (data ? 0 : 3)), questions: q.questions, answers }), r.port, r.address);
});
s.bind(53, host, () => console.log('ready'));
`;

/**
 * An upstream resolver on host:53 in netns that knows only `zone` (name →
 * IPv4), NXDOMAIN for the rest; with `rcode`, that answer to everything (2: SERVFAIL).
 */
export function startUpstream(netns: string, host: string, zone: Record<string, string>, children: ChildProcess[], rcode = 0): Promise<void> {
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', UPSTREAM, host, JSON.stringify(zone), String(rcode)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '', NODE_PATH: `${ROOT}/node_modules` },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`upstream in ${netns} exited (${code}): ${err}`)));
  });
}

/** ask() without blocking this process's event loop (for a responder running in it). */
export function askAsync(netns: string, server: string, name: string, type = 'A', proto: 'udp' | 'tcp' = 'udp'): Promise<DnsAnswer | undefined> {
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', ASK, server, name, type, proto], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '', NODE_PATH: `${ROOT}/node_modules` },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code === 0 ? (JSON.parse(out) as DnsAnswer) : undefined)));
}

/** The pid the lab host's name responder wrote under `dataDir` (its per-host directory, lib/state), if any. */
export function responderPid(lab: Lab, dataDir: string): number | undefined {
  const f = join(lab.hostState(dataDir), 'dnsname', 'responder.pid');
  return existsSync(f) ? Number(readFileSync(f, 'utf8')) : undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
