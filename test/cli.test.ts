// The `cnikit` CLI as an operator types it, run inside a lab host namespace
// with every directory under the lab's temporary dir: network create/ls/
// inspect/rm, and the namespace lab (run/exec/ps/port/rm) with real traffic.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
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
  // Containers the tests left (on failure) go through the CLI first, then the sweep.
  for (const n of ['web1', 'web2', 'other']) cnikit(['rm', '-f', `${RUN_PREFIX}-${n}`]);
  lab?.destroy();
});

function cnikit(args: string[]) {
  return lab.exec(join(DIST, 'cnikit'), args, { env });
}

const name = (n: string) => `${RUN_PREFIX}-${n}`;
const SERVER = 'require("net").createServer((s) => s.end("hi " + s.remoteAddress + "\\n")).listen(80)';

describe('cnikit network and lab commands', () => {
  it('creates a network with a custom subnet, runs two containers, publishes a port, and tears it all down', async () => {
    const created = cnikit(['network', 'create', '--subnet', '172.22.16.0/24', '--gateway', '172.22.16.1', '--aux-address', 'router=172.22.16.9', 'my_net2']);
    expect(created.stderr).toBe('');
    expect(created.stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
    expect(cnikit(['network', 'create', 'my_net2']).stderr).toMatch(/network my_net2 already exists/);
    expect(cnikit(['network', 'create', '--subnet', '172.22.16.128/25', 'clash']).stderr).toMatch(/overlaps network my_net2/);
    const ls = cnikit(['network', 'ls']).stdout;
    expect(ls.split('\n')[0]).toMatch(/^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE/);
    expect(ls).toMatch(/my_net2\s+bridge\s+local/);
    expect(ls).toMatch(/none\s+null\s+local/);

    const web1 = cnikit(['run', '--network', 'my_net2', '--ip', '172.22.16.8', '-p', '8080:80', '--add-host', 'db:172.22.16.50', name('web1'), '--', process.execPath, '-e', SERVER]);
    expect(web1.stderr).toBe('');
    expect(web1.stdout).toContain('172.22.16.8/24 0.0.0.0:8080->80/tcp');
    const web2 = cnikit(['run', '--network', 'my_net2', name('web2')]);
    // Round robin goes on after the requested .8; .9 is the aux address, never leased.
    expect(web2.stdout).toContain('172.22.16.10/24');
    await new Promise((r) => setTimeout(r, 500));

    expect(cnikit(['exec', name('web2'), '--', 'bash', '-c', 'exec 3<>/dev/tcp/172.22.16.8/80 && cat <&3']).stdout).toBe('hi ::ffff:172.22.16.10\n');
    // Through the published port, from the lab host.
    expect(lab.exec('bash', ['-c', 'exec 3<>/dev/tcp/172.22.16.1/8080 && cat <&3']).stdout).toMatch(/^hi /);
    expect(cnikit(['exec', name('web2'), '--', 'false']).status).toBe(1);
    expect(cnikit(['port', name('web1')]).stdout).toBe('80/tcp -> 0.0.0.0:8080\n');
    expect(cnikit(['exec', name('web1'), '--', 'ip', 'addr']).stdout).toContain('inet 172.22.16.8/24');
    expect(cnikit(['ps']).stdout).toMatch(new RegExp(`${name('web1')}\\s+my_net2\\s+172.22.16.8/24\\s+0.0.0.0:8080->80/tcp`));
    const inspect = JSON.parse(cnikit(['network', 'inspect', 'my_net2']).stdout);
    expect(inspect).toMatchObject({ name: 'my_net2', subnets: [{ subnet: '172.22.16.0/24', gateway: '172.22.16.1' }] });
    expect(Object.keys(inspect.containers).sort()).toEqual([name('web1'), name('web2')]);
    expect(lab.exec('cat', [`/etc/netns/${name('web1')}/hosts`]).stdout).toContain('172.22.16.50\tdb');

    // Another network: isolated from my_net2, as Docker's user networks are.
    expect(cnikit(['network', 'create', 'other']).status).toBe(0);
    expect(cnikit(['run', '--network', 'other', name('other')]).status).toBe(0);
    expect(cnikit(['exec', name('other'), '--', 'timeout', '1', 'bash', '-c', 'exec 3<>/dev/tcp/172.22.16.8/80']).status).not.toBe(0);

    // connect / disconnect: a second interface on the other network.
    const conn = cnikit(['network', 'connect', 'other', name('web2')]);
    expect(conn.stderr).toBe('');
    expect(conn.stdout).toMatch(new RegExp(`^${name('web2')} eth1 \\d+\\.\\d+\\.\\d+\\.\\d+/\\d+`));
    expect(cnikit(['exec', name('web2'), '--', 'ip', 'link', 'show', 'eth1']).status).toBe(0);
    expect(JSON.parse(cnikit(['network', 'inspect', 'other']).stdout).containers).toHaveProperty(name('web2'));
    expect(cnikit(['network', 'connect', 'other', name('web2')]).stderr).toMatch(/already connected/);
    expect(cnikit(['network', 'disconnect', 'other', name('web2')]).status).toBe(0);
    expect(cnikit(['exec', name('web2'), '--', 'ip', 'link', 'show', 'eth1']).status).not.toBe(0);
    expect(cnikit(['network', 'disconnect', 'my_net2', name('web2')]).stderr).toMatch(/rm it instead/);

    expect(cnikit(['network', 'rm', 'my_net2']).stderr).toMatch(/has containers attached/);
    expect(cnikit(['rm', name('web1')]).stderr).toMatch(/is running .* use -f/);
    expect(cnikit(['rm', '-f', name('web1'), name('web2'), name('other')]).status).toBe(0);
    expect(cnikit(['network', 'rm', 'my_net2']).status).toBe(0);
    expect(cnikit(['network', 'prune']).stdout).toBe('other\n');
    expect(cnikit(['ps']).stdout.trim().split('\n')).toHaveLength(1);
    expect(existsSync(`/run/netns/${name('web1')}`)).toBe(false);
    expect(existsSync(`/etc/netns/${name('web1')}`)).toBe(false);
    expect(JSON.parse(lab.ip(['-j', 'link', 'show', 'type', 'veth']))).toEqual([]);
    expect(lab.exec('nft', ['list', 'map', 'inet', 'cnikit', 'ports4']).stdout).not.toContain('8080');
  });

  it('refuses bad input with a one-line error and a non-zero exit', () => {
    for (const [args, msg] of [
      [['run', '--network', 'nope', name('x')], /no network named nope/],
      [['run', '-p', '8080:80/icmp', name('x')], /invalid protocol "icmp"/],
      [['network', 'create', '--subnet', '10.0.0.0/24', '--gateway', '10.1.0.1', 'bad'], /--gateway 10.1.0.1 is not in subnet/],
      [['network', 'rm', 'nope'], /no network named nope/],
      [['exec', 'nope', '--', 'true'], /no container named nope/],
    ] as const) {
      const r = cnikit([...args]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(existsSync(`/run/netns/${name('x')}`)).toBe(false);
  });
});
