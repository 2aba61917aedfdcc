// TensorBoard event files read back by a reader written here from the formats'
// specifications — its own CRC-32C and protobuf wire decoder, with TensorFlow's
// field numbers — and compared with the store.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveRunConfig } from '../src/config/load.ts';
import { RunStore } from '../src/store/store.ts';
import { LiveEvents } from '../src/tensorboard/runs.ts';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';
import { DIAG_STEPS, gradAt, lossAt, STUDY_LAYERS, STUDY_RUNS, STUDY_STEPS, VAL_STEPS, valLossAt, varAt, writeStudy } from './helpers/study.ts';

// ---- an independent reader ----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1; // CRC-32C (Castagnoli), reflected
  return c >>> 0;
});

function crc32c(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const masked = (b: Uint8Array) => {
  const c = crc32c(b);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
};

/** TFRecords of a file, every length and data CRC checked. */
function records(file: string): Buffer[] {
  const buf = readFileSync(file);
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const len = Number(buf.readBigUInt64LE(at));
    assert.equal(buf.readUInt32LE(at + 8), masked(buf.subarray(at, at + 8)), `${file}: length CRC of record ${out.length}`);
    const data = buf.subarray(at + 12, at + 12 + len);
    assert.equal(buf.readUInt32LE(at + 12 + len), masked(data), `${file}: data CRC of record ${out.length}`);
    out.push(data);
    at += 16 + len;
  }
  assert.equal(at, buf.length, `${file}: ends on a record boundary`);
  return out;
}

type Field = { n: number; wire: number; v: bigint | Buffer };

/** Protobuf wire format: (field number, wire type, value) triples. */
function fields(b: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = () => {
    let r = 0n, s = 0n;
    for (;;) { const x = b[i++]!; r |= BigInt(x & 0x7f) << s; s += 7n; if (!(x & 0x80)) return r; }
  };
  while (i < b.length) {
    const key = Number(varint());
    const wire = key & 7, n = key >>> 3;
    if (wire === 0) out.push({ n, wire, v: varint() });
    else if (wire === 1) { out.push({ n, wire, v: b.subarray(i, i + 8) }); i += 8; }
    else if (wire === 5) { out.push({ n, wire, v: b.subarray(i, i + 4) }); i += 4; }
    else if (wire === 2) { const len = Number(varint()); out.push({ n, wire, v: b.subarray(i, i + len) }); i += len; }
    else throw new Error(`wire type ${wire}`);
  }
  return out;
}
const one = (fs: Field[], n: number) => fs.find((f) => f.n === n)?.v;
const str = (v: unknown) => (v as Buffer).toString('utf8');

interface Decoded {
  wallTime: number;
  step: number;
  fileVersion?: string;
  sessionStart?: number;
  scalars: { tag: string; value: number }[];
  plugin: { tag: string; plugin: string; content: Buffer }[];
}

/** tensorflow.Event: wall_time 1 (double), step 2, file_version 3, summary 5, session_log 7; Summary.Value: tag 1, simple_value 2 (float), metadata 9. */
function decodeEvent(b: Buffer): Decoded {
  const f = fields(b);
  const e: Decoded = { wallTime: (one(f, 1) as Buffer).readDoubleLE(0), step: Number(one(f, 2) ?? 0n), scalars: [], plugin: [] };
  if (one(f, 3)) e.fileVersion = str(one(f, 3));
  const log = one(f, 7);
  if (log) e.sessionStart = Number(one(fields(log as Buffer), 1));
  const summary = one(f, 5);
  for (const v of summary ? fields(summary as Buffer).filter((x) => x.n === 1) : []) {
    const vf = fields(v.v as Buffer);
    const tag = str(one(vf, 1));
    const simple = one(vf, 2);
    if (simple) e.scalars.push({ tag, value: (simple as Buffer).readFloatLE(0) });
    const meta = one(vf, 9);
    if (meta) {
      const pd = fields(one(fields(meta as Buffer), 1) as Buffer);
      e.plugin.push({ tag, plugin: str(one(pd, 1)), content: one(pd, 2) as Buffer });
    }
  }
  return e;
}

/** google.protobuf.Value: number 2 (double), string 3, bool 4. */
function structValue(b: Buffer): string | number | boolean {
  const f = fields(b)[0]!;
  return f.n === 2 ? (f.v as Buffer).readDoubleLE(0) : f.n === 3 ? str(f.v) : f.v === 1n;
}

