// Issue 18.4: a network's firewall objects go with it. The `cnikit` CLI as an
// operator types it, inside a lab host namespace: create a network with a
// subnet, run a container with a published port, remove both, and nothing
// in the ruleset names the subnet any more (nftables and iptables backends).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, RUN_PREFIX } from './lab.ts';
import { DIST } from './dist.ts';

let lab: Lab;
let env: NodeJS.ProcessEnv;
beforeAll(() => {
  lab = Lab.create();
  env = lab.cliEnv();
});
afterAll(() => {
  for (const n of ['web1', 'web2']) cnikit(['rm', '-f', name(n)]);
  lab?.destroy();
});

function cnikit(args: string[]) {
  return lab.exec(join(DIST, 'cnikit'), args, { env });
}

const name = (n: string) => `${RUN_PREFIX}-${n}`;

/** Sets the firewall backend of every plugin of the network's conflist, as an operator would edit it. */
function useBackend(network: string, backend: 'iptables' | 'nftables'): void {
  const file = join(lab.dir, 'net.d', `${network}.conflist`);
  const list = JSON.parse(readFileSync(file, 'utf8')) as { plugins: Record<string, unknown>[] };
  for (const p of list.plugins) {
    if (p.type === 'bridge') p.ipMasqBackend = backend;
    if (p.type === 'portmap') p.backend = backend;
  }
  writeFileSync(file, JSON.stringify(list, null, 2));
}

function nftRuleset(): string {
  return lab.exec('nft', ['list', 'ruleset']).stdout;
}

function iptablesRuleset(): string {
  return lab.exec('iptables-save', []).stdout + lab.exec('ip6tables-save', []).stdout;
}

describe('network rm leaves no firewall object of the network', () => {
  for (const [backend, subnet, hostPort] of [['nftables', '172.22.16.0/24', 8080], ['iptables', '172.22.17.0/24', 8081]] as const) {
    it(`${backend}: create, run -p, rm, network rm → no chain naming the subnet`, () => {
      const net = `net-${backend}`;
      expect(cnikit(['network', 'create', '--subnet', subnet, net]).stderr).toBe('');
      useBackend(net, backend);
      const run = cnikit(['run', '--network', net, '-p', `${hostPort}:80`, name('web1')]);
      expect(run.stderr).toBe('');
      const two = cnikit(['run', '--network', net, '-p', `${hostPort + 100}:80`, name('web2')]);
      expect(two.stderr).toBe('');
      const prefix = subnet.replace('.0/24', '.');
      const during = backend === 'nftables' ? nftRuleset() : iptablesRuleset();
      // The rules are there while containers run (so the checks below can fail).
      expect(during).toContain(subnet);
      if (backend === 'nftables') expect(during).toMatch(/chain (masq|psnat)-[0-9a-f]{16}/);

      // One container goes: the network's per-subnet objects stay for the other.
      expect(cnikit(['rm', name('web1')]).status).toBe(0);
      const half = backend === 'nftables' ? nftRuleset() : iptablesRuleset();
      expect(half).toContain(subnet);

      expect(cnikit(['rm', name('web2')]).status).toBe(0);
      const afterRm = backend === 'nftables' ? nftRuleset() : iptablesRuleset();
      // The last attachment took its per-subnet chains with it.
      expect(afterRm).not.toContain(subnet);
      expect(afterRm).not.toContain(prefix);
      expect(afterRm).not.toMatch(/chain (masq|psnat)-/);
      expect(afterRm).not.toMatch(/CNIK-[AP]-/);

      expect(cnikit(['network', 'rm', net]).status).toBe(0);
      const after = backend === 'nftables' ? nftRuleset() : iptablesRuleset();
      expect(after).not.toContain(subnet);
      expect(after).not.toContain(prefix);
      expect(after).not.toMatch(/chain (masq|psnat|net)-[0-9a-f]/);
      expect(after).not.toMatch(/CNIK-[APN]-/);
      expect(after).not.toContain(`ck-${net}`);
    });
  }
});
