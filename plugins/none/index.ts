// Loopback only: Docker's --net none, and a drop-in for the reference
// `loopback` plugin (installed under both names).
import type { NoneConf, Result, IPConfig } from '../../lib/spec/index.ts';
import { validateNoneConf } from '../../lib/spec/validators.gen.js';
import { keysNoneConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { NetnsError } from '../../lib/netns/index.ts';
import { Netlink } from '../../lib/netlink/index.ts';

const LO = 'lo';

function add(ctx: Context<NoneConf>): Result {
  const addresses = Netlink.inNetns(ctx.inv.netns, (nl) => {
    const lo = nl.link(LO);
    if (!lo) throw new CniError(ErrorCode.Internal, `no ${LO} interface in ${ctx.inv.netns}`);
    nl.setUp(lo.index);
    return nl.addresses({ index: lo.index });
  });
  if (ctx.prevResult) return ctx.prevResult;
  const ips: IPConfig[] = [];
  for (const a of addresses) ips.push({ address: a.cidr, interface: 0 });
  return { cniVersion: ctx.conf.cniVersion, interfaces: [{ name: LO, mac: '00:00:00:00:00:00', sandbox: ctx.inv.netns }], ips };
}

function check(ctx: Context<NoneConf>): void {
  Netlink.inNetns(ctx.inv.netns, (nl) => {
    const lo = nl.link(LO);
    if (!lo?.up) throw new CniError(ErrorCode.CheckFailed, `${LO} in ${ctx.inv.netns} is not up`);
  });
}

function del(ctx: Context<NoneConf>): void {
  if (!ctx.inv.netns) return;
  try {
    Netlink.inNetns(ctx.inv.netns, (nl) => {
      const lo = nl.link(LO);
      if (lo) nl.setDown(lo.index);
    });
  } catch (e) {
    // The namespace is gone, or its path no longer names one (a runtime
    // unpinned it): nothing is left to undo.
    if (e instanceof NetnsError) return;
    throw e;
  }
}

export const nonePlugin: Plugin<NoneConf> = {
  name: 'none',
  validate: validateNoneConf,
  keys: keysNoneConf,
  add,
  check,
  del,
  gc: () => undefined,
  status: () => undefined,
};
