// The `dns` bench suite: cnikit's responder against aardvark-dns (Podman's,
// Debian package aardvark-dns), side by side in one run. Each serves the
// same 3 networks with the same containers, on gateway addresses of its own
// in the bench lab host, with the same upstream (a small server in an
// "outside" namespace) read from the lab host's resolv.conf (both started
// through `ip netns exec`, which puts /etc/netns/<host>/resolv.conf in
// place). aardvark is configured as netavark does: one file per network in
// a config dir, SIGHUP to reload. One load generator asks a fixed number of
// questions at a fixed concurrency; reported: queries per second, p50/p99
// latency, and resident memory after the runs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchLab } from './harness.ts';
import { writeRecord } from '../dns/records.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CNIKIT = join(root, 'dist/cnikit');
const AARDVARK = '/usr/lib/podman/aardvark-dns';
const QUERIES = Number(process.env.BENCH_DNS_QUERIES ?? 50_000);
const CONCURRENCY = Number(process.env.BENCH_DNS_CONCURRENCY ?? 32);
const NETWORKS = 3;
const PER_NETWORK = 10;

interface Load {
  answered: number;
  lost: number;
  failed: number;
  seconds: number;
  qps: number;
  p50: number;
  p99: number;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

function load(server: string, name: string, queries = QUERIES): Load {
  const out = run(process.execPath, [join(root, 'bench/dns-load.ts'), server, name, String(queries), String(CONCURRENCY)]);
  return JSON.parse(out) as Load;
}

/** CPU time (user + system) a process has used, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second here).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

function waitListening(addr: string): void {
  for (let i = 0; i < 100; i++) {
    if (run('ss', ['-Hlnu', 'src', addr]).trim() !== '') return;
    spawnSync('sleep', ['0.05']);
  }
  throw new Error(`nothing listens on ${addr}:53`);
}

const hexId = (n: number, i: number) => `${n.toString(16).padStart(2, '0')}${i.toString(16).padStart(2, '0')}`.padEnd(64, 'a');

export function dnsSuite(lab: BenchLab): string {
  if (!existsSync(AARDVARK)) return '### dns\n\naardvark-dns is not installed (apt-get install aardvark-dns): suite skipped.\n';
  if (!existsSync(CNIKIT)) throw new Error(`${CNIKIT} is missing: npm run build`);
  const host = lab.host;
  const dir = join(root, 'bench/out', `dns-${process.pid}`);
  const etc = `/etc/netns/${host}`;
  const children: ChildProcess[] = [];
  let aardvarkPid: number | undefined;
  try {
    mkdirSync(dir, { recursive: true });
    // The outside world: one namespace over a veth, the only upstream.
    const outside = lab.container();
    run('ip', ['link', 'add', 'dnsup0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.replace('/run/netns/', '')]);
    run('ip', ['addr', 'add', '198.18.0.1/24', 'dev', 'dnsup0']);
    run('ip', ['link', 'set', 'dnsup0', 'up']);
    run('nsenter', [`--net=${outside}`, 'ip', 'addr', 'add', '198.18.0.2/24', 'dev', 'eth0']);
    run('nsenter', [`--net=${outside}`, 'ip', 'link', 'set', 'eth0', 'up']);
    const upstream = spawn('nsenter', [`--net=${outside}`, '--', process.execPath, join(root, 'bench/dns-upstream.ts'), '198.18.0.2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(upstream);
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'resolv.conf'), 'nameserver 198.18.0.2\n');

    // Same networks for both; gateways 10.210.<n>.1 (cnikit) and 10.220.<n>.1 (aardvark).
    const ardDir = join(dir, 'aardvark');
    mkdirSync(ardDir, { recursive: true });
    const cnikitRoot = join(dir, 'cnikit');
    for (let n = 0; n < NETWORKS; n++) {
      for (const [prefix, br] of [['10.210', `bdc${n}`], ['10.220', `bda${n}`]] as const) {
        run('ip', ['link', 'add', br, 'type', 'bridge']);
        run('ip', ['addr', 'add', `${prefix}.${n}.1/24`, 'dev', br]);
        run('ip', ['link', 'set', br, 'up']);
      }
      const lines = [`10.220.${n}.1`];
      for (let i = 0; i < PER_NETWORK; i++) {
        const name = `c${n}x${i}`;
        writeRecord(cnikitRoot, { network: `net${n}`, containerId: hexId(n, i), ifname: 'eth0', names: [name, `alias${n}x${i}`], domainName: 'dns.podman', ips: [`10.210.${n}.${i + 2}/24`], gateways: [`10.210.${n}.1`], internal: false });
        lines.push(`${hexId(n, i)} 10.220.${n}.${i + 2}  ${name},alias${n}x${i}`);
      }
      writeFileSync(join(ardDir, `net${n}`), lines.join('\n') + '\n');
    }

    // cnikit: the compiled executable's serve mode, as the plugin starts it.
    const ours = spawn('ip', ['netns', 'exec', host, CNIKIT, 'dns', 'serve', '--dir', cnikitRoot], { stdio: 'ignore', detached: true });
    children.push(ours);
    // aardvark-dns daemonizes and writes aardvark.pid into its config dir (as under netavark).
    run('ip', ['netns', 'exec', host, AARDVARK, '--config', ardDir, '-p', '53', 'run']);
    waitListening('10.210.0.1');
    waitListening('10.220.0.1');
    aardvarkPid = Number(readFileSync(join(ardDir, 'aardvark.pid'), 'utf8'));
    const oursPid = Number(readFileSync(join(cnikitRoot, 'responder.pid'), 'utf8'));
    // A reload as netavark does on every container start: SIGHUP.
    process.kill(aardvarkPid, 'SIGHUP');
    process.kill(oursPid, 'SIGHUP');
    spawnSync('sleep', ['0.3']);

    const rows: string[] = [];
    const kinds = [
      ['local', 'c1x5'],
      ['forwarded', 'www.example.org'],
      // A new name each question: what forwarding itself costs, no answer kept by either server helps.
      ['forwarded, each name new', `q%d.${process.pid}.example.org`],
    ] as const;
    type Kind = (typeof kinds)[number][0];
    const result: Record<string, { load: Partial<Record<Kind, Load>>; cpu: Partial<Record<Kind, number>>; rss: number }> = {};
    /** The load, and the server's CPU time per question during it (µs): steadier than rates on a shared machine. */
    const measured = (c: { server: string; pid: number }, name: string): [Load, number] => {
      const before = cpuMs(c.pid);
      const l = load(c.server, name);
      return [l, ((cpuMs(c.pid) - before) * 1000) / (l.answered + l.lost)];
    };
    // Interleaved: the machine's load drifts, so each kind is measured for both back to back.
    const contenders = [
      { label: 'cnikit dns', server: '10.210.1.1', pid: oursPid },
      { label: 'aardvark-dns 1.4', server: '10.220.1.1', pid: aardvarkPid },
    ];
    // Warm-up (JIT, first forwards), not counted.
    for (const c of contenders) {
      load(c.server, 'c1x5', 1000);
      load(c.server, 'warm.example.org', 1000);
    }
    for (const c of contenders) result[c.label] = { load: {}, cpu: {}, rss: 0 };
    for (const [kind, name] of kinds) {
      for (const c of contenders) {
        const [l, cpu] = measured(c, name);
        result[c.label]!.load[kind] = l;
        result[c.label]!.cpu[kind] = cpu;
      }
    }
    for (const c of contenders) result[c.label]!.rss = rssMiB(c.pid);
    const f = (x: number) => x.toFixed(2);
    const ard = result['aardvark-dns 1.4']!;
    for (const c of contenders) {
      const r = result[c.label]!;
      for (const [kind] of kinds) {
        const l = r.load[kind]!;
        const a = ard.load[kind]!;
        const ratio = c.label === 'cnikit dns' ? `${f(l.qps / a.qps)}x / ${f(l.p99 / a.p99)}x / ${f(r.cpu[kind]! / ard.cpu[kind]!)}x` : '—';
        rows.push(`| ${c.label} | ${kind} | ${Math.round(l.qps)} | ${f(l.p50)} | ${f(l.p99)} | ${Math.round(r.cpu[kind]!)} | ${l.answered} | ${l.lost} | ${l.failed} | ${ratio} | ${f(r.rss)} |`);
      }
    }
    return [
      `### dns: ${QUERIES} A questions per row over UDP, ${CONCURRENCY} in flight, ${NETWORKS} networks x ${PER_NETWORK} containers`,
      '',
      '| server | names | queries/s | p50 ms | p99 ms | server CPU µs/question | answered | lost | not NOERROR | vs aardvark (qps / p99 / CPU) | RSS MiB after |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      'local: a container name of the network asked on; forwarded: one name only the upstream (another namespace) knows, asked again and again (cnikit keeps the answer for its TTL, aardvark-dns asks upstream each time); forwarded, each name new: every question a name not asked before, so both forward every one. One load generator (Bun) on the same 2-core machine as both servers, so absolute figures are low and noisy; compare the ratios.',
      '',
    ].join('\n');
  } finally {
    if (aardvarkPid) {
      try {
        process.kill(aardvarkPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const pidFile = join(dir, 'cnikit', 'responder.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const c of children) c.kill('SIGKILL');
    rmSync(etc, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