/** HParamsPluginData: experiment 2, session_start_info 3 (hparams map 1), session_end_info 4 (status 1). */
function decodeHParams(content: Buffer): { start?: Record<string, unknown>; endStatus?: number; experiment?: { hparams: Map<string, unknown[]>; metrics: string[] } } {
  const f = fields(content);
  const start = one(f, 3), end = one(f, 4), exp = one(f, 2);
  if (start) {
    const hp = Object.fromEntries(fields(start as Buffer).filter((x) => x.n === 1).map((entry) => {
      const ef = fields(entry.v as Buffer);
      return [str(one(ef, 1)), structValue(one(ef, 2) as Buffer)];
    }));
    return { start: hp };
  }
  if (end) return { endStatus: Number(one(fields(end as Buffer), 1) ?? 0n) };
  const ef = fields(exp as Buffer);
  const hparams = new Map(ef.filter((x) => x.n === 4).map((h) => {
    const hf = fields(h.v as Buffer);
    return [str(one(hf, 1)), fields(one(hf, 5) as Buffer).map((v) => structValue(v.v as Buffer))];
  }));
  const metrics = ef.filter((x) => x.n === 5).map((m) => str(one(fields(one(fields(m.v as Buffer), 1) as Buffer), 2)));
  return { experiment: { hparams, metrics } };
}

function eventsIn(dir: string): Decoded[] {
  const files = readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.')).sort();
  assert.ok(files.length > 0, `event files in ${dir}`);
  return files.flatMap((f) => records(join(dir, f)).map(decodeEvent));
}

/** tag → step → value (the last one written). */
function scalarsOf(events: Decoded[]): Map<string, Map<number, number>> {
  const m = new Map<string, Map<number, number>>();
  for (const e of events) for (const s of e.scalars) (m.get(s.tag) ?? m.set(s.tag, new Map()).get(s.tag)!).set(e.step, s.value);
  return m;
}

const close = (a: number, b: number) => (Number.isNaN(b) ? Number.isNaN(a) : Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)));

// ---- the tests ----

