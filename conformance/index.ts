// The conformance suite: every case against a plugin directory (anyone's),
// a table of case, spec section and result, and "N passed, N failed, N skipped".
import { ConformanceLab } from './lab.ts';
import { CASES as MAIN_CASES, CaseFailure, CaseSkip, type Names, type Role, type Ctx } from './cases.ts';
import { META_CASES } from './meta.ts';

export type { Names } from './cases.ts';
export const CASES = [...MAIN_CASES, ...META_CASES];

export interface Outcome {
  id: string;
  section: string;
  title: string;
  result: 'pass' | 'fail' | 'skip';
  detail?: string;
}

/** Runs the cases (all, or those named in `only`); a case whose plugin role is not given is skipped. */
export function runConformance(pluginDir: string, names: Names, only?: string[]): Outcome[] {
  const lab = new ConformanceLab(pluginDir);
  try {
    const ctx: Ctx = {
      lab,
      names,
      name(role: Role) {
        const n = names[role];
        if (!n) throw new CaseSkip(`no ${role} plugin given`);
        return n;
      },
      bridgeConf(version, extra = {}) {
        return {
          cniVersion: version,
          name: 'conformance',
          type: ctx.name('bridge'),
          bridge: `${lab.prefix}br`,
          isGateway: true,
          isDefaultGateway: true,
          ipMasq: true,
          ipam: { type: ctx.name('ipam'), ranges: [[{ subnet: '10.250.0.0/24' }]], dataDir: `${lab.dir}/ipam` },
          // cnikit's plugins keep their records there (others ignore the key): a plugin under test that never DELs leaves nothing on the machine.
          dataDir: `${lab.dir}/plugins`,
          ...extra,
        };
      },
    };
    return CASES.filter((c) => !only || only.includes(c.id)).map((c) => {
      const base = { id: c.id, section: c.section, title: c.title };
      try {
        c.run(ctx);
        return { ...base, result: 'pass' as const };
      } catch (e) {
        if (e instanceof CaseSkip) return { ...base, result: 'skip' as const, detail: e.message };
        const detail = e instanceof CaseFailure ? e.message : `error: ${(e as Error).message}`;
        return { ...base, result: 'fail' as const, detail };
      }
    });
  } finally {
    lab.close();
  }
}

export function report(outcomes: Outcome[], expected: Record<string, string> = {}): string {
  const rows = outcomes.map((o) => {
    const note = o.result === 'fail' && expected[o.id] ? ` (expected: ${expected[o.id]})` : o.detail ? ` (${o.detail.replace(/\|/g, '/')})` : '';
    return `| ${o.id} | ${o.section} | ${o.result}${note} |`;
  });
  const n = (r: Outcome['result']) => outcomes.filter((o) => o.result === r).length;
  return ['| case | spec | result |', '|---|---|---|', ...rows, '', `${n('pass')} passed, ${n('fail')} failed, ${n('skip')} skipped`, ''].join('\n');
}
