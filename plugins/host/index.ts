// Docker's --net host: the container shares the host's network namespace, so
// there is nothing to create. ADD proves CNI_NETNS is the host's (skel) and
// that no published port is already taken, and reports the host's interfaces.
import type { HostConf, Result, Interface, IPConfig } from '../../lib/spec/index.ts';
import { validateHostConf } from '../../lib/spec/validators.gen.js';
import { keysHostConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { Netlink } from '../../lib/netlink/index.ts';
import { boundSockets, findConflict, type Protocol } from '../../lib/hostports/index.ts';

function checkPorts(ctx: Context<HostConf>): void {
  const mappings = ctx.conf.runtimeConfig?.portMappings ?? [];
  if (mappings.length === 0) return;
  const sockets = boundSockets();
  for (const m of mappings) {
    const protocol = (m.protocol || 'tcp').toLowerCase() as Protocol;
    const port = m.hostPort || m.containerPort;
    const hostIP = m.hostIP ?? '';
    const hit = findConflict(sockets, protocol, hostIP, port);
    if (hit) {
      throw new CniError(ErrorCode.PortInUse, `host port ${port}/${protocol}${hostIP ? ` on ${hostIP}` : ''} is already bound on the host (by a socket on ${hit.address}:${hit.port}); in host mode the container cannot use it`);
    }
  }
}

function hostInterfaces(): Pick<Result, 'interfaces' | 'ips'> {
  return Netlink.with((nl) => {
    const links = nl.links();
    const addresses = nl.addresses();
    const interfaces: Interface[] = links.map((l) => ({ name: l.name, mac: l.mac, mtu: l.mtu }));
    const position = new Map(links.map((l, i) => [l.index, i]));
    const ips: IPConfig[] = addresses.flatMap((a) => {
      const i = position.get(a.index);
      return i === undefined ? [] : [{ address: a.cidr, interface: i }];
    });
    return { interfaces, ips };
  });
}

function add(ctx: Context<HostConf>): Result {
  checkPorts(ctx);
  if (ctx.prevResult) return ctx.prevResult;
  return { cniVersion: ctx.conf.cniVersion, ...hostInterfaces() };
}

export const hostPlugin: Plugin<HostConf> = {
  name: 'host',
  validate: validateHostConf,
  keys: keysHostConf,
  netns: 'host',
  add,
  // The namespace check (skel) is all there is to verify: the ports ADD
  // checked are meant to be bound by the container by now.
  check: () => undefined,
  del: () => undefined,
  gc: () => undefined,
  status: () => undefined,
};
