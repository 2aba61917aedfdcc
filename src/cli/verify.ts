// normlab verify <dir>: every reference case in a folder of MODEL.md §6's format.
import type { Command } from 'commander';
import { backendOption, startBackend, UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';

export function registerVerify(program: Command, setExitCode: SetExitCode): void {
  program
    .command('verify')
    .description('check the model against reference cases (MODEL.md §6): exit 1 on any mismatch')
    .argument('<dir>', 'a case folder or a folder of case folders')
    .addOption(backendOption())
    .option('--strict', 'count cases that need unimplemented features as failures')
    .action(async (dir: string, opts: { backend: string; strict?: boolean }) => {
      const { compareCase, computeCase, findCases, loadCase, UnsupportedCase } = await import('../verify/golden.ts');
      const backend = await startBackend(opts.backend);
      console.log(`backend: ${backend.name} (${backend.version})`);
      const cases = findCases(dir);
      if (cases.length === 0) throw new UsageError(`${dir}: no reference cases (folders with expected.json) found`);
      let failed = 0, skipped = 0;
      for (const caseDir of cases) {
        let c;
        try {
          c = loadCase(caseDir);
        } catch (e) {
          if (!(e instanceof UnsupportedCase)) throw e;
          skipped++;
          console.log(`SKIP  ${caseDir}: ${e.message.slice(caseDir.length + 2)}`);
          continue;
        }
        const results = compareCase(c.expected, computeCase(c));
        const bad = results.filter((r) => !r.ok);
        if (bad.length) failed++;
        console.log(`${bad.length ? 'FAIL' : 'ok  '}  ${c.name}`);
        for (const r of results) {
          console.log(`        ${r.ok ? ' ' : '✗'} ${r.quantity.padEnd(28)} max rel err ${r.maxRelError.toExponential(2)}${r.detail && !r.ok ? `  (${r.detail})` : ''}`);
        }
      }
      const passed = cases.length - failed - skipped;
      console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
      setExitCode(failed > 0 || (opts.strict && skipped > 0) ? 1 : 0);
    });
}
