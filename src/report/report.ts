// The report as files: one document in the chosen format (all tables, and in
// Markdown the figures inline), the figures as SVG and PNG, and a long-format
// CSV of every metric and analysis row.
import { closeSync, createWriteStream, mkdirSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import { setLabel } from '../analyze/sample-set.ts';
import { AnalysisReader, hasAnalyses } from './analyses.ts';
import { analysisFigures } from './analysis-figures.ts';
import { analysisTables } from './analysis-tables.ts';
import { depthProfileRunsTable, depthProfileTable, headlineTable, layerTables, runsTable } from './build.ts';
import { bestLrTable, DEFAULT_BASELINE, pairedAtBestLrTable, pairedTable } from './compare.ts';
import { mixedTokenizerWarning, type RunFacts } from './facts.ts';
import { figures as makeFigures, type Figure } from './figures.ts';
import { svgToPng } from './png.ts';
import { dirtyWarning, mixedCodeWarning, provenanceTable } from './provenance.ts';
import { csvField, jsonTable, renderTable, type Format, type Table } from './tables.ts';
import { LOSS_SMOOTHING } from './smooth.ts';

export interface Report {
  title: string;
  /** One line on what the report covers. */
  summary: string;
  tables: Table[];
  /** Strategies against the baseline, paired by seed, and at their own best lr (empty when nothing pairs). */
  comparisons: Table[];
  /** Which code, backend and host produced the runs. */
  provenance: Table;
  /** What a reader must not miss (mixed code versions, tokenizers): also in the summary. */
  warnings: string[];
  figures: Figure[];
  /** The layer analyses (normlab analyze): empty when no run has any. */
  analysisTables: Table[];
  analysisFigures: Figure[];
  /** The long CSV written beside the document, once it is. */
  longCsv?: LongCsv;
}

export interface LongCsv {
  file: string;
  bytes: number;
  rows: number;
}

/**
 * `smoothing`: the EMA weight of the line drawn over the raw training loss in the loss figures (0: none);
 * `baseline`: the strategy the others are compared with, paired by seed.
 */
export function buildReport(facts: RunFacts[], title: string, smoothing = LOSS_SMOOTHING, baseline = DEFAULT_BASELINE): Report {
  const counts = new Map<string, number>();
  for (const f of facts) counts.set(f.status, (counts.get(f.status) ?? 0) + 1);
  const backends = [...new Set(facts.map((f) => f.backend))].join(', ');
  const analysed = facts.filter((f) => hasAnalyses(f.analyses)).length;
  const tokenizers = [...new Set(facts.map((f) => f.tokenizer))];
  const warnings = [mixedTokenizerWarning(facts), mixedCodeWarning(facts), dirtyWarning(facts)].filter((w) => w !== undefined);
  return {
    title,
    summary: `${facts.length} runs (${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}); backend ${backends}; tokenizer ${tokenizers.join('; ')}.${analysed ? ` Layer analyses of ${analysed} of them.` : ''}${warnings.map((w) => ` ${w}`).join('')}`,
    tables: [headlineTable(facts), depthProfileTable(facts), depthProfileRunsTable(facts), ...layerTables(facts), runsTable(facts)],
    comparisons: [pairedTable(facts, baseline), bestLrTable(facts), pairedAtBestLrTable(facts, baseline)].filter((t) => t !== undefined),
    provenance: provenanceTable(facts),
    warnings,
    figures: makeFigures(facts, title, smoothing),
    analysisTables: analysisTables(facts),
    analysisFigures: analysisFigures(facts, title),
  };
}

/** Every table in one order for the formats that list them: the core tables, the comparisons, provenance, the analyses. */
function allTables(r: Report): Table[] {
  return [...r.tables, ...r.comparisons, r.provenance, ...r.analysisTables];
}

const ANALYSES_INTRO = 'From `normlab analyze` (or training\'s `analyze_every`): the model at a checkpoint on held-out validation sequences — '
  + 'angular distance between hidden states (Gromov et al.), the loss increase when one block is replaced by the identity, '
  + 'the variance and the largest absolute value of the hidden states. Each run at its latest analysed step unless `--step` picks one.';

/** The whole report as one text in `format` (stdout, or report.<ext> under --out). */
export function renderReport(r: Report, format: Format, figureExt?: 'svg' | 'png'): string {
  switch (format) {
    case 'json':
      return JSON.stringify({ title: r.title, summary: r.summary, warnings: r.warnings, tables: allTables(r).map(jsonTable) }, null, 2) + '\n';
    case 'csv':
      // Several tables in one stream: each after a `# title` line, a blank line between.
      return allTables(r).map((t) => `# ${t.title}\n${renderTable(t, 'csv')}`).join('\n');
    case 'table': {
      const [headline, ...rest] = r.tables;
      return [r.title, r.summary, '', ...[headline!, ...r.comparisons, ...rest, r.provenance, ...r.analysisTables].map((t) => renderTable(t, 'table'))].join('\n');
    }
    case 'md': {
      // The headline and the depth profiles first, then the figures, then the per-block detail.
      const [headline, profile, profileRuns, ...rest] = r.tables;
      const images = (figures: Figure[]) => (figureExt ? figures.map((f) => `![${f.title}](figures/${f.name}.${figureExt})\n${f.caption ? `\n*${f.caption}*\n` : ''}`) : []);
      const figs = figureExt ? ['## Figures', '', ...images(r.figures)] : [];
      // The analyses: their per-run summary, their figures, then the per-block tables.
      const [analysisRuns, ...analysisBlocks] = r.analysisTables;
      const analyses = analysisRuns
        ? ['## Layer analyses', '', ANALYSES_INTRO, '', renderTable(analysisRuns, 'md'), ...images(r.analysisFigures), ...analysisBlocks.map((t) => renderTable(t, 'md'))]
        : [];
      const data = r.longCsv ? ['## Data', '', `Every metric and analysis row, one per line: [${path.basename(r.longCsv.file)}](${path.basename(r.longCsv.file)}) (${longCsvSize(r.longCsv)}).`, ''] : [];
      return [
        `# ${r.title}`, '', r.summary, '', ...[headline!, ...r.comparisons, profile!, profileRuns!].map((t) => renderTable(t, 'md')),
        ...figs, ...analyses, '## Per-block tables', '', ...rest.map((t) => renderTable(t, 'md')),
        '## Provenance', '', renderTable(r.provenance, 'md'), ...data,
      ].join('\n');
    }
  }
}

const EXT: Record<Format, string> = { table: 'txt', md: 'md', csv: 'csv', json: 'json' };

export const LONG_CSV_MODES = ['csv', 'gz', 'none'] as const;
export type LongCsvMode = (typeof LONG_CSV_MODES)[number];

export interface WriteOptions {
  format: Format;
  figures: ('svg' | 'png')[];
  longCsv: LongCsvMode;
}

export function longCsvSize(c: LongCsv): string {
  return `${(c.bytes / 2 ** 20).toFixed(1)} MiB, ${c.rows.toLocaleString('en-US')} rows`;
}

/** Writes the report under `dir`; returns the files written. */
export async function writeReport(dir: string, r: Report, facts: RunFacts[], o: WriteOptions): Promise<{ files: string[]; longCsv?: LongCsv }> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, data: string | Buffer) => {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
    files.push(file);
  };
  const figureExt = o.figures.includes('svg') ? 'svg' : o.figures.includes('png') ? 'png' : undefined;
  // The long CSV first, so the document can say how big it is.
  if (o.longCsv !== 'none') {
    r = { ...r, longCsv: await writeLongCsv(path.join(dir, o.longCsv === 'gz' ? 'metrics.csv.gz' : 'metrics.csv'), facts) };
    files.push(r.longCsv!.file);
  }
  if (o.format === 'csv') {
    for (const t of allTables(r)) put(`${t.id}.csv`, renderTable(t, 'csv'));
  } else {
    put(`report.${EXT[o.format]}`, renderReport(r, o.format, figureExt));
  }
  for (const f of [...r.figures, ...r.analysisFigures]) {
    if (o.figures.includes('svg')) put(`figures/${f.name}.svg`, f.svg);
    if (o.figures.includes('png')) put(`figures/${f.name}.png`, await svgToPng(f.svg));
  }
  return { files, ...(r.longCsv && { longCsv: r.longCsv }) };
}

