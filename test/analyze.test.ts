import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';

function analysisCounts(dir: string): Record<string, number> {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT analysis, step, count(*) AS n FROM analyses GROUP BY analysis, step').all() as { analysis: string; step: number; n: number }[];
    return Object.fromEntries(rows.map((r) => [`${r.analysis}@${r.step}`, r.n]));
  } finally {
    db.close();
  }
}

/** Block variances at one step, per sample set. */
function variances(dir: string, step: number): Map<string, number[]> {
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    const rows = db.prepare("SELECT sample_set, value FROM analyses WHERE analysis = 'variance' AND step = ? ORDER BY sample_set, layer").all(step) as { sample_set: string; value: number }[];
    const out = new Map<string, number[]>();
    for (const r of rows) out.set(r.sample_set, [...(out.get(r.sample_set) ?? []), r.value]);
    return out;
  } finally {
    db.close();
  }
}

test('normlab analyze keys every analysis by its sample set: a different --samples computes all, an equal one nothing; the report draws one set and names it', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { model: { n_layers: 3 }, train: { steps: 10, checkpoint_every: 5, analyze_every: 5 } });
  assert.equal(runCli(['train', config, '--quiet']).code, 0);
  const during = analysisCounts(dir);
  assert.deepEqual(during, {
    'angular@5': 6, 'angular@10': 6, 'variance@5': 4, 'variance@10': 4,
    'max_abs@5': 3, 'max_abs@10': 3, 'cosine@5': 3, 'cosine@10': 3,
  }, 'L(L+1)/2 angular pairs, h_0…h_L variances, one row per block otherwise');
  const [trainingSet] = [...variances(dir, 5).keys()];
  assert.match(trainingSet!, /^validation first 2 \(packed\) seq 32 data [0-9a-f]{16}$/, 'training analyses its first validation batch (batch_size 2)');

  const run = readdirSync(join(dir, 'runs')).find((n) => n.startsWith('tiny-'))!;
  const target = join(dir, 'runs', run, 'checkpoints', 'step-00000005');
  const first = runCli(['analyze', target, '--samples', '4'], dir);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /sample set "validation first 4 \(packed\) seq 32 data [0-9a-f]{16}": computed angular, layer-drop, variance, gradnorm, massive, cosine\n/);
  assert.match(first.stdout, /also stored at this step, kept apart: "validation first 2 /);
  const after = analysisCounts(dir);
  assert.equal(after['angular@5'], 12, 'both sets kept');
  assert.equal(after['layer_drop@5'], 3);
  assert.ok(after['param_gradnorm@5']! > 20);
  const sets = variances(dir, 5);
  assert.equal(sets.size, 2);
  const fourSet = [...sets.keys()].find((k) => k !== trainingSet)!;
  assert.notDeepEqual(sets.get(fourSet), sets.get(trainingSet!), 'four sequences give other values than two');

  const again = runCli(['analyze', target, '--samples', '4'], dir);
  assert.match(again.stdout, /computed nothing/);
  assert.deepEqual(analysisCounts(dir), after, 'a second analysis adds no rows');
  const training = runCli(['analyze', target, '--samples', '2', '--what', 'angular,variance,massive,cosine'], dir);
  assert.match(training.stdout, /computed nothing; already stored for this set: angular, variance, massive, cosine/, 'the training-time set is the same key');

  const forced = runCli(['analyze', target, '--samples', '4', '--force', '--what', 'angular'], dir);
  assert.match(forced.stdout, /computed angular/);
  assert.deepEqual(analysisCounts(dir), after, '--force replaces rows, never duplicates them');
  const db = new Database(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  const recorded = db.prepare('SELECT DISTINCT backend, precision FROM analyses').all() as { backend: string; precision: string }[];
  assert.equal(recorded.length, 1, 'training and analyze ran on the same backend here');
  assert.match(`${recorded[0]!.backend} ${recorded[0]!.precision}`, /^(wasm|torch) fp32$/, 'backend and precision recorded beside the key');
  db.close();

  // The training set is at both analysed steps, the 4-sample one at step 5 only: by default the report draws the former.
  const table = (args: string[]) => {
    const r = runCli(['report', '--runs-dir', join(dir, 'runs'), '--format', 'json', ...args], dir);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { tables: { id: string; rows: Record<string, unknown>[] }[] }).tables.find((x) => x.id === 'analysis-runs')!.rows[0]!;
  };
  assert.deepEqual([table([])['sample set'], table([])['step']], [trainingSet, 10]);
  const chosen = table(['--analysis-set', fourSet]);
  assert.deepEqual([chosen['sample set'], chosen['step']], [fourSet, 5]);
  const out = join(dir, 'report');
  assert.equal(runCli(['report', '--runs-dir', join(dir, 'runs'), '--format', 'md', '--out', out, '--figures', 'svg'], dir).code, 0);
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), new RegExp(`Computed on sample set ${trainingSet!.replace(/[()]/g, '\\$&')}\\.`));
  const csv = readFileSync(join(out, 'metrics.csv'), 'utf8').split('\n').filter((l) => l.includes(',analysis,variance,5,'));
  assert.equal(csv.length, 8, 'both sets in the long CSV');
  assert.deepEqual(new Set(csv.map((l) => l.split(',').at(-1))), new Set([trainingSet, fourSet]));
});

