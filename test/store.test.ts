import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { resolveRunConfig } from '../src/config/load.ts';
import { MetricBuffer, RunStore, StoreError, type NewRun } from '../src/store/store.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'normlab-store-'));
let files = 0;
const config = resolveRunConfig({ model: { preset: 'nano' } }, 'test');

function freshStore(): RunStore {
  return RunStore.open(path.join(dir, `db${files++}`, 'nested', 'normlab.sqlite'));
}

function newRun(id: string, extra: Partial<NewRun> = {}): NewRun {
  return {
    id, name: id, config, configHash: 'abc', seed: 0, backend: 'cpu', totalSteps: 10,
    versions: { node: process.version }, runDir: `runs/${id}`, ...extra,
  };
}

test('open creates the folders and the schema, and reopening keeps the data', () => {
  const store = freshStore();
  assert.ok(existsSync(store.file));
  store.createRun(newRun('r1'));
  store.close();
  const again = RunStore.open(store.file);
  assert.equal(again.getRun('r1')?.name, 'r1');
  again.close();
});

test('the store file is in WAL mode', () => {
  const store = freshStore();
  store.close();
  const raw = new Database(store.file);
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  raw.close();
});

test('a run round-trips with its config and versions, starting as running at step 0', () => {
  const store = freshStore();
  store.createRun(newRun('r1', { sweep: 's1', startedAt: '2025-01-01T00:00:00.000Z' }));
  const run = store.getRun('r1')!;
  assert.deepEqual(run.config, config);
  assert.deepEqual(run.versions, { node: process.version });
  assert.equal(run.status, 'running');
  assert.equal(run.step, 0);
  assert.equal(run.sweep, 's1');
  assert.equal(run.startedAt, '2025-01-01T00:00:00.000Z');
  assert.equal(run.endedAt, null);
  assert.equal(store.getRun('absent'), undefined);
  assert.throws(() => store.createRun(newRun('r1')), /UNIQUE/);
  store.close();
});

test('writing the same step twice leaves one row holding the latest value', () => {
  const store = freshStore();
  store.createRun(newRun('r1'));
  const batch = (v: number) => ({
    scalars: [{ runId: 'r1', step: 3, name: 'loss', value: v }],
    layers: [{ runId: 'r1', step: 3, name: 'grad_norm', layer: 0, value: v }],
    params: [{ runId: 'r1', step: 3, name: 'grad_norm', param: 'lm_head.weight', value: v }],
  });
  store.writeMetrics(batch(1));
  store.writeMetrics(batch(2));
  assert.deepEqual(store.countRows('r1'), { scalars: 1, layers: 1, params: 1 });
  assert.deepEqual(store.scalarSeries('r1', 'loss'), [{ step: 3, value: 2 }]);
  assert.deepEqual(store.layerSeries('r1', 'grad_norm'), [{ step: 3, layer: 0, value: 2 }]);
  assert.deepEqual(store.paramSeries('r1', 'grad_norm'), [{ step: 3, param: 'lm_head.weight', value: 2 }]);
  store.close();
});

test('non-finite values are stored: NaN reads back as NaN, infinities as themselves', () => {
  const store = freshStore();
  store.writeMetrics({ scalars: [
    { runId: 'r1', step: 1, name: 'loss', value: NaN },
    { runId: 'r1', step: 2, name: 'loss', value: Infinity },
    { runId: 'r1', step: 3, name: 'loss', value: -Infinity },
  ] });
  assert.deepEqual(store.scalarSeries('r1', 'loss').map((r) => r.value), [NaN, Infinity, -Infinity]);
  store.close();
});

test('series come back in step (then layer) order whatever the write order', () => {
  const store = freshStore();
  store.writeMetrics({ layers: [2, 1].flatMap((step) => [1, 0].map((layer) => ({ runId: 'r', step, name: 'v', layer, value: step * 10 + layer }))) });
  assert.deepEqual(store.layerSeries('r', 'v').map((r) => r.value), [10, 11, 20, 21]);
  store.close();
});

test('deleteMetricsAfter drops later steps of that run only, in every table', () => {
  const store = freshStore();
  for (const runId of ['a', 'b']) {
    for (let step = 1; step <= 5; step++) {
      store.writeMetrics({
        scalars: [{ runId, step, name: 'loss', value: step }],
        layers: [0, 1].map((layer) => ({ runId, step, name: 'var', layer, value: step })),
        params: [{ runId, step, name: 'norm', param: 'w', value: step }],
      });
    }
  }
  store.deleteMetricsAfter('a', 3);
  assert.deepEqual(store.countRows('a'), { scalars: 3, layers: 6, params: 3 });
  assert.deepEqual(store.scalarSeries('a', 'loss').map((r) => r.step), [1, 2, 3]);
  assert.deepEqual(store.countRows('b'), { scalars: 5, layers: 10, params: 5 });
  store.close();
});

