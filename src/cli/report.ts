// normlab report [--sweep NAME] [--format table|md|csv|json|html] [--out DIR] [--step N] …
import { Option, type Command } from 'commander';
import { hasAnalyses } from '../report/analyses.ts';
import { DEFAULT_BASELINE } from '../report/compare.ts';
import { runFacts, type RunFacts } from '../report/facts.ts';
import { gatherRuns } from '../report/gather.ts';
import type { LongCsvMode } from '../report/report.ts';
import { LOSS_SMOOTHING } from '../report/smooth.ts';
import { FORMATS, type Format } from '../report/tables.ts';
import { UsageError } from './common.ts';

interface ReportFlags {
  sweep?: string;
  runsDir: string;
  format: Format | 'html';
  out?: string;
  figures: string;
  longCsv: LongCsvMode | false;
  title?: string;
  step?: string;
  smoothing: string;
  analysisSet?: string;
  baseline?: string;
}

const FIGURE_KINDS = ['svg', 'png'] as const;

/**
 * --long-csv's choices, in report.ts's order; listed here so that declaring the flag does
 * not load the report's renderers. The Record's type fails the typecheck if the modes change.
 */
const LONG_CSV_MODES = Object.keys({ csv: true, gz: true, none: true } satisfies Record<LongCsvMode, true>);

function figureKinds(text: string): ('svg' | 'png')[] {
  if (text === 'none') return [];
  const kinds = text.split(',').map((s) => s.trim());
  const bad = kinds.filter((k) => !(FIGURE_KINDS as readonly string[]).includes(k));
  if (bad.length) throw new UsageError(`--figures: expected svg, png, svg,png or none, got ${text}`);
  return kinds as ('svg' | 'png')[];
}

function smoothingOf(text: string): number {
  const beta = Number(text);
  if (!(beta >= 0 && beta < 1)) throw new UsageError(`--smoothing: expected an EMA weight in [0, 1), e.g. 0.9 (0: raw loss only), got "${text}"`);
  return beta;
}

function stepOf(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--step: expected a step number, got "${text}"`);
  return n;
}

/** The baseline strategy: as given, which some run must have; the default may be absent (then nothing is paired). */
function baselineOf(text: string | undefined, facts: RunFacts[]): string {
  if (text === undefined) return DEFAULT_BASELINE;
  const strategies = [...new Set(facts.map((f) => f.strategy))].sort();
  if (!strategies.includes(text)) throw new UsageError(`--baseline: no run has strategy "${text}"; these runs have ${strategies.join(', ')}`);
  return text;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('tables (headline perplexity, per-block diagnostics), figures and a long CSV from the stored runs')
    .option('--sweep <name>', 'only the runs of this sweep')
    .option('--runs-dir <dir>', 'where the runs are: its *.sqlite and every <run>/run.sqlite', 'runs')
    .addOption(new Option('--format <format>', 'table format, or html: one self-contained interactive page').choices([...FORMATS, 'html']).default('table'))
    .option('--out <dir>', 'write report.<ext>, figures/ and metrics.csv there instead of printing the tables')
    .option('--figures <kinds>', 'with --out: svg, png, svg,png or none', 'svg,png')
    .addOption(new Option('--long-csv <mode>', 'with --out: metrics.csv (every metric of every run), gzipped as metrics.csv.gz, or none').choices(LONG_CSV_MODES).default('csv'))
    .option('--no-long-csv', 'with --out: same as --long-csv none')
    .option('--title <text>', 'the report\'s title')
    .option('--step <n>', 'layer analyses at this checkpoint step (default: each run\'s latest analysed step)')
    .option('--smoothing <beta>', 'loss figures: EMA weight of the line drawn over the raw loss (0: raw only)', String(LOSS_SMOOTHING))
    .option('--baseline <strategy>', `the strategy every other is compared with, paired by seed (default ${DEFAULT_BASELINE})`)
    .option('--analysis-set <key>', 'layer analyses of this sample set, as normlab analyze prints it (default per run: the set with the most samples among those at every analysed step, else the one at the most steps)')
    .action(async (flags: ReportFlags) => {
      const kinds = figureKinds(flags.figures);
      const smoothing = smoothingOf(flags.smoothing);
      const analysisStep = flags.step === undefined ? undefined : stepOf(flags.step);
      const [{ htmlReport, writeHtml }, { buildReport, longCsvSize, renderReport, writeReport }] =
        await Promise.all([import('../report/html/page.ts'), import('../report/report.ts')]);
      const gathered = gatherRuns(flags.runsDir, flags.sweep ? { sweep: flags.sweep } : {});
      try {
        for (const why of gathered.unreadable) console.error(`normlab: warning: skipped ${why}`);
        if (gathered.runs.length === 0) {
          throw new UsageError(`no runs${flags.sweep ? ` of sweep ${flags.sweep}` : ''} in ${flags.runsDir} (see normlab runs --runs-dir ${flags.runsDir})`);
        }
        const facts = runFacts(gathered.runs, {
          ...(analysisStep !== undefined && { analysisStep }), ...(flags.analysisSet !== undefined && { analysisSet: flags.analysisSet }),
        });
        if (flags.analysisSet !== undefined && !facts.some((f) => hasAnalyses(f.analyses))) {
          console.error(`normlab: warning: no run has layer analyses of sample set "${flags.analysisSet}"`);
        }
        if (analysisStep !== undefined && !facts.some((f) => hasAnalyses(f.analyses))) {
          console.error(`normlab: warning: no run has layer analyses at step ${analysisStep} (normlab analyze <run> --step ${analysisStep})`);
        }
        const title = flags.title ?? (flags.sweep ? `Sweep ${flags.sweep}` : `Runs in ${flags.runsDir}`);
        const report = buildReport(facts, title, smoothing, baselineOf(flags.baseline, facts));
        for (const w of report.warnings) console.error(`normlab: ${w.startsWith('WARNING: ') ? `warning: ${w.slice('WARNING: '.length)}` : `note: ${w}`}`);
        if (flags.format === 'html') {
          const html = await htmlReport(facts, report);
          if (!flags.out) process.stdout.write(html);
          else console.log(`wrote ${writeHtml(flags.out, html)} (${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB)`);
          return;
        }
        if (!flags.out) {
          process.stdout.write(renderReport(report, flags.format));
          return;
        }
        const longCsv = flags.longCsv === false ? 'none' : flags.longCsv;
        const written = await writeReport(flags.out, report, facts, { format: flags.format, figures: kinds, longCsv });
        const files = written.files.map((f) => f.slice(flags.out!.length).replace(/^\//, ''));
        console.log(`wrote ${files.length} files to ${flags.out}: ${files.join(', ')}`);
        if (written.longCsv) console.log(`${written.longCsv.file}: ${longCsvSize(written.longCsv)}`);
      } finally {
        gathered.close();
      }
    });
}
