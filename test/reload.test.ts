// Issue 18.5: a firewall flush (`nft flush ruleset`, a firewalld reload, an
// iptables service restart) takes every tool's rules. `cnikit firewall
// reload`, run in the host's namespace, puts back every live attachment's;
// so does the next ADD or DEL that finds cnikit's table gone. Checked with
// real packets: published ports from another host, and masquerade out to it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, RUN_PREFIX } from './lab.ts';
import { DIST } from './dist.ts';
import { addOutside, startPeerServer, tcpAsk, UPLINK } from './net.ts';

let lab: Lab;
let env: NodeJS.ProcessEnv;
let outside: string;
const servers: ChildProcess[] = [];
const names = ['a1', 'a2', 'a3', 'b1', 'b2', 'c1'];

beforeAll(async () => {
  lab = Lab.create();
  env = lab.cliEnv();
  outside = addOutside(lab);
  // "The outside world": answers with the address a connection came from.
  await startPeerServer(outside, 'tcp', '0.0.0.0', 7000, servers);
});
afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
  for (const n of names) cnikit(['rm', '-f', name(n)]);
  lab?.destroy();
});

function cnikit(args: string[]) {
  return lab.exec(join(DIST, 'cnikit'), args, { env });
}

const name = (n: string) => `${RUN_PREFIX}-${n}`;
const SERVER = 'require("net").createServer((s) => s.end("hi from " + process.env.WHO + "\\n")).listen(80)';

function useBackend(network: string, backend: 'iptables' | 'nftables'): void {
  const file = join(lab.dir, 'net.d', `${network}.conflist`);
  const list = JSON.parse(readFileSync(file, 'utf8')) as { plugins: Record<string, unknown>[] };
  for (const p of list.plugins) {
    if (p.type === 'bridge') p.ipMasqBackend = backend;
    if (p.type === 'portmap') p.backend = backend;
  }
  writeFileSync(file, JSON.stringify(list, null, 2));
}

function run(n: string, network: string, port: number): void {
  const r = cnikit(['run', '--network', network, '-p', `${port}:80`, name(n), '--', 'env', `WHO=${n}`, process.execPath, '-e', SERVER]);
  expect(r.stderr).toBe('');
}