test('a running run can end; an ended run can only resume, which clears how it ended', () => {
  const store = freshStore();
  store.createRun(newRun('r1'));
  store.setStatus('r1', 'diverged', { divergedStep: 7, error: 'loss is NaN' });
  let run = store.getRun('r1')!;
  assert.equal(run.status, 'diverged');
  assert.equal(run.divergedStep, 7);
  assert.equal(run.error, 'loss is NaN');
  assert.ok(run.endedAt && !Number.isNaN(Date.parse(run.endedAt)));
  assert.throws(() => store.setStatus('r1', 'finished'), StoreError);
  store.setStatus('r1', 'running');
  run = store.getRun('r1')!;
  assert.deepEqual([run.status, run.endedAt, run.error, run.divergedStep], ['running', null, null, null]);
  store.setStatus('r1', 'finished', { endedAt: '2025-01-02T00:00:00.000Z' });
  assert.equal(store.getRun('r1')!.endedAt, '2025-01-02T00:00:00.000Z');
  assert.throws(() => store.setStatus('absent', 'killed'), StoreError);
  store.close();
});

test('heartbeat records the step and the time', () => {
  const store = freshStore();
  store.createRun(newRun('r1'));
  store.heartbeat('r1', 4);
  const run = store.getRun('r1')!;
  assert.equal(run.step, 4);
  assert.ok(run.heartbeatAt && Date.now() - Date.parse(run.heartbeatAt) < 60_000);
  assert.throws(() => store.heartbeat('absent', 1), StoreError);
  store.close();
});

test('listRuns filters by status and sweep', () => {
  const store = freshStore();
  store.createRun(newRun('a', { sweep: 's' }));
  store.createRun(newRun('b', { sweep: 's' }));
  store.createRun(newRun('c'));
  store.setStatus('b', 'failed', { error: 'boom' });
  assert.deepEqual(store.listRuns().map((r) => r.id), ['a', 'b', 'c']);
  assert.deepEqual(store.listRuns({ sweep: 's' }).map((r) => r.id), ['a', 'b']);
  assert.deepEqual(store.listRuns({ status: 'running' }).map((r) => r.id), ['a', 'c']);
  assert.deepEqual(store.listRuns({ status: 'failed', sweep: 's' }).map((r) => r.id), ['b']);
  store.close();
});

test('MetricBuffer writes nothing until it holds flushRows rows, then everything on flush', () => {
  const store = freshStore();
  const buffer = new MetricBuffer(store, 'r1', 4);
  buffer.scalar(1, 'loss', 1);
  buffer.layer(1, 'var', 0, 1);
  buffer.param(1, 'norm', 'w', 1);
  assert.equal(buffer.pending, 3);
  assert.deepEqual(store.countRows('r1'), { scalars: 0, layers: 0, params: 0 });
  buffer.scalar(2, 'loss', 2);
  assert.equal(buffer.pending, 0);
  assert.deepEqual(store.countRows('r1'), { scalars: 2, layers: 1, params: 1 });
  buffer.scalar(3, 'loss', 3);
  buffer.flush();
  assert.deepEqual(store.scalarSeries('r1', 'loss').map((r) => r.step), [1, 2, 3]);
  store.close();
});

test('two stores on one file can both write', () => {
  const first = freshStore();
  const second = RunStore.open(first.file);
  first.createRun(newRun('a'));
  second.createRun(newRun('b'));
  first.writeMetrics({ scalars: [{ runId: 'a', step: 1, name: 'loss', value: 1 }] });
  second.writeMetrics({ scalars: [{ runId: 'b', step: 1, name: 'loss', value: 1 }] });
  assert.deepEqual(first.listRuns().map((r) => r.id), ['a', 'b']);
  assert.equal(second.countRows('a').scalars, 1);
  first.close();
  second.close();
});

test('a reader opens a store whose writer was killed mid-transaction, and sees what was committed', async () => {
  const store = freshStore();
  store.createRun(newRun('r1'));
  store.heartbeat('r1', 7);
  store.seal();
  store.close();
  // The writer dies with a transaction open: a hot rollback journal stays beside the file.
  const killer = path.join(dir, 'killer.cjs');
  writeFileSync(killer, `
    const Database = require(${JSON.stringify(fileURLToPath(import.meta.resolve('better-sqlite3')))});
    const db = new Database(process.argv[2]);
    db.pragma('cache_size = 1'); // changed pages spill into the file before the commit
    db.exec("BEGIN; UPDATE runs SET step = 999, status = 'failed'; CREATE TABLE filler (x);");
    db.exec('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO filler SELECT randomblob(4000) FROM n;');
    process.kill(process.pid, 'SIGKILL');
  `);
  await promisify(execFile)(process.execPath, [killer, store.file]).catch(() => undefined);
  assert.ok(existsSync(`${store.file}-journal`), 'the killed writer left its journal');
  const reader = RunStore.open(store.file, { readonly: true });
  const run = reader.getRun('r1');
  reader.close();
  assert.deepEqual({ status: run?.status, step: run?.step }, { status: 'running', step: 7 });
});