/** Where the long CSV's text goes: the file as is, or through gzip (a file name ending .gz), with backpressure. */
function csvSink(file: string): { write(text: string): Promise<void> | void; close(): Promise<void> } {
  if (!file.endsWith('.gz')) {
    const fd = openSync(file, 'w');
    return { write: (text) => { writeSync(fd, text); }, close: async () => closeSync(fd) };
  }
  // Level 1: the rows repeat their prefix, so the fastest level already shrinks them ~8×.
  const gzip = createGzip({ level: 1 });
  const out = gzip.pipe(createWriteStream(file));
  return {
    write: async (text) => { if (!gzip.write(text)) await once(gzip, 'drain'); },
    close: async () => { gzip.end(); await once(out, 'close'); },
  };
}

/**
 * Every metric and analysis row of every run, one per line, for users' own tools
 * (streamed: a 100,000-step sweep gives gigabytes; `.gz` compresses it). Analysis
 * rows have kind `analysis`, the row set as name (angular, layer_drop, variance, …),
 * layer as stored, for angular the offset n, and the sample set they were computed on. Rows come metric by metric; within
 * a metric, the order follows the store's layout (docs/store.md).
 */
export async function writeLongCsv(file: string, facts: RunFacts[]): Promise<LongCsv> {
  const sink = csvSink(file);
  const readers = new Map<string, AnalysisReader>();
  let rows = 0;
  try {
    await sink.write('run,sweep,strategy,seed,kind,name,step,layer,n,param,value,sample_set\n');
    for (const f of facts) {
      const prefix = [f.id, f.sweep ?? '', f.strategy, String(f.seed)].map(csvField).join(',');
      let chunk = '';
      const put = async (line: string) => {
        chunk += line;
        rows++;
        if (chunk.length > 1 << 16) { await sink.write(chunk); chunk = ''; }
      };
      for (const c of f.source.store.metricChunks(f.id)) {
        const head = `${prefix},${c.kind},${csvField(c.name)},`;
        const cells = (index: number | string | null) => (c.kind === 'layer' ? `${index},,` : c.kind === 'param' ? `,,${csvField(index as string)}` : ',,');
        // One series (compact layout): its layer or parameter cells once; else per row. NaN is stored as NULL.
        if (c.index !== undefined) {
          const mid = cells(c.index);
          for (const [step, value] of c.rows) {
            chunk += `${head}${step},${mid},${value ?? NaN},\n`;
            // Short-lived strings: written every 64K characters, they die young.
            if (chunk.length > 1 << 16) { await sink.write(chunk); chunk = ''; }
          }
        } else {
          for (const [step, index, value] of c.rows) {
            chunk += `${head}${step},${cells(index)},${value ?? NaN},\n`;
            if (chunk.length > 1 << 16) { await sink.write(chunk); chunk = ''; }
          }
        }
        rows += c.rows.length;
      }
      const file = f.source.store.file;
      const reader = readers.get(file) ?? readers.set(file, AnalysisReader.open(file)).get(file)!;
      for (const a of reader.allRows(f.id)) {
        await put(`${prefix},analysis,${csvField(a.analysis)},${a.step},${a.layer},${a.analysis === 'angular' ? a.n : ''},${csvField(a.param)},${a.value},${csvField(setLabel(a.sampleSet))}\n`);
      }
      await sink.write(chunk);
    }
  } finally {
    await sink.close();
    readers.forEach((r) => r.close());
  }
  return { file, bytes: statSync(file).size, rows };
}
