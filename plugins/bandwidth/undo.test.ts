// A failed ADD whose undo fails too keeps its record, so that DEL or GC
// removes what is left; one whose undo works keeps none. The kernel is
// stood in for: making a real qdisc deletion fail cannot be arranged.
import { describe, it, expect, afterEach, vi } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netlink, type Link } from '../../lib/netlink/index.ts';
import { nullLogger } from '../../lib/log/index.ts';
import type { Context } from '../../lib/skel/index.ts';
import type { BandwidthConf } from '../../lib/spec/index.ts';
import { bandwidthPlugin } from './index.ts';
import { hostStateDir } from '../../lib/state/scope.ts';

const host: Link = { index: 7, name: 'vethhost', flags: 1, up: true, mtu: 1500, mac: '02:00:00:00:00:07', kind: 'veth' };
const inside: Link = { index: 2, name: 'eth0', flags: 1, up: true, mtu: 1500, mac: '02:00:00:00:00:02', kind: 'veth', linkIndex: 7, linkNetnsId: 0 };

function context(dataDir: string): Context<BandwidthConf> {
  return {
    inv: { command: 'ADD', containerId: 'c1', netns: '/run/netns/x', ifname: 'eth0', args: new Map(), path: [] },
    conf: { cniVersion: '1.1.0', name: 'n', type: 'bandwidth', dataDir, ingressRate: 1_000_000, ingressBurst: 80_000, egressRate: 1_000_000, egressBurst: 80_000 },
    prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'vethhost' }, { name: 'eth0', sandbox: '/run/netns/x' }] },
    log: nullLogger,
  };
}

/** A kernel that makes the root tbf, then refuses the ifb; `undoFails`: and refuses to delete the tbf. */
function fakeKernel(undoFails: boolean): string[] {
  const calls: string[] = [];
  const nl = {
    link: () => undefined,
    linkByIndex: (i: number) => (i === host.index ? host : undefined),
    addTbf: () => void calls.push('addTbf'),
    createIfb: () => {
      throw new Error('create ifb: EEXIST');
    },
    deleteQdisc: () => {
      calls.push('deleteQdisc');
      if (undoFails) throw new Error('delete qdisc: EBUSY');
      return true;
    },
  } as unknown as Netlink;
  vi.spyOn(Netlink, 'inNetns').mockImplementation(((_path: string, fn: (n: Netlink) => unknown) => fn({ link: () => inside } as unknown as Netlink)) as typeof Netlink.inNetns);
  vi.spyOn(Netlink, 'with').mockImplementation(((fn: (n: Netlink) => unknown) => fn(nl)) as typeof Netlink.with);
  return calls;
}

describe('bandwidth ADD that fails', () => {
  let dir = '';
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });
  // Records are per host network namespace (lib/state): this process's.
  const records = () => {
    const d = join(hostStateDir(dir), 'bandwidth', 'n');
    return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')) : [];
  };

  it('takes back its tbf and keeps no record', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bwundo-'));
    const calls = fakeKernel(false);
    await expect(Promise.resolve().then(() => bandwidthPlugin.add(context(dir)))).rejects.toThrow(/EEXIST/);
    expect(calls).toEqual(['addTbf', 'deleteQdisc']);
    expect(records()).toEqual([]);
  });

  it('keeps its record when the undo fails, with the first error', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bwundo-'));
    const calls = fakeKernel(true);
    await expect(Promise.resolve().then(() => bandwidthPlugin.add(context(dir)))).rejects.toThrow(/EEXIST/);
    expect(calls).toEqual(['addTbf', 'deleteQdisc']);
    expect(records()).toEqual(['c1@eth0.json']);
  });
});
