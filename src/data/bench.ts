// The data benchmark: tokenization throughput per tokenizer, batching
// throughput per mode, and the peak memory of preparing a large C4-like file
// (in a child process, so its peak RSS is the prepare's alone). The input is
// synthetic C4: JSON lines {text, timestamp, url}, gzipped, with documents
// stitched from Brown sentences (real English, C4-like lengths).

import { spawnSync } from 'node:child_process';
import { createWriteStream, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { type Batching, Batches } from './batches.ts';
import { openDataset, rowEnds } from './dataset.ts';
import { prepareDataset } from './prepare.ts';
import { Rng } from './rng.ts';
import { textSource } from './sources.ts';
import { TOKENIZER_NAMES } from './tokenizers.ts';

const MiB = 2 ** 20;
const BIN = resolve(import.meta.dirname, '..', '..', 'bin', 'normlab');

/** Writes a gzipped C4-layout JSON-lines file holding about `textBytes` of text. */
async function writeSyntheticC4(file: string, textBytes: number, seed = 0): Promise<{ documents: number; textBytes: number; fileBytes: number }> {
  const sentences = [...textSource('brown').documents()].flatMap((d) => d.split('\n')).filter((s) => s.length > 20);
  const rng = new Rng(seed);
  const gzip = createGzip({ level: 1 });
  const done = gzip.pipe(createWriteStream(file));
  let written = 0, documents = 0;
  while (written < textBytes) {
    const text = syntheticDocument(sentences, rng);
    const line = JSON.stringify({ text, timestamp: '2019-04-25T12:57:54Z', url: `https://example.com/${documents}` }) + '\n';
    if (!gzip.write(line)) await once(gzip, 'drain');
    written += Buffer.byteLength(text);
    documents++;
  }
  gzip.end();
  await once(done, 'finish');
  return { documents, textBytes: written, fileBytes: statSync(file).size };
}

/** Paragraphs of random sentences; lengths log-normal around C4's ~2 KB median (a heavy tail of long pages). */
function syntheticDocument(sentences: string[], rng: Rng): string {
  const count = Math.max(1, Math.round(Math.exp(2.4 + 0.9 * rng.normal())));
  const picked = Array.from({ length: count }, () => sentences[Math.floor(rng.nextFloat() * sentences.length)]);
  const paragraphs: string[] = [];
  for (let i = 0; i < picked.length; i += 4) paragraphs.push(picked.slice(i, i + 4).join(' '));
  return paragraphs.join('\n');
}

export interface DataBenchOptions {
  dir: string;
  /** Text per tokenizer throughput sample. */
  sampleMiB: number;
  /** Text of the large prepare whose peak memory is measured; 0 skips it. */
  bigGiB: number;
  bigTokenizer: string;
  /** tokenizer.json files (or t5) measured besides the built-ins. */
  fileTokenizers: string[];
  workers: number;
  batchSize: number;
  seqLen: number;
  log(line: string): void;
}

export interface DataBenchReport {
  machine: { cpus: number; node: string };
  /** cpuSeconds: the process's CPU time (every thread), whose rate holds up on a loaded machine where wall time does not. */
  tokenize: { tokenizer: string; workers: number; textMiB: number; seconds: number; cpuSeconds: number; textMiBPerS: number; tokensPerS: number; tokensPerCpuS: number; documentsPerS: number }[];
  batching: { mode: Batching; tokenizer: string; batchSize: number; seqLen: number; batchesPerS: number; tokensPerS: number }[];
  large?: { tokenizer: string; textGiB: number; fileGiB: number; seconds: number; textMiBPerS: number; tokens: number; peakRssMiB: number; workers: number };
}


export async function benchData(opts: DataBenchOptions): Promise<DataBenchReport> {
  const report: DataBenchReport = { machine: { cpus: availableParallelism(), node: process.version }, tokenize: [], batching: [] };
  const sample = join(opts.dir, 'sample.json.gz');
  const written = await writeSyntheticC4(sample, opts.sampleMiB * MiB);
  opts.log(`sample: ${(written.textBytes / MiB).toFixed(1)} MiB of text in ${written.documents} documents (${(written.fileBytes / MiB).toFixed(1)} MiB gzipped)`);
  for (const [i, tokenizer] of [...TOKENIZER_NAMES, ...opts.fileTokenizers].entries()) {
    const cpu = process.cpuUsage();
    const r = await prepareDataset({ sources: [sample], tokenizer, out: join(opts.dir, `sample-${i < TOKENIZER_NAMES.length ? tokenizer : `file${i}`}`), workers: opts.workers, force: true });
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const tokens = r.meta.train.tokens + r.meta.val.tokens;
    const documents = r.meta.train.documents + r.meta.val.documents;
    const row = {
      tokenizer, workers: opts.workers, textMiB: written.textBytes / MiB, seconds: r.seconds, cpuSeconds,
      textMiBPerS: written.textBytes / MiB / r.seconds, tokensPerS: tokens / r.seconds, tokensPerCpuS: tokens / cpuSeconds, documentsPerS: documents / r.seconds,
    };
    report.tokenize.push(row);
    opts.log(`tokenize ${tokenizer}: ${row.textMiBPerS.toFixed(2)} MiB/s of text, ${Math.round(row.tokensPerS).toLocaleString('en')} tokens/s, ${Math.round(row.documentsPerS).toLocaleString('en')} documents/s (${opts.workers} workers); ` +
      `${Math.round(row.tokensPerCpuS).toLocaleString('en')} tokens per CPU-second`);
  }
  for (const mode of ['packed', 'truncate'] as const) {
    const row = measureBatching(join(opts.dir, 'sample-gpt2'), mode, opts.batchSize, opts.seqLen);
    report.batching.push(row);
    opts.log(`batching ${mode} (gpt2, B=${opts.batchSize}, T=${opts.seqLen}): ${row.batchesPerS.toFixed(0)} batches/s, ${Math.round(row.tokensPerS).toLocaleString('en')} tokens/s`);
  }
  if (opts.bigGiB > 0) report.large = await measureLarge(opts);
  return report;
}

function measureBatching(dir: string, mode: Batching, batchSize: number, seqLen: number): DataBenchReport['batching'][number] {
  const { meta, train } = openDataset(dir);
  const batches = Batches.of(mode, train, batchSize, seqLen, 0, rowEnds(meta));
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < 2000) {
    batches.next();
    n++;
  }
  const seconds = (performance.now() - started) / 1000;
  train.close();
  return { mode, tokenizer: meta.tokenizer, batchSize, seqLen, batchesPerS: n / seconds, tokensPerS: (n * batchSize * seqLen) / seconds };
}