test('two processes writing one file at once both finish (no SQLITE_BUSY)', async () => {
  const file = path.join(dir, `db${files++}`, 'shared.sqlite');
  const storeUrl = new URL('../src/store/store.ts', import.meta.url).href;
  const writer = path.join(dir, 'writer.ts');
  writeFileSync(writer, `
    import { RunStore } from ${JSON.stringify(storeUrl)};
    const [file, runId] = process.argv.slice(2);
    const store = RunStore.open(file);
    for (let step = 1; step <= 300; step++) {
      store.writeMetrics({ layers: Array.from({ length: 20 }, (_, layer) => ({ runId, step, name: 'v', layer, value: step })) });
    }
    store.close();
  `);
  const run = promisify(execFile);
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  await Promise.all(['a', 'b', 'c'].map((id) => run(process.execPath, ['--import', 'tsx', writer, file, id], { cwd })));
  const store = RunStore.open(file);
  for (const id of ['a', 'b', 'c']) assert.equal(store.countRows(id).layers, 300 * 20);
  store.close();
});

test('a store in the text layout (today\'s files) keeps it when a run writes it again, and reads the same through both layouts', () => {
  const file = path.join(dir, `db${files++}`, 'normlab.sqlite');
  const rows = (s: RunStore) => ({
    loss: s.scalarSeries('r', 'train/loss'), layers: s.layerSeries('r', 'grad_norm'), params: s.paramSeries('r', 'grad_norm'),
    last: s.lastScalar('r', 'train/loss'), means: [...s.layerMeans('r', 'grad_norm')], at: [...s.layerAt('r', 'grad_norm', 2)],
    ratio: s.lowestRatio('r', 'grad_norm', 1, 2), buckets: s.layerBuckets('r', 'grad_norm', { x0: 1, width: 2, count: 2 }),
  });
  const write = (s: RunStore, from: number) => s.writeMetrics({
    scalars: [from, from + 1].map((step) => ({ runId: 'r', step, name: 'train/loss', value: 5 - step })),
    layers: [from, from + 1].flatMap((step) => [1, 2].map((layer) => ({ runId: 'r', step, name: 'grad_norm', layer, value: step * layer + (layer === 1 ? step % 2 : 0) }))),
    params: [from, from + 1].map((step) => ({ runId: 'r', step, name: 'grad_norm', param: 'model.norm.weight', value: step / 10 })),
  });
  const old = RunStore.open(file, { layout: 'text' });
  old.createRun(newRun('r'));
  write(old, 1);
  old.close();
  const resumed = RunStore.open(file);
  assert.equal(resumed.layout, 'text', 'a resumed run writes the layout it started in');
  write(resumed, 3);
  const before = rows(resumed);
  resumed.setStatus('r', 'finished');
  resumed.close();
  assert.deepEqual(RunStore.migrateFile(file), [
    'version 1 → 2: text metric tables → names, series, points and views',
    'version 2 → 3: analyses keyed by sample set (earlier rows: sample set unknown)',
  ]);
  const migrated = RunStore.open(file, { readonly: true });
  assert.equal(migrated.layout, 'compact');
  assert.deepEqual(rows(migrated), before);
  assert.equal(before.loss.length, 4);
  assert.deepEqual(before.ratio, { step: 2, value: 0.5 });
  migrated.close();
  // The views keep version 1's columns for users' own SQL.
  const db = new Database(file, { readonly: true });
  assert.deepEqual(Object.keys(db.prepare('SELECT * FROM param_metrics').get() as object), ['run_id', 'step', 'name', 'param', 'value']);
  assert.deepEqual(db.prepare("SELECT step, layer, value FROM layer_metrics WHERE run_id = 'r' AND step = 4 ORDER BY layer").all(), [{ step: 4, layer: 1, value: 4 }, { step: 4, layer: 2, value: 8 }]);
  db.close();
});

test('store migrate refuses a store a live run is writing, and leaves it as it was', () => {
  const file = path.join(dir, `db${files++}`, 'normlab.sqlite');
  const s = RunStore.open(file, { layout: 'text' });
  s.createRun(newRun('live'));
  s.heartbeat('live', 3);
  s.close();
  assert.throws(() => RunStore.migrateFile(file), (e: Error) => e instanceof StoreError && /run live is writing this store/.test(e.message));
  assert.equal(RunStore.open(file, { readonly: true }).layout, 'text');
  // Its heartbeat 11 minutes old: the worker is gone, and the store may be migrated.
  assert.equal(RunStore.migrateFile(file, Date.now() + 11 * 60_000).length, 2);
});
