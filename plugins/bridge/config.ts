// The bridge options with the reference plugin's defaults applied, and the
// container MAC from wherever the runtime put it.
import type { BridgeConf } from '../../lib/spec/index.ts';
import { CniError, ErrorCode, type Invocation } from '../../lib/skel/index.ts';
import { DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import { parseMac } from '../../lib/netlink/codec.ts';
import { type Prefix, tryParsePrefix, networkOf } from '../../lib/ip/index.ts';

export const DEFAULT_BRIDGE = 'cni0';

export interface BridgeOptions {
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend?: 'iptables' | 'nftables';
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  enableDad: boolean;
  disableContainerInterface: boolean;
  isolate: boolean;
  icc: boolean;
  macspoofchk: boolean;
  /** Bridge port isolation: asked for directly (portIsolation) or by icc=false. */
  portIsolation: boolean;
  dataDir: string;
  /** MAC for the container interface, if the runtime asked for one. */
  mac?: string;
  /** With ipMasq: destinations besides the container's subnet reached unmasqueraded (nonMasqueradeCIDRs). */
  masqExempt: Prefix[];
}

/**
 * nonMasqueradeCIDRs as prefixes (host bits cleared). ADD refuses an invalid
 * one (code 7 naming it); DEL and CHECK skip it, as they must not fail on
 * input ADD would have refused.
 */
export function parseExempt(list: readonly string[] | undefined, strict: boolean): Prefix[] {
  const out: Prefix[] = [];
  if (!list) return out;
  for (let i = 0; i < list.length; i++) {
    const p = tryParsePrefix(list[i]!);
    if (p) out.push(networkOf(p));
    else if (strict) throw new CniError(ErrorCode.InvalidConfig, `nonMasqueradeCIDRs.${i}: ${JSON.stringify(list[i])} is not a CIDR`, `field nonMasqueradeCIDRs.${i}`);
  }
  return out;
}

function checkMac(mac: string, where: string): string {
  if (!parseMac(mac)) throw new CniError(ErrorCode.InvalidConfig, `invalid MAC address ${JSON.stringify(mac)} in ${where}`);
  // A multicast MAC (low bit of the first octet) cannot be a unicast interface's address.
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new CniError(ErrorCode.InvalidConfig, `MAC address ${mac} in ${where} is a multicast address`);
  return mac.toLowerCase();
}

function requestedMac(conf: BridgeConf, inv: Invocation): string | undefined {
  // Precedence as the reference: runtimeConfig, then args.cni, then CNI_ARGS.
  const fromRuntime = conf.runtimeConfig?.mac;
  if (fromRuntime) return checkMac(fromRuntime, 'runtimeConfig.mac');
  const fromArgs = conf.args?.cni?.mac;
  if (typeof fromArgs === 'string' && fromArgs !== '') return checkMac(fromArgs, 'args.cni.mac');
  const fromEnv = inv.args.get('MAC');
  if (fromEnv) return checkMac(fromEnv, 'CNI_ARGS MAC');
  return undefined;
}

/** ADD refuses what it cannot do rather than silently doing less. */
export function refuseUnsupported(conf: BridgeConf): void {
  if (conf.hairpinMode && conf.promiscMode) {
    // As the reference: a promiscuous bridge already sends a container its own frames back.
    throw new CniError(ErrorCode.InvalidConfig, 'hairpinMode and promiscMode cannot both be true');
  }
  if (conf.vlan) {
    // Bridge VLAN filtering is a kernel option (CONFIG_BRIDGE_VLAN_FILTERING)
    // the machines cnikit is built and tested on lack, so it is not offered untested.
    throw new CniError(ErrorCode.UnsupportedField, 'vlan is not supported by cnikit bridge yet (it needs bridge VLAN filtering)', 'field vlan');
  }
}

/**
 * The options with defaults applied. `forAdd: false` (DEL, CHECK, GC) leaves
 * out the container MAC, which only ADD uses: a runtime's bad MAC must not
 * stop a teardown.
 */
export function resolveOptions(conf: BridgeConf, inv: Invocation, forAdd = true): BridgeOptions {
  const isDefaultGateway = conf.isDefaultGateway ?? false;
  return {
    bridge: conf.bridge ?? DEFAULT_BRIDGE,
    isGateway: (conf.isGateway ?? false) || isDefaultGateway,
    isDefaultGateway,
    forceAddress: conf.forceAddress ?? false,
    ipMasq: conf.ipMasq ?? false,
    ipMasqBackend: conf.ipMasqBackend,
    mtu: conf.mtu,
    hairpinMode: conf.hairpinMode ?? false,
    promiscMode: conf.promiscMode ?? false,
    enableDad: conf.enabledad ?? false,
    disableContainerInterface: conf.disableContainerInterface ?? false,
    isolate: conf.isolate ?? false,
    icc: conf.icc ?? true,
    macspoofchk: conf.macspoofchk ?? false,
    portIsolation: (conf.portIsolation ?? false) || conf.icc === false,
    dataDir: conf.dataDir ?? DEFAULT_DATA_DIR,
    mac: forAdd ? requestedMac(conf, inv) : undefined,
    masqExempt: parseExempt(conf.nonMasqueradeCIDRs, forAdd),
  };
}
