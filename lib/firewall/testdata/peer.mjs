// Traffic helper for the firewall tests, run with node inside a namespace.
//   serve tcp|udp PORT [ADDR]  prints "ready", then answers every TCP
//                             connection or UDP datagram with the peer's address
//   ask tcp|udp HOST PORT      prints the answer, or "no answer" after 2 s
import net from 'node:net';
import dgram from 'node:dgram';

const [mode, proto, a, b] = process.argv.slice(2);
if (mode === 'serve') {
  const port = Number(a);
  const addr = b ?? '::';
  if (proto === 'tcp') {
    net.createServer((s) => s.end(`${s.remoteAddress}\n`)).listen({ port, host: addr, ipv6Only: false }, () => console.log('ready'));
  } else {
    const sock = dgram.createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
    sock.on('message', (_m, r) => sock.send(`${r.address}\n`, r.port, r.address));
    sock.bind(port, addr, () => console.log('ready'));
  }
} else {
  const host = a;
  const port = Number(b);
  const done = (s) => {
    process.stdout.write(s.trim().replace(/^::ffff:/, '') + '\n');
    process.exit(0);
  };
  setTimeout(() => done('no answer'), 2000);
  if (proto === 'tcp') {
    let got = '';
    const s = net.connect({ host, port });
    s.on('data', (d) => (got += d));
    s.on('end', () => done(got));
    s.on('error', (e) => done(`error ${e.code}`));
  } else {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (m) => done(m.toString()));
    sock.send('hi', port, host);
  }
}
