// One address per range set, under the store's lock: the requested one, or
// the next free one after the last handed out (round robin, so a freed
// address is not reused at once), never a gateway.
import { CniError, ErrorCode } from '../../lib/skel/index.ts';
import { type IPAddr, addToIP, compareIP, equalIP, formatIP } from '../../lib/ip/index.ts';
import { type RangeSet, type Range, type HostLocalConfig, rangeFor, placeRequested, rangeSetText } from './config.ts';
import { ownedBy, holderDetails, type LeaseStore, type Owner, type Lease } from './store.ts';

export interface Allocation {
  ip: IPAddr;
  range: Range;
}

/** Every address of a set once, starting after `after` when it is in the set, wrapping around. */
function* candidates(set: RangeSet, after: IPAddr | undefined): Generator<{ ip: IPAddr; range: Range }> {
  const next = (idx: number, ip: IPAddr): [number, IPAddr] => {
    const r = set[idx]!;
    if (compareIP(ip, r.end) < 0) return [idx, addToIP(ip, 1n)];
    const n = (idx + 1) % set.length;
    return [n, set[n]!.start];
  };
  let idx = 0;
  let ip = set[0]!.start;
  const last = after && rangeFor(set, after);
  if (after && last) [idx, ip] = next(set.indexOf(last), after);
  let total = 0n;
  for (const r of set) total += r.end.value - r.start.value + 1n;
  for (let k = 0n; k < total; k++) {
    yield { ip, range: set[idx]! };
    [idx, ip] = next(idx, ip);
  }
}

/**
 * Allocates for owner from every range set; all or nothing. Must run inside
 * store.locked().
 */
export function allocate(store: LeaseStore, conf: HostLocalConfig, owner: Owner): Allocation[] {
  const wanted = new Map<number, { ip: IPAddr; range: Range }>();
  for (const ip of conf.requested) {
    const placed = placeRequested(conf.rangeSets, ip);
    if (wanted.has(placed.set)) {
      throw new CniError(ErrorCode.InvalidConfig, `two requested addresses (${formatIP(wanted.get(placed.set)!.ip)}, ${formatIP(ip)}) fall in one range set; each set gives one address`);
    }
    const holder = store.leaseAt(ip);
    if (holder) {
      throw new CniError(
        ErrorCode.AddressInUse,
        `requested address ${formatIP(ip)} is already leased to container ${holder.containerId}${holder.ifname ? ` (${holder.ifname})` : ''}`,
        holder.ifname ? holderDetails(holder) : undefined,
      );
    }
    wanted.set(placed.set, { ip, range: placed.range });
  }

  const owned = store.leasesOf(owner);
  const made: Allocation[] = [];
  try {
    for (let i = 0; i < conf.rangeSets.length; i++) {
      const set = conf.rangeSets[i]!;
      for (const mine of owned) {
        if (!rangeFor(set, mine.ip)) continue;
        throw new CniError(ErrorCode.InvalidConfig, `${formatIP(mine.ip)} is already leased to ${owner.containerId} (${owner.ifname}) in range set ${rangeSetText(set)}; a second ADD needs a DEL first`);
      }
      const asked = wanted.get(i);
      if (asked) {
        if (!store.reserve(asked.ip, owner, i)) throw new CniError(ErrorCode.AddressInUse, `requested address ${formatIP(asked.ip)} is already leased`);
        made.push(asked);
        continue;
      }
      let got: Allocation | undefined;
      for (const c of candidates(set, store.lastReserved(i))) {
        if (equalIP(c.ip, c.range.gateway)) continue;
        if (store.reserve(c.ip, owner, i)) {
          got = c;
          break;
        }
      }
      if (!got) throw new CniError(ErrorCode.RangeExhausted, `no free address left in range set ${rangeSetText(set)} of network ${conf.network}`);
      made.push(got);
    }
  } catch (e) {
    for (const a of made) store.release({ ip: a.ip, ...owner });
    throw e;
  }
  return made;
}

/** Removes the owner's leases; returns how many. */
export function release(store: LeaseStore, owner: Owner): number {
  const mine = store.leasesOf(owner, true);
  for (const l of mine) store.release(l);
  return mine.length;
}

/** Removes every lease whose owner is not in keep; returns the removed leases. */
export function collectGarbage(store: LeaseStore, keep: Owner[]): Lease[] {
  const valid = new Set(keep.map((o) => `${o.containerId}\0${o.ifname}`));
  const removed: Lease[] = [];
  for (const l of store.leases()) {
    if (valid.has(`${l.containerId}\0${l.ifname}`)) continue;
    // Old-format leases carry no ifname: keep them if the container is still there at all.
    if (l.ifname === '' && keep.some((o) => o.containerId === l.containerId)) continue;
    store.release(l);
    removed.push(l);
  }
  return removed;
}

/**
 * The first range set with no address left to hand out (each ADD needs one
 * from every set, so then no ADD can succeed), or undefined.
 */
export function exhaustedSet(sets: readonly RangeSet[], leased: readonly IPAddr[]): RangeSet | undefined {
  for (const set of sets) {
    let free = 0n;
    for (const r of set) {
      free += r.end.value - r.start.value + 1n;
      if (rangeFor([r], r.gateway)) free -= 1n;
    }
    for (const ip of leased) {
      const r = rangeFor(set, ip);
      if (r && !equalIP(ip, r.gateway)) free -= 1n;
    }
    if (free <= 0n) return set;
  }
  return undefined;
}
