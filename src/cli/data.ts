// normlab data prepare <source…> --tokenizer … --out <dir> | normlab data info <dir>
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { type DatasetMeta, readMeta } from '../data/dataset.ts';
import { DEFAULTS, type PrepareProgress, type PrepareResult, prepareDataset } from '../data/prepare.ts';
import { NAMED_TOKENIZERS } from '../data/hf.ts';
import { TOKENIZER_NAMES } from '../data/tokenizers.ts';
import { UsageError } from './common.ts';
import type { SetExitCode } from './main.ts';

interface PrepareFlags {
  tokenizer: string;
  valSource: string[];
  eosToken?: string;
  out: string;
  textField: string;
  valFraction: string;
  splitSeed: string;
  skipBadLines?: boolean;
  workers?: string;
  force?: boolean;
  quiet?: boolean;
  json?: boolean;
}

const MiB = 2 ** 20;

export function registerData(program: Command, setExitCode: SetExitCode): void {
  const data = program.command('data').description('prepare and inspect tokenized datasets');
  data
    .command('prepare')
    .description('tokenize sources into shards once; train with data.source: <dir>')
    .argument('<source...>', 'a corpus (brown), text files, JSON-lines files (.jsonl, .json.gz as C4 ships them), folders or globs')
    .requiredOption('--tokenizer <name|file>', `${[...TOKENIZER_NAMES, ...Object.keys(NAMED_TOKENIZERS)].join(', ')}, or a Hugging Face tokenizer.json (or a folder holding one)`)
    .option('--eos-token <token>', 'end-of-document token of a tokenizer.json whose files do not name one')
    .requiredOption('--out <dir>', 'dataset folder to write (replaced when its inputs changed)')
    .option('--val-source <spec>', 'validation files or globs (repeatable), instead of a hash split; exact copies of training documents are dropped from them', (v: string, all: string[]) => [...all, v], [])
    .option('--text-field <name>', 'the JSON field holding the text', DEFAULTS.textField)
    .option('--val-fraction <x>', 'fraction of documents held out for validation', String(DEFAULTS.valFraction))
    .option('--split-seed <n>', 'seed of the train/val split by document', String(DEFAULTS.splitSeed))
    .option('--skip-bad-lines', 'count and skip lines that do not parse or lack the text field, instead of stopping')
    .option('--workers <n>', 'tokenizer threads (0: this thread; default: by source size and cores)')
    .option('--force', 'rebuild even when the dataset is up to date')
    .option('--quiet', 'print nothing but errors')
    .option('--json', 'print the outcome as one JSON object')
    .action(async (sources: string[], flags: PrepareFlags) => {
      setExitCode(await prepare(sources, flags));
    });
  data
    .command('info')
    .description('what a prepared dataset holds')
    .argument('<dir>', 'dataset folder')
    .action((dir: string) => console.log(describe(dir, readMeta(dir))));
}