test('export tensorboard --sweep: every scalar and per-block series, hparams and session status, every CRC valid', () => {
  const runsDir = writeStudy();
  const out = join(tempDir('normlab-tb-'), 'tb');
  const r = runCli(['export', 'tensorboard', '--sweep', 's', '--runs-dir', runsDir, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  for (const run of STUDY_RUNS) {
    const events = eventsIn(join(out, run.id));
    assert.equal(events[0]!.fileVersion, 'brain.Event:2');
    const scalars = scalarsOf(events);
    const steps = Array.from({ length: STUDY_STEPS }, (_, i) => i + 1);
    const expect = (tag: string, xs: number[], f: (s: number) => number) => {
      const got = scalars.get(tag);
      assert.ok(got, `${run.id}: tag ${tag}`);
      assert.deepEqual([...got.keys()].sort((a, b) => a - b), xs, `${run.id} ${tag}: steps`);
      for (const s of xs) assert.ok(close(got.get(s)!, Math.fround(f(s))), `${run.id} ${tag} step ${s}: ${got.get(s)} vs ${f(s)}`);
    };
    expect('train/loss', steps, (s) => lossAt(run, s));
    expect('train/lr', steps, (s) => 1e-3 * s / STUDY_STEPS);
    expect('train/grad_norm', steps, (s) => 1 + s / 10);
    expect('train/tokens_per_s', steps, (s) => 1000 + s);
    expect('val/loss', VAL_STEPS, (s) => valLossAt(run, s));
    expect('val/ppl', VAL_STEPS, (s) => Math.exp(valLossAt(run, s)));
    for (let b = 1; b <= STUDY_LAYERS; b++) {
      expect(`layers/grad_norm/0${b}`, DIAG_STEPS, (s) => gradAt(run, s, b));
      expect(`layers/output_variance/0${b}`, DIAG_STEPS, (s) => varAt(run, s, b));
    }
    const hp = events.flatMap((e) => e.plugin).filter((p) => p.plugin === 'hparams').map((p) => ({ tag: p.tag, ...decodeHParams(p.content) }));
    const start = hp.find((p) => p.tag === '_hparams_/session_start_info')!.start!;
    assert.equal(start['model.norm'], run.norm);
    assert.equal(start['train.seed'], run.seed);
    assert.equal(start['model.n_layers'], STUDY_LAYERS);
    assert.equal(hp.find((p) => p.tag === '_hparams_/session_end_info')!.endStatus, run.diverged ? 2 : 1);
  }
  const experiment = eventsIn(out).flatMap((e) => e.plugin).map((p) => decodeHParams(p.content).experiment).find(Boolean)!;
  assert.deepEqual((experiment.hparams.get('model.norm') as string[]).sort(), ['mix', 'post', 'pre']);
  assert.deepEqual(experiment.hparams.get('train.seed'), [0, 1]);
  assert.deepEqual(experiment.metrics, ['val/loss', 'val/ppl', 'train/loss']);
  // Exporting again replaces the folders rather than adding a second copy.
  assert.equal(runCli(['export', 'tensorboard', '--sweep', 's', '--runs-dir', runsDir, '--out', out]).code, 0);
  assert.equal(readdirSync(join(out, STUDY_RUNS[0]!.id)).length, 1);
  assert.equal(readdirSync(out).filter((f) => f.startsWith('events.')).length, 1);
  tensorboardCheck(out);
});

test('export tensorboard: an unknown run is refused (exit 2) and nothing is written', () => {
  const runsDir = writeStudy();
  const out = join(tempDir('normlab-tb-'), 'tb');
  const r = runCli(['export', 'tensorboard', 's-pre-0', 'nope', '--runs-dir', runsDir, '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no run nope/);
  assert.ok(!existsSync(out));
});

test('output.tensorboard: events written while training hold what the store holds', () => {
  const dir = tempDir('normlab-tb-live-');
  const config = writeConfig(dir, { train: { steps: 6, eval_every: 3, diag_every: 2, checkpoint_every: 0 } });
  const r = runCli(['train', config, '--backend', 'wasm', '--set', 'output.tensorboard=true']);
  assert.equal(r.code, 0, r.stderr);
  const runDir = readdirSync(join(dir, 'runs'), { withFileTypes: true }).find((e) => e.isDirectory() && e.name.startsWith('tiny-'))!;
  const events = eventsIn(join(dir, 'runs', runDir.name));
  const scalars = scalarsOf(events);
  const store = RunStore.open(join(dir, 'runs', 'normlab.sqlite'), { readonly: true });
  try {
    const id = runDir.name;
    for (const name of ['train/loss', 'train/lr', 'train/grad_norm', 'val/loss', 'val/ppl']) {
      const stored = store.scalarSeries(id, name);
      assert.ok(stored.length > 0, name);
      for (const p of stored) assert.ok(close(scalars.get(name)!.get(p.step)!, Math.fround(p.value)), `${name} at ${p.step}`);
    }
    for (const p of store.layerSeries(id, 'output_var')) {
      assert.ok(close(scalars.get(`layers/output_variance/0${p.layer}`)!.get(p.step)!, Math.fround(p.value)));
    }
  } finally {
    store.close();
  }
  const hp = events.flatMap((e) => e.plugin).map((p) => decodeHParams(p.content));
  assert.equal(hp.find((h) => h.start)!.start!['model.norm'], 'pre');
  assert.equal(hp.find((h) => h.endStatus !== undefined)!.endStatus, 1);
});

test('live events: a resumed run marks its restart step (TensorBoard drops the older events from there); a stopped run ends no session', () => {
  const dir = tempDir('normlab-tb-resume-');
  const config = resolveRunConfig({ model: { preset: 'nano', n_layers: 2 } }, 'test');
  const first = LiveEvents.open(dir, config);
  first.write({ scalars: [1, 2, 3].map((step) => ({ runId: 'r', step, name: 'train/loss', value: 5 - step })) });
  first.end('killed');
  const second = LiveEvents.open(dir, config);
  second.resumeAfter(2);
  second.write({ scalars: [{ runId: 'r', step: 3, name: 'train/loss', value: 1.5 }] });
  second.end('finished');
  const events = eventsIn(dir);
  assert.deepEqual(events.filter((e) => e.sessionStart !== undefined).map((e) => [e.step, e.sessionStart]), [[3, 1]], 'SessionLog START at step 3');
  const ends = events.flatMap((e) => e.plugin).map((p) => decodeHParams(p.content)).filter((h) => h.endStatus !== undefined);
  assert.deepEqual(ends.map((h) => h.endStatus), [1], 'only the finished attempt ends the session');
  assert.equal(scalarsOf(events).get('train/loss')!.get(3), 1.5);
});

/** Where TensorBoard's Python package is installed, its own reader loads the export too. */
function tensorboardCheck(out: string): void {
  const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import tensorboard'], { stdio: 'ignore' }).status === 0);
  if (!python) return;
  const r = spawnSync(python, ['-c', TB_CHECK, join(out, STUDY_RUNS[0]!.id)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

const TB_CHECK = "import sys;from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E;a=E(sys.argv[1]);a.Reload();t=a.Tags()['scalars'];assert {'train/loss','val/ppl','layers/grad_norm/01'}<=set(t),t;assert '_hparams_/session_start_info' in a.PluginTagToContent('hparams');print(len(t),'scalar tags')";
