// The stress and chaos suite (bench/stress.ts) in a short form for CI: a
// batch of chains at once beside the reference plugins, a churn with killed
// plugin processes, a firewall flush and `cnikit firewall reload` in its
// middle. Every count the suite judges must be 0, and every survivor must
// pass traffic. `npm run stress` runs the full form.
import { describe, it, expect } from 'vitest';
import { runStress, clean, report } from '../bench/stress.ts';

describe('stress and chaos (short form)', () => {
  it('leaves nothing behind, duplicates nothing, and every survivor and reloaded container passes traffic', async () => {
    const lines: string[] = [];
    const r = await runStress({ batch: 12, cycles: 30, workers: 3, killRate: 0.2, reference: true, maxLive: 8, log: (l) => lines.push(l) });
    const text = report(r);
    const ours = r.batches.find((b) => b.name.startsWith('cnikit'))!;
    expect(ours).toMatchObject({ addErrors: 0, delErrors: 0, duplicates: 0, left: { links: 0, leases: 0, firewall: 0, records: 0 } });
    // The churn did kill plugins, and the flush did break traffic: the zeros below are not for want of trying.
    expect(r.churn.killed).toBeGreaterThan(0);
    if (r.reload.live > 0) expect(r.reload.afterFlush).toBeLessThan(r.reload.live);
    expect(r.reload.afterReload).toBe(r.reload.live);
    expect(r.churn.traffic).toEqual({ checked: r.churn.survivors, ports: r.churn.survivors, masquerade: r.churn.survivors });
    expect(r.churn.leaksAfterGc).toEqual({ links: 0, leases: 0, records: 0, indexEntries: 0, emptyIndexDirs: 0, temporaries: 0, firewallElements: 0, firewallChains: 0 });
    expect(r.churn.leftAfterCleanup).toEqual({ links: 0, leases: 0, records: 0, indexEntries: 0, emptyIndexDirs: 0, temporaries: 0, firewallElements: 0, firewallChains: 0 });
    expect(r.churn.runtimeDelErrors + r.churn.gcErrors).toBe(0);
    expect(clean(r), `${text}\n${lines.join('\n')}`).toBe(true);
  }, 600_000);
});