async function prepare(sources: string[], flags: PrepareFlags): Promise<number> {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = flags.quiet || flags.json ? undefined : progressPrinter(Boolean(process.stderr.isTTY));
  try {
    const result = await prepareDataset({
      sources, ...(flags.valSource.length > 0 && { valSources: flags.valSource }), tokenizer: flags.tokenizer, eosToken: flags.eosToken, out: flags.out, textField: flags.textField,
      valFraction: number('--val-fraction', flags.valFraction), splitSeed: integer('--split-seed', flags.splitSeed),
      skipBadLines: flags.skipBadLines, force: flags.force,
      workers: flags.workers === undefined ? undefined : integer('--workers', flags.workers),
      onProgress: progress?.update, signal: abort.signal,
    });
    progress?.stop(result);
    report(result, flags);
    return 0;
  } catch (e) {
    progress?.stop();
    if (!abort.signal.aborted) throw e;
    if (!flags.quiet) console.error(`normlab: prepare interrupted; nothing was written to ${flags.out}`);
    return 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function report(r: PrepareResult, flags: PrepareFlags): void {
  const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  const { train, val } = r.meta;
  if (flags.json) {
    console.log(JSON.stringify({
      dir: r.dir, reused: r.reused, seconds: r.seconds, workers: r.workers, peakRssMiB,
      sourceBytes: r.meta.sources.reduce((n, s) => n + s.bytes, 0), textBytes: r.meta.textBytes,
      documents: train.documents + val.documents, tokens: train.tokens + val.tokens, skipped: r.meta.skipped,
      ...(r.meta.split.duplicatesDropped !== undefined && { duplicatesDropped: r.meta.split.duplicatesDropped }),
    }));
    return;
  }
  if (flags.quiet) return;
  if (r.reused) {
    console.log(`${r.dir} is up to date (same sources, tokenizer and split); --force rebuilds it`);
    return;
  }
  const bytes = r.meta.sources.reduce((n, s) => n + s.bytes, 0);
  const text = r.meta.textBytes;
  const tokens = train.tokens + val.tokens;
  console.log(describe(r.dir, r.meta));
  // Throughput in text, not in source bytes: gzip would make it look 4× slower than it is.
  console.log(`${(text / MiB).toFixed(1)} MiB of text (${(bytes / MiB).toFixed(1)} MiB of source files) in ${r.seconds.toFixed(1)} s ` +
    `with ${r.workers || 'no'} worker threads: ${(text / MiB / r.seconds).toFixed(1)} MiB/s of text, ` +
    `${Math.round(tokens / r.seconds).toLocaleString('en')} tokens/s; peak RSS ${peakRssMiB} MiB`);
  if (r.meta.skipped.badLines > 0) {
    console.error(`normlab: warning: skipped ${r.meta.skipped.badLines} bad lines, e.g.\n  ${r.badExamples.join('\n  ')}`);
  }
}

function describe(dir: string, meta: DatasetMeta): string {
  const { train, val } = meta;
  const n = (x: number) => x.toLocaleString('en');
  return [
    `${dir}: ${meta.tokenizer} tokens (vocab ${meta.vocabSize}, end id ${meta.eot}${meta.appendsEnd ? ' added by its post-processor' : ''}, ` +
    `pad id ${meta.pad}, largest id ${meta.maxId}${meta.maxToken === undefined ? '' : ` ${JSON.stringify(meta.maxToken)}`}, ${meta.dtype})`,
    ...(meta.tokenizerSha256 ? [`  tokenizer.json sha256 ${meta.tokenizerSha256}`] : []),
    `  train ${n(train.documents)} documents, ${n(train.tokens)} tokens in ${train.shards.length} shards`,
    meta.split.valSources
      ? `  val   ${n(val.documents)} documents, ${n(val.tokens)} tokens from ${meta.split.valSources.length} validation source${meta.split.valSources.length === 1 ? '' : 's'}; ` +
        `${n(meta.split.duplicatesDropped ?? 0)} exact copies of training documents dropped`
      : `  val   ${n(val.documents)} documents, ${n(val.tokens)} tokens (val_fraction ${meta.split.valFraction}, split_seed ${meta.split.seed})` +
        (meta.split.duplicatesDropped === undefined ? '' : `; ${n(meta.split.duplicatesDropped)} exact copies of training documents dropped`),
    `  from ${meta.sources.length} source${meta.sources.length === 1 ? '' : 's'}: ${meta.sources.slice(0, 3).map((s) => s.source).join(', ')}${meta.sources.length > 3 ? ', …' : ''}`,
    ...(meta.skipped.badLines + meta.skipped.emptyDocuments > 0
      ? [`  skipped ${n(meta.skipped.badLines)} bad lines and ${n(meta.skipped.emptyDocuments)} empty documents`]
      : []),
  ].join('\n');
}

/**
 * A live bar on a TTY (bytes of sources read), a line per tenth otherwise; both
 * end on the finished count (the sources are all read while the last chunks
 * are still being tokenized).
 */
function progressPrinter(tty: boolean): { update(p: PrepareProgress): void; stop(done?: PrepareResult): void } {
  const rates = (p: PrepareProgress) => ({
    docs: p.documents.toLocaleString('en'),
    dps: Math.round(p.documents / Math.max(p.seconds, 1e-3)).toLocaleString('en'),
    tps: Math.round(p.tokens / Math.max(p.seconds, 1e-3)).toLocaleString('en'),
  });
  let last: PrepareProgress | undefined;
  const final = (done: PrepareResult): PrepareProgress => ({
    ...last!, documents: done.meta.train.documents + done.meta.val.documents, tokens: done.meta.train.tokens + done.meta.val.tokens, seconds: done.seconds,
  });
  if (!tty) {
    let shown = 0;
    const line = (percent: number, p: PrepareProgress) => {
      const r = rates(p);
      console.log(`${percent}%  ${r.docs} documents  ${r.dps} documents/s  ${r.tps} tokens/s`);
    };
    return {
      update: (p) => {
        last = p;
        const tenth = Math.floor((10 * p.sourceBytes) / Math.max(p.totalSourceBytes, 1));
        if (tenth <= shown || tenth >= 10) return;
        shown = tenth;
        line(tenth * 10, p);
      },
      stop: (done) => {
        if (done && last && !done.reused) line(100, final(done));
      },
    };
  }
  const bar = new cliProgress.SingleBar({
    format: '{percentage}% |{bar}| {docs} docs | {dps} docs/s | {tps} tok/s | ETA {eta_formatted}',
    hideCursor: true, stream: process.stderr, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update: (p) => {
      last = p;
      if (!started) bar.start(p.totalSourceBytes, 0, rates(p));
      started = true;
      bar.update(Math.min(p.sourceBytes, p.totalSourceBytes), rates(p));
    },
    stop: (done) => {
      if (done && last && started) bar.update(last.totalSourceBytes, rates(final(done)));
      bar.stop();
    },
  };
}

function number(flag: string, text: string): number {
  const x = Number(text);
  if (text.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${flag}: expected a number, got ${JSON.stringify(text)}`);
  return x;
}

function integer(flag: string, text: string): number {
  const x = number(flag, text);
  if (!Number.isInteger(x) || x < 0) throw new UsageError(`${flag}: expected an integer ≥ 0, got ${JSON.stringify(text)}`);
  return x;
}
