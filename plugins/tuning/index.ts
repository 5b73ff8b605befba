// The tuning meta plugin (reference plugins/meta/tuning): net.* sysctls,
// MAC, MTU, promiscuous and all-multicast mode, transmit queue length of the
// container's interface. The values it changes are recorded first and put
// back on DEL. Without options (as Podman writes it) it does nothing and
// returns the prevResult: no netns entered, no file touched.
import type { TuningConf, Result } from '../../lib/spec/index.ts';
import { validateTuningConf } from '../../lib/spec/validators.gen.js';
import { keysTuningConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context, type Invocation } from '../../lib/skel/index.ts';
import { Netlink, readSysctl, writeSysctl, type Link } from '../../lib/netlink/index.ts';
import { parseMac } from '../../lib/netlink/codec.ts';
import { isNotFound } from '../../lib/fs/index.ts';
import { withNetns, NetnsError } from '../../lib/netns/index.ts';
import { AttachmentStore, DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import { sysctlPath } from './sysctl.ts';

const PLUGIN = 'tuning';

interface LinkState {
  mac?: string;
  mtu?: number;
  promisc?: boolean;
  allmulti?: boolean;
  txQLen?: number;
}

export interface TuningRecord {
  network: string;
  containerId: string;
  ifname: string;
  /** What the interface had before ADD, for what ADD changed. */
  link: LinkState;
  /** sysctl key (as configured) → value before ADD. */
  sysctl: Record<string, string>;
}

interface Wanted {
  link: LinkState;
  /** key → { its '/'-separated name under /proc/sys, value } */
  sysctl: Array<{ key: string; path: string; value: string }>;
}

function store(conf: TuningConf, network = conf.name): AttachmentStore<TuningRecord> {
  return new AttachmentStore<TuningRecord>(conf.dataDir ?? DEFAULT_DATA_DIR, PLUGIN, network);
}

function checkMac(mac: string, where: string): string {
  if (!parseMac(mac)) throw new CniError(ErrorCode.InvalidConfig, `invalid MAC address ${JSON.stringify(mac)} in ${where}`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new CniError(ErrorCode.InvalidConfig, `MAC address ${mac} in ${where} is a multicast address`);
  return mac.toLowerCase();
}

/** Precedence as the reference: runtimeConfig, then args.cni, then CNI_ARGS, then the option. */
function wantedMac(conf: TuningConf, inv: Invocation): string | undefined {
  const fromRuntime = conf.runtimeConfig?.mac;
  if (fromRuntime) return checkMac(fromRuntime, 'runtimeConfig.mac');
  const fromArgs = (conf.args?.cni as { mac?: unknown } | undefined)?.mac;
  if (typeof fromArgs === 'string' && fromArgs !== '') return checkMac(fromArgs, 'args.cni.mac');
  const fromEnv = inv.args.get('MAC');
  if (fromEnv) return checkMac(fromEnv, 'CNI_ARGS MAC');
  if (conf.mac) return checkMac(conf.mac, 'mac');
  return undefined;
}

/** What the configuration asks for; throws code 7 before anything is touched. */
function wanted(conf: TuningConf, inv: Invocation): Wanted | undefined {
  const link: LinkState = {};
  const mac = wantedMac(conf, inv);
  if (mac !== undefined) link.mac = mac;
  if (conf.mtu !== undefined) link.mtu = conf.mtu;
  if (conf.promisc !== undefined) link.promisc = conf.promisc;
  if (conf.allmulti !== undefined) link.allmulti = conf.allmulti;
  if (conf.txQLen !== undefined) link.txQLen = conf.txQLen;
  const sysctl: Wanted['sysctl'] = [];
  for (const key in conf.sysctl ?? {}) {
    const path = sysctlPath(key, inv.ifname);
    if (typeof path !== 'string') throw new CniError(ErrorCode.InvalidConfig, `invalid sysctl key "${key.replace(/[^\x20-\x7e]/g, '?')}": ${path.reason}`, 'field sysctl');
    sysctl.push({ key, path, value: conf.sysctl![key]! });
  }
  let any = sysctl.length > 0;
  for (const _ in link) any = true;
  return any ? { link, sysctl } : undefined;
}

function linkOf(nl: Netlink, ifname: string, netns: string): Link {
  const l = nl.link(ifname);
  if (!l) throw new CniError(ErrorCode.InvalidConfig, `no interface ${ifname} in ${netns}`);
  return l;
}

const IFF_PROMISC = 0x100;
const IFF_ALLMULTI = 0x200;

function applyLink(nl: Netlink, index: number, s: LinkState): void {
  if (s.mac !== undefined) nl.setMac(index, s.mac);
  if (s.mtu !== undefined) nl.setMtu(index, s.mtu);
  if (s.promisc !== undefined) nl.setPromisc(index, s.promisc);
  if (s.allmulti !== undefined) nl.setAllmulti(index, s.allmulti);
  if (s.txQLen !== undefined) nl.setTxQLen(index, s.txQLen);
}

function currentOf(l: Link, w: LinkState): LinkState {
  const old: LinkState = {};
  if (w.mac !== undefined) old.mac = l.mac;
  if (w.mtu !== undefined) old.mtu = l.mtu;
  if (w.promisc !== undefined) old.promisc = (l.flags & IFF_PROMISC) !== 0;
  if (w.allmulti !== undefined) old.allmulti = (l.flags & IFF_ALLMULTI) !== 0;
  if (w.txQLen !== undefined && l.txQLen !== undefined) old.txQLen = l.txQLen;
  return old;
}

/** The value, or undefined when the entry does not exist in the current namespace. */
function readIfExists(path: string): string | undefined {
  try {
    return readSysctl(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

function restoreSysctls(saved: Record<string, string>, ifname: string): void {
  for (const key in saved) {
    const path = sysctlPath(key, ifname);
    if (typeof path !== 'string') continue;
    try {
      writeSysctl(path, saved[key]!);
    } catch {
      // The interface (and its conf entry) may be gone: nothing left to restore.
    }
  }
}

function add(ctx: Context<TuningConf>): Result {
  const prev = ctx.prevResult;
  const w = wanted(ctx.conf, ctx.inv);
  if (!w) {
    if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'tuning must be chained after a plugin that makes the interface (there is no prevResult)');
    return prev;
  }
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'tuning must be chained after a plugin that makes the interface (there is no prevResult)');
  const { ifname, netns, containerId } = ctx.inv;
  const records = store(ctx.conf);
  const key = { network: ctx.conf.name, containerId, ifname };
  // A repeated ADD keeps the values from before the first one.
  const earlier = records.read(key);
  const record = withNetns(netns, () => {
    // Read everything first: a key that does not exist changes nothing.
    const sysctl: Record<string, string> = {};
    for (const s of w.sysctl) {
      const old = readIfExists(s.path);
      if (old === undefined) throw new CniError(ErrorCode.InvalidConfig, `sysctl "${s.key}" does not exist in the container's namespace`, 'field sysctl');
      sysctl[s.key] = earlier?.sysctl[s.key] ?? old;
    }
    return Netlink.with((nl) => {
      const l = linkOf(nl, ifname, netns);
      const r: TuningRecord = { ...key, link: { ...currentOf(l, w.link), ...(earlier?.link ?? {}) }, sysctl };
      // Record first: a crash half-way leaves what DEL needs to put things back.
      records.write(r);
      try {
        for (const s of w.sysctl) {
          try {
            writeSysctl(s.path, s.value);
          } catch (e) {
            throw new CniError(ErrorCode.InvalidConfig, `sysctl "${s.key}" = "${s.value}" was refused: ${(e as Error).message}`, 'field sysctl');
          }
        }
        applyLink(nl, l.index, w.link);
      } catch (e) {
        try {
          applyLink(nl, l.index, r.link);
          restoreSysctls(r.sysctl, ifname);
        } finally {
          records.remove(key);
        }
        throw e;
      }
      return r;
    });
  });
  const result: Result = { ...prev };
  if (w.link.mac !== undefined && prev.interfaces) {
    result.interfaces = prev.interfaces.map((i) => (i.name === ifname && i.sandbox ? { ...i, mac: w.link.mac! } : i));
  }
  void record;
  return result;
}

function del(ctx: Context<TuningConf>): void {
  const key = { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
  const records = store(ctx.conf);
  const record = records.read(key);
  if (!record) return;
  if (ctx.inv.netns) {
    try {
      withNetns(ctx.inv.netns, () => {
        restoreSysctls(record.sysctl, record.ifname);
        Netlink.with((nl) => {
          const l = nl.link(record.ifname);
          if (l) applyLink(nl, l.index, record.link);
        });
      });
    } catch (e) {
      // The namespace is gone, and with it everything that was changed.
      if (!(e instanceof NetnsError && e.reason === 'missing')) throw e;
    }
  }
  records.remove(key);
}

function check(ctx: Context<TuningConf>): void {
  const w = wanted(ctx.conf, ctx.inv);
  if (!w) return;
  withNetns(ctx.inv.netns, () => {
    for (const s of w.sysctl) {
      const now = readIfExists(s.path);
      if (now !== s.value.trim()) throw new CniError(ErrorCode.CheckFailed, `sysctl "${s.key}" is ${JSON.stringify(now)}, not ${JSON.stringify(s.value)}`);
    }
    Netlink.with((nl) => {
      const l = nl.link(ctx.inv.ifname);
      if (!l) throw new CniError(ErrorCode.CheckFailed, `no interface ${ctx.inv.ifname} in ${ctx.inv.netns}`);
      const now = currentOf(l, w.link);
      for (const k of ['mac', 'mtu', 'promisc', 'allmulti', 'txQLen'] as const) {
        if (w.link[k] !== undefined && now[k] !== undefined && now[k] !== w.link[k]) {
          throw new CniError(ErrorCode.CheckFailed, `${ctx.inv.ifname} has ${k} ${String(now[k])}, not ${String(w.link[k])}`);
        }
      }
    });
  });
}

export const tuningPlugin: Plugin<TuningConf> = {
  name: PLUGIN,
  validate: validateTuningConf,
  keys: keysTuningConf,
  add,
  check,
  del,
  // Its changes live in the container's namespace and go with it; records of gone attachments are dropped.
  gc: (ctx, valid) => {
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    const records = store(ctx.conf);
    records.sweepEmpty();
    for (const r of records.list()) if (!keep.has(`${r.containerId}\0${r.ifname}`)) records.remove(r);
  },
  status: () => undefined,
};