async function measureLarge(opts: DataBenchOptions): Promise<DataBenchReport['large']> {
  const file = join(opts.dir, 'large.json.gz');
  const started = performance.now();
  const written = await writeSyntheticC4(file, opts.bigGiB * 1024 * MiB, 1);
  opts.log(`large: ${(written.textBytes / 2 ** 30).toFixed(2)} GiB of text, ${written.documents} documents, ${(written.fileBytes / 2 ** 30).toFixed(2)} GiB gzipped (written in ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  const child = spawnSync(process.execPath, [
    BIN, 'data', 'prepare', file, '--tokenizer', opts.bigTokenizer, '--out', join(opts.dir, 'large'), '--workers', String(opts.workers), '--json',
  ], { encoding: 'utf8', maxBuffer: 16 * MiB });
  if (child.status !== 0) throw new Error(`the large prepare failed (exit ${child.status}): ${child.stderr}`);
  const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
  const large = {
    tokenizer: opts.bigTokenizer, textGiB: written.textBytes / 2 ** 30, fileGiB: written.fileBytes / 2 ** 30, seconds: r.seconds,
    textMiBPerS: written.textBytes / MiB / r.seconds, tokens: r.tokens, peakRssMiB: r.peakRssMiB, workers: r.workers,
  };
  opts.log(`large prepare (${large.tokenizer}, ${large.workers} workers): ${large.seconds.toFixed(0)} s, ${large.textMiBPerS.toFixed(1)} MiB/s of text, ${large.tokens.toLocaleString('en')} tokens, peak RSS ${large.peakRssMiB} MiB`);
  return large;
}
