// The HTML report: one self-contained file — uPlot, the page's script, its
// styles and the data inline — so it opens offline and as an e-mail attachment.
// The script is bundled with esbuild when the report is written.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunFacts } from '../facts.ts';
import type { Report } from '../report.ts';
import { cellText, isInterval, isStat, type Cell, type Table } from '../tables.ts';
import { pageData, type PageData } from './data.ts';

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** The client script with uPlot, as one minified IIFE. */
async function bundle(): Promise<string> {
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [here('./client.ts')], bundle: true, minify: true, format: 'iife', target: 'es2020',
    write: false, logLevel: 'silent', legalComments: 'none',
  });
  return out.outputFiles[0]!.text;
}

function uplotCss(): string {
  return readFileSync(createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'), 'utf8');
}

/** JSON safe inside a <script> element: no `</script>` or `<!--` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export async function htmlReport(facts: RunFacts[], report: Report): Promise<string> {
  return renderPage(pageData(facts, report.title, report.summary), await bundle(), report);
}

/** A report table as static HTML: the comparisons and provenance need no script. */
export function staticTable(t: Table): string {
  const numeric = (c: Cell) => typeof c === 'number' || isStat(c) || isInterval(c);
  const head = t.columns.map((c) => `<th>${esc(c)}</th>`).join('');
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td${numeric(c) ? ' class="num"' : ''}>${esc(cellText(c))}</td>`).join('')}</tr>`).join('\n');
  return `<h3 id="table-${esc(t.id)}">${esc(t.title)}</h3>\n${t.note ? `<p class="note">${esc(t.note)}</p>\n` : ''}<table class="static"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Writes `dir`/report.html; returns its path. */
export function writeHtml(dir: string, html: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'report.html');
  writeFileSync(file, html);
  return file;
}

/** `report`: its comparisons, provenance and warnings, drawn as static HTML. */
export function renderPage(d: PageData, script: string, report: Pick<Report, 'comparisons' | 'provenance' | 'warnings'>): string {
  const css = `${uplotCss()}\n${readFileSync(here('./style.css'), 'utf8')}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(d.title)}</title>
<style>${css}</style>
</head>
<body>
<header><h1>${esc(d.title)}</h1><p>${esc(d.summary)}</p>${report.warnings.map((w) => `<p class="warning">${esc(w)}</p>`).join('')}<p class="note">normlab report, ${esc(d.generated)}</p></header>
<nav><a href="#results">Results</a> <a href="#comparisons">Comparisons</a> <a href="#curves">Loss curves</a> <a href="#layers">Per-block diagnostics</a> <a href="#analyses-section">Layer analyses</a> <a href="#provenance">Provenance</a></nav>
<section id="results">
<h2>Results</h2>
<p class="controls"><label>Filter <input id="filter" type="search" size="48" placeholder="model.norm=pre train.seed!=1 status=finished, or any text"></label> <span id="filter-count"></span></p>
<h3>Final validation perplexity (mean ± std over seeds; lower is better)</h3>
<p class="note">Diverged runs are counted, not averaged in (marked red); unfinished ones likewise. Click a header to sort, a cell to highlight its runs.</p>
<div id="headline"></div>
<div id="dots" class="chart"></div>
<h3>Runs</h3>
<p class="note">Click a header to sort, a run to highlight its curves and show its config.</p>
<div class="runs-layout"><div id="runs"></div><aside id="run-detail"></aside></div>
</section>
<section id="comparisons">
<h2>Comparisons</h2>
${report.comparisons.length ? report.comparisons.map(staticTable).join('\n') : '<p class="note">No strategy shares its settings and seeds with a baseline run: nothing to pair.</p>'}
</section>
<section id="curves">
<h2>Loss curves</h2>
<p class="controls"><label>Smoothing <input id="smoothing" type="range" min="0" value="0" step="1"></label> <span id="smoothing-value"></span>
<label><input id="loss-log" type="checkbox" checked> log y</label></p>
<p class="note">Training loss (lines; smoothed lines keep the raw loss faint beneath them) and validation loss (open circles). Click a legend entry to hide it; hover for values.</p>
<div id="loss-chart" class="chart"></div><p id="loss-note" class="note"></p>
</section>
<section id="layers">
<h2>Per-block diagnostics</h2>
<h3>Gradient norm by block and step</h3><div id="heat-gradNorm"></div>
<h3>Output variance by block and step</h3><div id="heat-outputVar"></div>
<h3>Value against depth at a step</h3>
<p class="controls"><select id="depth-metric"><option value="gradNorm">gradient norm</option><option value="outputVar">output variance</option></select>
<label>Step <input id="depth-step" type="range" min="0" value="0" step="1"></label> <span id="depth-step-value"></span></p>
<div id="depth-chart" class="chart"></div>
</section>
<section id="analyses-section">
<h2>Layer analyses</h2>
<p class="note">From normlab analyze (or training's analyze_every): each run's checkpoint on held-out validation sequences.</p>
<div id="analyses"></div>
</section>
<section id="provenance">
<h2>Provenance</h2>
${staticTable(report.provenance)}
</section>
<script type="application/json" id="normlab-data">${scriptJson(d)}</script>
<script>${script.replace(/<\/script/gi, '<\\/script')}</script>
</body>
</html>
`;
}
