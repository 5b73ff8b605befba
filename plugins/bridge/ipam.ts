// IPAM by delegation: the `ipam.type` plugin gets the whole network config,
// as the reference does; cnikit's own IPAM, host-local, runs in-process (same
// skel, same on-disk effect), any other is exec'd from CNI_PATH.
import type { BridgeConf, Result, NetConf } from '../../lib/spec/index.ts';
import { validationError } from '../../lib/spec/index.ts';
import { validateResult } from '../../lib/spec/validators.gen.js';
import { CniError, ErrorCode, toCurrent, type Context, type Command, type Plugin } from '../../lib/skel/index.ts';
import { delegate } from '../../lib/invoke/index.ts';
import { ownPluginsUnlessShadowed } from '../../lib/invoke/resolve.ts';
import { hostLocalPlugin } from '../../ipam/host-local/index.ts';

const ownIpam = async (type: string): Promise<Plugin<NetConf> | undefined> => (type === 'host-local' ? (hostLocalPlugin as Plugin<NetConf>) : undefined);

function ipamConf(ctx: Context<BridgeConf>): NetConf {
  // The IPAM plugin is run with the network's config and its own type.
  const { prevResult: _drop, ...rest } = ctx.conf;
  return { ...rest, type: ctx.conf.ipam.type } as NetConf;
}

function run(ctx: Context<BridgeConf>, command: Command, owner?: { containerId: string; ifname: string }): Promise<unknown> {
  let args = '';
  for (const [k, v] of ctx.inv.args) args += `${args ? ';' : ''}${k}=${v}`;
  return delegate(ipamConf(ctx), {
    command,
    containerId: owner?.containerId ?? ctx.inv.containerId,
    netns: owner ? '' : ctx.inv.netns,
    ifname: owner?.ifname ?? ctx.inv.ifname,
    args,
    path: ctx.inv.path,
  }, { inProcess: ownPluginsUnlessShadowed(ctx.inv.path, ownIpam) });
}

export async function ipamAdd(ctx: Context<BridgeConf>): Promise<Result> {
  const raw = await run(ctx, 'ADD');
  if (raw === null || typeof raw !== 'object') throw new CniError(ErrorCode.Internal, `IPAM plugin ${ctx.conf.ipam.type} returned no result`);
  const result = toCurrent(raw as Result);
  const problem = validationError(validateResult, result);
  if (problem) throw new CniError(ErrorCode.Internal, `IPAM plugin ${ctx.conf.ipam.type} returned an invalid result: ${problem}`);
  if (!result.ips || result.ips.length === 0) throw new CniError(ErrorCode.Internal, `IPAM plugin ${ctx.conf.ipam.type} returned no IP address`);
  return result;
}

export async function ipamDel(ctx: Context<BridgeConf>): Promise<void> {
  await run(ctx, 'DEL');
}

/** DEL for another attachment of the network (one being reclaimed); without its netns, which is gone. */
export async function ipamDelFor(ctx: Context<BridgeConf>, owner: { containerId: string; ifname: string }): Promise<void> {
  await run(ctx, 'DEL', owner);
}

export async function ipamCheck(ctx: Context<BridgeConf>): Promise<void> {
  await run(ctx, 'CHECK');
}

export async function ipamGc(ctx: Context<BridgeConf>): Promise<void> {
  await run(ctx, 'GC');
}

export async function ipamStatus(ctx: Context<BridgeConf>): Promise<void> {
  await run(ctx, 'STATUS');
}
