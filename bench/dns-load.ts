// The DNS load generator of the dns bench suite: a fixed number of A
// questions for one name over UDP at a fixed concurrency, against one
// server; prints JSON with queries per second and latency quantiles.
// Run as a child in the bench lab (`bun bench/dns-load.ts SERVER NAME N C`).
// A `%d` in NAME is replaced by the question's number: every question a new
// name, so no server can answer from a cache.
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';

const [server, name, nArg, cArg, timeoutArg] = process.argv.slice(2);
const total = Number(nArg);
const concurrency = Number(cArg);
const timeoutMs = Number(timeoutArg ?? 1000);
const question = (n: string) => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: n }] });
const template = question(name!);
const unique = name!.includes('%d');

const s = dgram.createSocket(server!.includes(':') ? 'udp6' : 'udp4');
const started = new Map<number, number>();
const latencies: number[] = [];
let sent = 0;
let lost = 0;
let failed = 0;
let nextId = 1;
const t0 = performance.now();

function send(): void {
  if (sent >= total) return;
  sent++;
  let id = nextId;
  while (started.has(id)) id = (id + 1) & 0xffff || 1;
  nextId = (id + 1) & 0xffff || 1;
  const q = unique ? question(name!.replace('%d', String(sent))) : Buffer.from(template);
  q.writeUInt16BE(id, 0);
  started.set(id, performance.now());
  s.send(q, 53, server);
}

function finish(): void {
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  process.stdout.write(JSON.stringify({ answered: latencies.length, lost, failed, seconds, qps: latencies.length / seconds, p50: at(0.5), p99: at(0.99) }) + '\n');
  process.exit(0);
}

s.on('message', (m) => {
  if (m.length < 12) return;
  const id = m.readUInt16BE(0);
  const t = started.get(id);
  if (t === undefined) return;
  started.delete(id);
  if ((m[3]! & 0x0f) !== 0) failed++;
  latencies.push(performance.now() - t);
  if (latencies.length + lost >= total) return finish();
  send();
});

// Questions without an answer within timeoutMs count as lost and make room for the next.
setInterval(() => {
  const now = performance.now();
  for (const [id, t] of started) {
    if (now - t < timeoutMs) continue;
    started.delete(id);
    lost++;
    if (latencies.length + lost >= total) return finish();
    send();
  }
}, 100);

s.bind(0, () => {
  for (let i = 0; i < concurrency; i++) send();
});