test('normlab analyze refuses a missing checkpoint step and unknown analyses with exit code 2', () => {
  const dir = tempDir();
  assert.equal(runCli(['train', writeConfig(dir, { train: { steps: 5, checkpoint_every: 5 } }), '--quiet']).code, 0);
  const run = join(dir, 'runs', readdirSync(join(dir, 'runs')).find((n) => n.startsWith('tiny-'))!);
  const missing = runCli(['analyze', run, '--step', '3'], dir);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no checkpoint at step 3 \(checkpoints: 5\)/);
  const bogus = runCli(['analyze', run, '--what', 'angular,bogus'], dir);
  assert.equal(bogus.code, 2);
  assert.match(bogus.stderr, /unknown analysis bogus/);
});

test('normlab analyze of a sweep run writes its own run.sqlite, from any working directory, and leaves it sealed', () => {
  const dir = tempDir();
  // A relative runs_dir: the run's output.db ("runs/<id>/run.sqlite") only means something from `dir`.
  writeFileSync(join(dir, 'base.yaml'), stringify({
    name: 'base', model: { preset: 'nano', n_layers: 2 },
    train: { steps: 5, batch_size: 2, seq_len: 16, warmup_steps: 1, eval_every: 5, eval_batches: 2, diag_every: 5, checkpoint_every: 5 },
    data: { corpus: 'brown', tokenizer: 'byte' }, output: { runs_dir: 'runs' },
  }));
  writeFileSync(join(dir, 'sweep.yaml'), stringify({ name: 'study', base: 'base.yaml', method: 'grid', parameters: { 'train.seed': { values: [0] } } }));
  const swept = runCli(['sweep', 'sweep.yaml'], dir);
  assert.equal(swept.code, 0, swept.stderr + swept.stdout);
  const id = readdirSync(join(dir, 'runs')).find((n) => n.startsWith('study-'))!;
  const own = join(dir, 'runs', id, 'run.sqlite');

  const elsewhere = tempDir();
  const r = runCli(['analyze', join(dir, 'runs', id), '--samples', '2', '--what', 'angular,layer-drop'], elsewhere);
  assert.equal(r.code, 0, r.stderr);
  const db = new Database(own, { readonly: true });
  try {
    const rows = db.prepare('SELECT analysis, count(*) AS n FROM analyses WHERE run_id = ? GROUP BY analysis ORDER BY analysis').all(id);
    assert.deepEqual(rows, [{ analysis: 'angular', n: 3 }, { analysis: 'layer_drop', n: 2 }, { analysis: 'layer_drop_ppl', n: 2 }, { analysis: 'loss', n: 1 }]);
  } finally {
    db.close();
  }
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing written in the working directory');
  const header = readFileSync(own).subarray(18, 20);
  assert.deepEqual([...header], [1, 1], 'still sealed: rollback journal, not WAL');
  assert.equal(existsSync(`${own}-wal`), false);
});
