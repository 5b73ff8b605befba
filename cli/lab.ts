// The commands of the network-namespace lab and of `network`, wired to commander.
import type { Command } from 'commander';
import { createNetwork, listNetworks, inspectNetwork, removeNetwork, pruneNetworks, findList, ensureDefaultBridge } from './network.ts';
import { runContainer, execIn, listContainers, getContainer, removeContainer, connectContainer, disconnectContainer, networksOf } from './containers.ts';
import { withProgress } from './progress.ts';
import { parsePublish, describePublished } from './publish.ts';
import { bandwidthArgs } from './bandwidth.ts';

const collect = (v: string, acc: string[]) => [...acc, v];

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n') + '\n';
}

function keyValues(list: string[], flag: string): Record<string, string> {
  return Object.fromEntries(
    list.map((kv) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`${flag} ${kv}: expected KEY=VALUE`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
}

export function registerLab(program: Command): void {
  const network = program.command('network').description('manage networks (CNI conflists in the config dir)');
  network
    .command('create <name>')
    .description('create a bridge network; without --subnet one is taken from the default pools')
    .option('-d, --driver <driver>', 'network driver', 'bridge')
    .option('--subnet <cidr>', 'subnet (repeatable: IPv4 and IPv6)', collect, [])
    .option('--gateway <ip>', 'gateway of the subnet given in the same position', collect, [])
    .option('--ip-range <cidr>', 'sub-range container addresses are leased from', collect, [])
    .option('--aux-address <name=ip>', 'address reserved, never leased', collect, [])
    .option('--ipv6', 'also an IPv6 subnet')
    .option('--internal', 'no outbound masquerade, no default route')
    .option('-o, --opt <key=value>', 'driver option: com.docker.network.bridge.name, mtu', collect, [])
    .option('--json', 'print the network as JSON')
    .action((name: string, o: { driver: string; subnet: string[]; gateway: string[]; ipRange: string[]; auxAddress: string[]; ipv6?: boolean; internal?: boolean; opt: string[]; json?: boolean }) => {
      if (o.driver !== 'bridge') throw new Error(`driver ${o.driver} is not supported (bridge)`);
      createNetwork(name, {
        subnets: o.subnet, gateways: o.gateway, ipRanges: o.ipRange, auxAddresses: keyValues(o.auxAddress, '--aux-address'),
        ipv6: o.ipv6 ?? false, internal: o.internal ?? false, options: keyValues(o.opt, '-o'),
      });
      process.stdout.write(o.json ? JSON.stringify(inspectNetwork(name), null, 2) + '\n' : `${inspectNetwork(name).id}\n`);
    });
  network
    .command('ls')
    .description('list networks')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      const rows = listNetworks();
      if (o.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else process.stdout.write(table([['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], ...rows.map((r) => [r.id, r.name, r.driver, r.scope])]));
    });
  network
    .command('inspect <name>')
    .description('subnets, gateway, containers with addresses and ports (JSON)')
    .action((name: string) => {
      process.stdout.write(JSON.stringify(inspectNetwork(name), null, 2) + '\n');
    });
  network
    .command('rm <name>')
    .description('remove a network no container uses')
    .action((name: string) => {
      removeNetwork(name);
      process.stdout.write(`${name}\n`);
    });
  network
    .command('connect <network> <container>')
    .description('attach a container to one more network (next free ethN)')
    .option('--ip <ip>', 'requested address')
    .option('--alias <name>', 'another name of the container on this network (repeatable)', collect, [])
    .action(async (net: string, container: string, o: { ip?: string; alias: string[] }) => {
      const list = net === 'bridge' ? ensureDefaultBridge() : findList(net);
      if (!list) throw new Error(`no network named ${net}`);
      const a = await withProgress(`connecting ${container} to ${net}`, () => connectContainer(container, list, o.ip, o.alias));
      process.stdout.write(`${container} ${a.ifname} ${a.addresses.join(' ')}\n`);
    });
  network
    .command('disconnect <network> <container>')
    .description('detach a container from a network it was connected to')
    .action(async (net: string, container: string) => {
      const list = findList(net);
      if (!list) throw new Error(`no network named ${net}`);
      await withProgress(`disconnecting ${container} from ${net}`, () => disconnectContainer(container, list));
    });
  network
    .command('prune')
    .description('remove every network no container uses')
    .action(async () => {
      for (const n of await withProgress('removing unused networks', () => pruneNetworks())) process.stdout.write(`${n}\n`);
    });

  program
    .command('run <name> [command...]')
    .description('create a "container" (a network namespace) attached to a network; optionally start COMMAND in it')
    .option('--network <name>', 'network (bridge, none, or one created)', 'bridge')
    .option('--ip <ip>', 'requested address')
    .option('-p, --publish <spec>', "publish a port, Docker's syntax [ip:][hostPort:]containerPort[/proto]", collect, [])
    .option('-P, --publish-all', 'publish every -p given without a host port on a free host port (the lab has no image to read EXPOSE from, so that is always so)')
    .option('--dns <ip>', 'nameserver for resolv.conf', collect, [])
    .option('--dns-search <domain>', 'search domain for resolv.conf', collect, [])
    .option('--add-host <name:ip>', 'extra hosts entry', collect, [])
    .option('--hostname <name>', 'host name in the hosts file')
    .option('--bandwidth-in <rate>', 'shape traffic to the container, bits/s (10mbit, 10M, 500k); the network needs the bandwidth plugin')
    .option('--bandwidth-out <rate>', 'shape traffic from the container, bits/s; the network needs the bandwidth plugin')
    .option('--network-alias <name>', 'another name of the container on a user-defined network (repeatable)', collect, [])
    .option('--link <name[:alias]>', 'hosts entry for another container, also on the default bridge (repeatable)', collect, [])
    .action(async (name: string, command: string[], o: { network: string; ip?: string; publish: string[]; dns: string[]; dnsSearch: string[]; addHost: string[]; hostname?: string; bandwidthIn?: string; bandwidthOut?: string; networkAlias: string[]; link: string[] }) => {
      const list = o.network === 'none' ? 'none' : o.network === 'bridge' ? ensureDefaultBridge() : findList(o.network);
      if (!list) throw new Error(`no network named ${o.network}`);
      // As Docker: the default bridge and none have no name server to hold aliases.
      if (o.networkAlias.length > 0 && (o.network === 'bridge' || o.network === 'none')) throw new Error('--network-alias works on user-defined networks only');
      const c = await withProgress(`starting ${name}`, () => runContainer(name, list, {
        network: o.network, ip: o.ip, publish: o.publish.map(parsePublish), dns: o.dns, dnsSearch: o.dnsSearch,
        addHosts: o.addHost, hostname: o.hostname, command, bandwidth: bandwidthArgs(o.bandwidthIn, o.bandwidthOut),
        aliases: o.networkAlias, links: o.link,
      }));
      process.stdout.write(`${c.name} ${c.addresses.join(' ')}${c.ports.length ? ` ${c.ports.map(describePublished).join(', ')}` : ''}\n`);
    });
  program
    .command('exec <name> <command...>')
    .description('run a command inside a container')
    .action((name: string, command: string[]) => {
      process.exitCode = execIn(name, command);
    });
  program
    .command('ps')
    .description('list containers')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      const cs = listContainers();
      if (o.json) process.stdout.write(JSON.stringify(cs, null, 2) + '\n');
      else process.stdout.write(table([['NAME', 'NETWORK', 'ADDRESSES', 'PORTS'], ...cs.map((c) => [c.name, networksOf(c).join(','), [...c.addresses, ...(c.extra ?? []).flatMap((e) => e.addresses)].join(','), c.ports.map(describePublished).join(', ')])]));
    });
  program
    .command('port <name>')
    .description('published ports of a container')
    .action((name: string) => {
      const c = getContainer(name);
      if (!c) throw new Error(`no container named ${name}`);
      for (const p of c.ports) process.stdout.write(`${p.containerPort}/${p.protocol} -> ${p.hostIP === '' ? '0.0.0.0' : p.hostIP}:${p.hostPort}\n`);
    });
  program
    .command('inspect <name>')
    .description('a container as JSON')
    .action((name: string) => {
      const c = getContainer(name);
      if (!c) throw new Error(`no container named ${name}`);
      process.stdout.write(JSON.stringify(c, null, 2) + '\n');
    });
  program
    .command('rm <names...>')
    .description('detach and remove containers')
    .option('-f, --force', 'kill a running command first')
    .action(async (names: string[], o: { force?: boolean }) => {
      for (const n of names) {
        await withProgress(`removing ${n}`, () => removeContainer(n, findList, o.force ?? false));
        process.stdout.write(`${n}\n`);
      }
    });
}
