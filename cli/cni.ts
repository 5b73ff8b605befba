// `cnikit cni add|del|check|gc|status NETWORK [NETNS]`: cnitool's commands,
// run through cnikit's driver on a network of the config dir.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Driver, findNetwork, DEFAULT_CACHE_DIR, type RuntimeConf } from '../driver/index.ts';
import { convertResult } from '../lib/skel/index.ts';
import type { Attachment } from '../lib/spec/index.ts';

interface CniOptions {
  ifname?: string;
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

// Options fall back to cnitool's environment variables, so its scripts work unchanged.
function isAttachment(v: unknown): v is Attachment {
  const a = v as Partial<Attachment> | null;
  return typeof a === 'object' && a !== null && typeof a.containerID === 'string' && typeof a.ifname === 'string';
}

function runtime(netnsArg: string, o: CniOptions): RuntimeConf {
  // An empty path stays empty: DEL of a container whose netns is gone.
  const netns = netnsArg === '' ? '' : resolve(netnsArg);
  // cnitool's container ID: the first 10 bytes of sha512(absolute netns path), in hex.
  const containerId = o.containerId ?? `cnitool-${createHash('sha512').update(netns).digest('hex').slice(0, 20)}`;
  const rt: RuntimeConf = { containerId, netns, ifname: o.ifname || process.env.CNI_IFNAME || 'eth0' };
  const args = parseArgs(o.args ?? process.env.CNI_ARGS);
  if (args) rt.args = args;
  const caps = parseJson<Record<string, unknown>>(o.capabilityArgs ?? (process.env.CAP_ARGS || undefined), '--capability-args');
  if (caps) rt.capabilityArgs = caps;
  return rt;
}

export function registerCni(program: Command): void {
  const cni = program.command('cni').description('run a network of the config dir through the chaining driver, as cnitool does');
  const common = (c: Command) =>
    c
      .option('--ifname <name>', 'interface name in the container (default: $CNI_IFNAME or eth0)')
      .option('--args <K=V;...>', 'CNI_ARGS (default: $CNI_ARGS)')
      .option('--capability-args <json>', 'capability arguments, e.g. {"portMappings":[...]} (default: $CAP_ARGS)')
      .option('--container-id <id>', 'container ID (default: derived from the netns path, as cnitool)')
      .option('--config-dir <dir>', 'network config dir', process.env.NETCONFPATH ?? '/etc/cni/net.d')
      .option('--cni-path <dirs>', 'plugin dirs (colon-separated)', process.env.CNI_PATH ?? '/opt/cni/bin')
      .option('--cache-dir <dir>', 'result cache dir', DEFAULT_CACHE_DIR)
      .option('--exec', 'exec every plugin from the CNI path, cnikit\'s own too (default: those run in-process)')
      .option('--timeout <ms>', 'kill a plugin that runs longer than this', '60000');
  const driver = (o: CniOptions) => {
    const timeoutMs = Number(o.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout: "${o.timeout}" is not a positive number of milliseconds`);
    return new Driver({ cniPath: o.cniPath.split(':').filter(Boolean), cacheDir: o.cacheDir, inProcess: o.exec ? false : undefined, timeoutMs });
  };

  common(cni.command('add <network> <netns>').description('ADD; prints the result'))
    .action(async (network: string, netns: string, o: CniOptions) => {
      const list = findNetwork(o.configDir, network);
      const result = await driver(o).add(list, runtime(netns, o));
      // Printed in the list's version, as cnitool prints what libcni returns.
      process.stdout.write(JSON.stringify(convertResult(result, list.version), null, 2) + '\n');
    });
  common(cni.command('del <network> [netns]').description('DEL (with the cached result); the netns may be gone'))
    .action(async (network: string, netns: string | undefined, o: CniOptions) => {
      await driver(o).del(findNetwork(o.configDir, network), runtime(netns ?? '', o));
    });
  common(cni.command('check <network> <netns>').description('CHECK against the cached result'))
    .action(async (network: string, netns: string, o: CniOptions) => {
      await driver(o).check(findNetwork(o.configDir, network), runtime(netns, o));
    });
  // cnitool takes a netns here too and ignores it; so does this.
  common(cni.command('gc <network> [netns]').description('GC: remove what belongs to attachments not in --valid'))
    .option('--valid <json>', 'valid attachments, e.g. [{"containerID":"c1","ifname":"eth0"}]', '[]')
    .action(async (network: string, _netns: string | undefined, o: CniOptions) => {
      const valid = parseJson<unknown>(o.valid, '--valid') ?? [];
      if (!Array.isArray(valid) || !valid.every(isAttachment)) throw new Error('--valid: expected [{"containerID":"…","ifname":"…"}, …]');
      await driver(o).gc(findNetwork(o.configDir, network), valid);
    });
  common(cni.command('status <network> [netns]').description('STATUS of every plugin of the network'))
    .action(async (network: string, _netns: string | undefined, o: CniOptions) => {
      await driver(o).status(findNetwork(o.configDir, network));
    });
}