async function waitFor(ok: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: never answered`);
}

/** Through the published port from the outside host, and out through masquerade from the container. */
function works(n: string, port: number): { port: string | undefined; masq: string | undefined } {
  return {
    port: tcpAsk(lab, outside, UPLINK.host4, port, 2),
    masq: tcpAsk(lab, `/run/netns/${name(n)}`, UPLINK.outside4, 7000, 2),
  };
}

const good = (n: string) => ({ port: `hi from ${n}`, masq: UPLINK.host4 });
const broken = { port: undefined, masq: undefined };

function flushNft(): void {
  expect(lab.exec('nft', ['flush', 'ruleset']).status).toBe(0);
}

function flushIptables(): void {
  // What an iptables service restart does: every table restored from its own file, cnikit's chains gone.
  for (const tool of ['iptables', 'ip6tables']) {
    for (const t of ['nat', 'filter']) {
      expect(lab.exec(tool, ['-t', t, '-F']).status).toBe(0);
      expect(lab.exec(tool, ['-t', t, '-X']).status).toBe(0);
    }
  }
}

describe('firewall reload after a flush', () => {
  it('nftables: flush breaks ports and masquerade; `cnikit firewall reload` restores them, idempotently', async () => {
    expect(cnikit(['network', 'create', '--subnet', '172.23.0.0/24', 'rl-nft']).stderr).toBe('');
    run('a1', 'rl-nft', 8091);
    run('a2', 'rl-nft', 8092);
    await waitFor(() => works('a1', 8091).port !== undefined && works('a2', 8092).port !== undefined, 'servers');
    expect(works('a1', 8091)).toEqual(good('a1'));
    expect(works('a2', 8092)).toEqual(good('a2'));

    flushNft();
    expect(works('a1', 8091)).toEqual(broken);
    const r = cnikit(['firewall', 'reload']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/reloaded 6 live attachment\(s\): nftables/);
    expect(works('a1', 8091)).toEqual(good('a1'));
    expect(works('a2', 8092)).toEqual(good('a2'));

    // Again: nothing changes (but the counters of the FORWARD accepts, which are replaced).
    const rules = () => lab.exec('nft', ['list', 'ruleset']).stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
    const before = rules();
    expect(cnikit(['firewall', 'reload']).status).toBe(0);
    expect(rules()).toBe(before);
  });

  it('nftables: the next ADD, or DEL, that finds the table gone brings back every live attachment', async () => {
    flushNft();
    expect(works('a1', 8091)).toEqual(broken);
    // ADD of another container: a1 and a2 work again with it.
    run('a3', 'rl-nft', 8093);
    await waitFor(() => works('a3', 8093).port !== undefined, 'a3');
    expect(works('a1', 8091)).toEqual(good('a1'));
    expect(works('a2', 8092)).toEqual(good('a2'));
    expect(works('a3', 8093)).toEqual(good('a3'));

    flushNft();
    expect(works('a2', 8092)).toEqual(broken);
    // DEL of a3: the others come back, a3's own rules do not.
    expect(cnikit(['rm', '-f', name('a3')]).status).toBe(0);
    expect(works('a1', 8091)).toEqual(good('a1'));
    expect(works('a2', 8092)).toEqual(good('a2'));
    expect(tcpAsk(lab, outside, UPLINK.host4, 8093, 1)).toBeUndefined();
    const ruleset = lab.exec('nft', ['list', 'ruleset']).stdout;
    expect(ruleset).toContain('8092');
    expect(ruleset).not.toContain('8093');

    // A container whose namespace went without a DEL (its veth pair with it) is stale: reload does not bring its rules back.
    const veths = () => (JSON.parse(lab.ip(['-j', 'link', 'show', 'type', 'veth'])) as unknown[]).length;
    const before = veths();
    const { pid } = JSON.parse(cnikit(['inspect', name('a2')]).stdout) as { pid: number };
    process.kill(-pid, 'SIGKILL');
    lab.deleteNetns(name('a2'));
    await waitFor(() => veths() === before - 1, 'the veth of a2 going with its namespace');
    flushNft();
    const r = cnikit(['firewall', 'reload']);
    expect(r.stdout).toMatch(/reloaded 3 live attachment\(s\).*; 3 stale record\(s\) left to DEL and GC/);
    expect(works('a1', 8091)).toEqual(good('a1'));
    const after = lab.exec('nft', ['list', 'ruleset']).stdout;
    expect(after).toContain('8091');
    expect(after).not.toContain('8092');

    expect(cnikit(['rm', '-f', name('a1'), name('a2')]).status).toBe(0);
    expect(cnikit(['network', 'rm', 'rl-nft']).status).toBe(0);
  });

  it('FORWARD DROP host: after a flush, reload brings back the firewall plugin\'s and the published ports\' FORWARD accepts', async () => {
    expect(cnikit(['network', 'create', '--subnet', '172.23.2.0/24', 'rl-drop']).stderr).toBe('');
    // The firewall plugin's ingress policy on nftables: a set element of c1's address in table inet cnikit-fw.
    const file = join(lab.dir, 'net.d', 'rl-drop.conflist');
    const list = JSON.parse(readFileSync(file, 'utf8')) as { plugins: Record<string, unknown>[] };
    for (const p of list.plugins) if (p.type === 'firewall') Object.assign(p, { backend: 'nftables', ingressPolicy: 'isolated' });
    writeFileSync(file, JSON.stringify(list, null, 2));
    const guarded = () => lab.exec('nft', ['list', 'set', 'inet', 'cnikit-fw', 'guarded4']).stdout;
    expect(lab.exec('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
    try {
      run('c1', 'rl-drop', 8096);
      expect(guarded()).toMatch(/172\.23\.2\.\d+/);
      await waitFor(() => works('c1', 8096).port !== undefined, 'c1');
      expect(works('c1', 8096)).toEqual(good('c1'));

      flushNft();
      // What a firewalld or iptables reload puts back: the drop policy, without cnikit's accepts.
      expect(lab.exec('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
      expect(works('c1', 8096)).toEqual(broken);
      const r = cnikit(['firewall', 'reload']);
      expect(r.stderr).toBe('');
      // c1's firewall record (outbound, replies) and its portmap record (the published port).
      expect(r.stdout).toMatch(/iptables FORWARD accepts \(2 attachment\(s\)\)/);
      expect(r.stdout).toMatch(/nftables ingress policies \(1 attachment\(s\)\)/);
      expect(guarded()).toMatch(/172\.23\.2\.\d+/);
      expect(works('c1', 8096)).toEqual(good('c1'));
      const before = lab.exec('iptables-save', []).stdout.replace(/^[#:].*$/gm, '');
      const beforeSet = guarded();
      expect(cnikit(['firewall', 'reload']).status).toBe(0);
      expect(lab.exec('iptables-save', []).stdout.replace(/^[#:].*$/gm, '')).toBe(before);
      expect(guarded()).toBe(beforeSet);
      expect(works('c1', 8096)).toEqual(good('c1'));

      expect(cnikit(['rm', '-f', name('c1')]).status).toBe(0);
      expect(cnikit(['network', 'rm', 'rl-drop']).status).toBe(0);
      // Nothing of c1 is accepted any more.
      expect(lab.exec('iptables-save', ['-t', 'filter']).stdout).not.toContain('172.23.2.');
    } finally {
      lab.exec('iptables', ['-P', 'FORWARD', 'ACCEPT']);
    }
  });

  it('iptables: an iptables restart breaks them; reload, and the next ADD, restore them', async () => {
    expect(cnikit(['network', 'create', '--subnet', '172.23.1.0/24', 'rl-ipt']).stderr).toBe('');
    useBackend('rl-ipt', 'iptables');
    run('b1', 'rl-ipt', 8094);
    await waitFor(() => works('b1', 8094).port !== undefined, 'b1');
    expect(works('b1', 8094)).toEqual(good('b1'));

    flushIptables();
    expect(works('b1', 8094)).toEqual(broken);
    const r = cnikit(['firewall', 'reload']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/iptables/);
    expect(works('b1', 8094)).toEqual(good('b1'));
    const before = lab.exec('iptables-save', []).stdout.replace(/^[#:].*$/gm, '');
    expect(cnikit(['firewall', 'reload']).status).toBe(0);
    expect(lab.exec('iptables-save', []).stdout.replace(/^[#:].*$/gm, '')).toBe(before);

    flushIptables();
    run('b2', 'rl-ipt', 8095);
    await waitFor(() => works('b2', 8095).port !== undefined, 'b2');
    expect(works('b1', 8094)).toEqual(good('b1'));
    expect(works('b2', 8095)).toEqual(good('b2'));

    expect(cnikit(['rm', '-f', name('b1'), name('b2')]).status).toBe(0);
    expect(cnikit(['network', 'rm', 'rl-ipt']).status).toBe(0);
  });
});
