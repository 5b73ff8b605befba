// The bench's upstream resolver, in the lab's "outside" namespace: answers
// every A question at once with one address (no work of its own to measure).
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';

const [host] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => {
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(m);
  } catch {
    return;
  }
  const answers: dnsPacket.Answer[] = q.questions?.[0]?.type === 'A' ? [{ type: 'A', name: q.questions[0].name, ttl: 30, data: '192.0.2.55' }] : [];
  s.send(dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions ?? [], answers }), r.port, r.address);
});
s.bind(53, host, () => process.stdout.write('ready\n'));
