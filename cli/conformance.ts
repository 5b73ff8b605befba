// `cnikit conformance --plugins DIR …`: the black-box suite on any plugin dir.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { runConformance, report, type Names } from '../conformance/index.ts';
import { REFERENCE_EXPECTED_FAILURES } from '../conformance/expected.ts';

export function registerConformance(program: Command): void {
  program
    .command('conformance')
    .description('test a CNI plugin directory against the specification, in a lab namespace of its own')
    .requiredOption('--plugins <dir>', 'plugin directory')
    .option('--loopback <name>', 'loopback plugin', 'loopback')
    .option('--bridge <name>', 'bridge plugin (its cases are skipped when absent)')
    .option('--ipam <name>', 'IPAM plugin', 'host-local')
    .option('--portmap <name>', 'port-mapping plugin')
    .option('--firewall <name>', 'firewall plugin (chained; its cases are skipped when absent)')
    .option('--tuning <name>', 'tuning plugin (chained)')
    .option('--bandwidth <name>', 'bandwidth plugin (chained)')
    .option('--case <id>', 'run only this case (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--report <file>', 'also write the table to this file')
    .option('--reference', 'the plugins are the reference ones: their known faults are reported as expected, other failures still fail')
    .action((o: { plugins: string; loopback: string; bridge?: string; ipam: string; portmap?: string; firewall?: string; tuning?: string; bandwidth?: string; case: string[]; report?: string; reference?: boolean }) => {
      const names: Names = { loopback: o.loopback, ipam: o.ipam };
      if (o.bridge) names.bridge = o.bridge;
      if (o.portmap) names.portmap = o.portmap;
      for (const role of ['firewall', 'tuning', 'bandwidth'] as const) if (o[role]) names[role] = o[role];
      const outcomes = runConformance(o.plugins, names, o.case.length > 0 ? o.case : undefined);
      const expected = o.reference ? REFERENCE_EXPECTED_FAILURES : {};
      const text = report(outcomes, expected);
      process.stdout.write(text);
      if (o.report) writeFileSync(o.report, `# CNI conformance of ${o.plugins}\n\n${text}`);
      if (outcomes.some((x) => x.result === 'fail' && !expected[x.id])) process.exitCode = 1;
    });
}
