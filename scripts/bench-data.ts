// Data benchmark: node --import tsx scripts/bench-data.ts [--sample-mib 16] [--big-gib 1]
//   [--big-tokenizer byte] [--tokenizer-file tokenizer.json] [--workers N] [--dir D] [--keep] [--json out.json]
// Generates synthetic C4 in a temp folder (removed afterwards unless --keep).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { benchData } from '../src/data/bench.ts';

const { values } = parseArgs({
  options: {
    'sample-mib': { type: 'string', default: '16' },
    'big-gib': { type: 'string', default: '1' },
    'big-tokenizer': { type: 'string', default: 'byte' },
    /** Also measure this Hugging Face tokenizer.json (or t5). */
    'tokenizer-file': { type: 'string', multiple: true, default: [] },
    workers: { type: 'string', default: String(availableParallelism()) }, // every tokenizer alike, for comparable rates
    'batch-size': { type: 'string', default: '64' },
    'seq-len': { type: 'string', default: '256' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'normlab-bench-data-'));
try {
  const report = await benchData({
    dir,
    sampleMiB: Number(values['sample-mib']),
    bigGiB: Number(values['big-gib']),
    bigTokenizer: values['big-tokenizer']!,
    fileTokenizers: values['tokenizer-file']!,
    workers: Number(values.workers),
    batchSize: Number(values['batch-size']),
    seqLen: Number(values['seq-len']),
    log: (line) => console.log(line),
  });
  if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
} finally {
  if (!values.keep && !values.dir) rmSync(dir, { recursive: true, force: true });
}
