// The report as files: one document in the chosen format (all tables, and in
// Markdown the figures inline), the figures as SVG and PNG, and a long-format
// CSV of every metric.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { depthProfileRunsTable, depthProfileTable, headlineTable, layerTables, runsTable } from './build.ts';
import type { RunFacts } from './facts.ts';
import { figures as makeFigures, type Figure } from './figures.ts';
import { svgToPng } from './png.ts';
import { csvField, jsonTable, renderTable, type Format, type Table } from './tables.ts';

export interface Report {
  title: string;
  /** One line on what the report covers. */
  summary: string;
  tables: Table[];
  figures: Figure[];
}

export function buildReport(facts: RunFacts[], title: string): Report {
  const counts = new Map<string, number>();
  for (const f of facts) counts.set(f.status, (counts.get(f.status) ?? 0) + 1);
  const backends = [...new Set(facts.map((f) => f.backend))].join(', ');
  return {
    title,
    summary: `${facts.length} runs (${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}); backend ${backends}.`,
    tables: [headlineTable(facts), depthProfileTable(facts), depthProfileRunsTable(facts), ...layerTables(facts), runsTable(facts)],
    figures: makeFigures(facts, title),
  };
}

/** The whole report as one text in `format` (stdout, or report.<ext> under --out). */
export function renderReport(r: Report, format: Format, figureExt?: 'svg' | 'png'): string {
  switch (format) {
    case 'json':
      return JSON.stringify({ title: r.title, summary: r.summary, tables: r.tables.map(jsonTable) }, null, 2) + '\n';
    case 'csv':
      // Several tables in one stream: each after a `# title` line, a blank line between.
      return r.tables.map((t) => `# ${t.title}\n${renderTable(t, 'csv')}`).join('\n');
    case 'table':
      return [r.title, r.summary, '', ...r.tables.map((t) => renderTable(t, 'table'))].join('\n');
    case 'md': {
      // The headline and the depth profiles first, then the figures, then the per-block detail.
      const [headline, profile, profileRuns, ...rest] = r.tables;
      const figs = figureExt ? ['## Figures', '', ...r.figures.map((f) => `![${f.title}](figures/${f.name}.${figureExt})\n`)] : [];
      return [
        `# ${r.title}`, '', r.summary, '', ...[headline!, profile!, profileRuns!].map((t) => renderTable(t, 'md')),
        ...figs, '## Per-block tables', '', ...rest.map((t) => renderTable(t, 'md')),
      ].join('\n');
    }
  }
}

const EXT: Record<Format, string> = { table: 'txt', md: 'md', csv: 'csv', json: 'json' };

export interface WriteOptions {
  format: Format;
  figures: ('svg' | 'png')[];
  longCsv: boolean;
}

/** Writes the report under `dir`; returns the files written. */
export async function writeReport(dir: string, r: Report, facts: RunFacts[], o: WriteOptions): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, data: string | Buffer) => {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
    files.push(file);
  };
  const figureExt = o.figures.includes('svg') ? 'svg' : o.figures.includes('png') ? 'png' : undefined;
  if (o.format === 'csv') {
    for (const t of r.tables) put(`${t.id}.csv`, renderTable(t, 'csv'));
  } else {
    put(`report.${EXT[o.format]}`, renderReport(r, o.format, figureExt));
  }
  for (const f of r.figures) {
    if (o.figures.includes('svg')) put(`figures/${f.name}.svg`, f.svg);
    if (o.figures.includes('png')) put(`figures/${f.name}.png`, await svgToPng(f.svg));
  }
  if (o.longCsv) files.push(writeLongCsv(path.join(dir, 'metrics.csv'), facts));
  return files;
}

/** Every metric row of every run, one per line, for users' own tools (streamed: it can be large). */
export function writeLongCsv(file: string, facts: RunFacts[]): string {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, 'run,sweep,strategy,seed,kind,name,step,layer,param,value\n');
    for (const f of facts) {
      const prefix = [f.id, f.sweep ?? '', f.strategy, String(f.seed)].map(csvField).join(',');
      let chunk = '';
      for (const m of f.source.store.metricRows(f.id)) {
        const layer = m.kind === 'layer' ? String(m.index) : '';
        const param = m.kind === 'param' ? csvField(String(m.index)) : '';
        chunk += `${prefix},${m.kind},${csvField(m.name)},${m.step},${layer},${param},${m.value}\n`;
        if (chunk.length > 1 << 16) { writeSync(fd, chunk); chunk = ''; }
      }
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return file;
}
