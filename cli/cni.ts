// `cnikit cni add|del|check|gc|status NETWORK [NETNS]`: cnitool's commands,
// run through cnikit's driver on a network of the config dir.
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { Driver, findNetwork, DEFAULT_CACHE_DIR, type RuntimeConf } from '../driver/index.ts';
import type { Attachment } from '../lib/spec/index.ts';

interface CniOptions {
  ifname: string;
  args?: string;
  capabilityArgs?: string;
  containerId?: string;
  configDir: string;
  cniPath: string;
  cacheDir: string;
  valid?: string;
  exec?: boolean;
  timeout: string;
}

function parseArgs(s: string | undefined): [string, string][] | undefined {
  if (!s) return undefined;
  return s.split(';').filter(Boolean).map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--args: "${pair}" is not KEY=VALUE`);
    return [pair.slice(0, eq), pair.slice(eq + 1)];
  });
}

function parseJson<T>(s: string | undefined, what: string): T | undefined {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as T;
  } catch (e) {
    throw new Error(`${what} is not JSON: ${(e as Error).message}`);
  }
}

function runtime(netns: string, o: CniOptions): RuntimeConf {
  // cnitool's default container ID: derived from the netns path.
  const containerId = o.containerId ?? `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;
  const rt: RuntimeConf = { containerId, netns, ifname: o.ifname };
  const args = parseArgs(o.args);
  if (args) rt.args = args;
  const caps = parseJson<Record<string, unknown>>(o.capabilityArgs, '--capability-args');
  if (caps) rt.capabilityArgs = caps;
  return rt;
}

export function registerCni(program: Command): void {
  const cni = program.command('cni').description('run a network of the config dir through the chaining driver, as cnitool does');
  const common = (c: Command) =>
    c
      .option('--ifname <name>', 'interface name in the container', 'eth0')
      .option('--args <K=V;...>', 'CNI_ARGS')
      .option('--capability-args <json>', 'capability arguments, e.g. {"portMappings":[...]}')
      .option('--container-id <id>', 'container ID (default: derived from the netns path, as cnitool)')
      .option('--config-dir <dir>', 'network config dir', process.env.NETCONFPATH ?? '/etc/cni/net.d')
      .option('--cni-path <dirs>', 'plugin dirs (colon-separated)', process.env.CNI_PATH ?? '/opt/cni/bin')
      .option('--cache-dir <dir>', 'result cache dir', DEFAULT_CACHE_DIR)
      .option('--exec', 'exec cnikit\'s own plugins too, instead of running them in-process')
      .option('--timeout <ms>', 'kill a plugin that runs longer', '60000');
  const driver = (o: CniOptions) => new Driver({ cniPath: o.cniPath.split(':'), cacheDir: o.cacheDir, inProcess: o.exec ? false : undefined, timeoutMs: Number(o.timeout) });

  common(cni.command('add <network> <netns>').description('ADD; prints the result'))
    .action(async (network: string, netns: string, o: CniOptions) => {
      const result = await driver(o).add(findNetwork(o.configDir, network), runtime(netns, o));
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    });
  common(cni.command('del <network> <netns>').description('DEL (with the cached result)'))
    .action(async (network: string, netns: string, o: CniOptions) => {
      await driver(o).del(findNetwork(o.configDir, network), runtime(netns, o));
    });
  common(cni.command('check <network> <netns>').description('CHECK against the cached result'))
    .action(async (network: string, netns: string, o: CniOptions) => {
      await driver(o).check(findNetwork(o.configDir, network), runtime(netns, o));
    });
  common(cni.command('gc <network>').description('GC: remove what belongs to attachments not in --valid'))
    .option('--valid <json>', 'valid attachments, e.g. [{"containerID":"c1","ifname":"eth0"}]', '[]')
    .action(async (network: string, o: CniOptions) => {
      const valid = parseJson<Attachment[]>(o.valid, '--valid') ?? [];
      await driver(o).gc(findNetwork(o.configDir, network), valid);
    });
  common(cni.command('status <network>').description('STATUS of every plugin of the network'))
    .action(async (network: string, o: CniOptions) => {
      await driver(o).status(findNetwork(o.configDir, network));
    });
}
