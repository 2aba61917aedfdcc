// Issue 23 (streamed, sharded checkpoints) and issue 18 item 3 (state.json's
// own checksum): byte-identical streaming, Hugging Face shards, bit-identical
// resume, and damaged checkpoints detected and skipped without leaking tensors;
// checkpoints of an older normlab (no state_sha256) still resume, with a warning.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { useBackend } from '../src/backend/index.ts';
import type { RunConfig } from '../src/config/schema.ts';
import { Rng } from '../src/data/rng.ts';
import { type NamedArray, readSafetensors, streamSafetensors, writeSafetensors } from '../src/model/safetensors.ts';
import { CheckpointError, latestGoodCheckpoint, loadCheckpoint, stepDirs } from '../src/train/checkpoint.ts';
import { trainingData } from '../src/train/run.ts';
import { type StepReport, train } from '../src/train/trainer.ts';
import { MetricBuffer, RunStore } from '../src/store/store.ts';
import { runCli, tempDir, writeConfig } from './helpers/cli.ts';
import { tinyConfig } from './helpers/train.ts';

/** The in-memory encoder normlab shipped before streaming, kept verbatim as the reference for byte-identity. */
function encodeBefore(tensors: Map<string, NamedArray>, metadata: Record<string, string> = {}): Uint8Array {
  const keys = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const key of keys) {
    const { shape, data } = tensors.get(key)!;
    header[key] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const key of keys) {
    const { data } = tensors.get(key)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
}

const PYTHON_READER = String.raw`
import json, struct, sys, torch
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
out = {}
for key, e in header.items():
    if key == '__metadata__':
        continue
    b, t = e['data_offsets']
    x = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + t]), dtype=torch.float32).reshape(e['shape'])
    out[key] = {'shape': list(x.shape), 'values': x.flatten().tolist()}
print(json.dumps(out))
`;

test('streamed safetensors in small chunks: byte-identical to the old encoder, read back equal here and by an independent Python reader', async () => {
  const rng = new Rng(7);
  const tensors = new Map<string, NamedArray>([
    ['b.weight', { shape: [37, 11], data: Float32Array.from({ length: 407 }, () => rng.nextFloat() * 2 - 1) }],
    ['a.bias', { shape: [5], data: Float32Array.from({ length: 5 }, () => rng.nextFloat()) }],
    ['z.scalar', { shape: [1], data: Float32Array.of(-0) }],
    ['m.big', { shape: [3, 4, 100], data: Float32Array.from({ length: 1200 }, (_, i) => (i % 7 === 0 ? 1e-30 : rng.nextFloat() * 1e6)) }],
  ]);
  const file = join(tempDir(), 'x.safetensors');
  const chunk = 64; // far smaller than every tensor but the tiny ones
  const written = await writeSafetensors(file, new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, values: () => t.data }])), { format: 'pt' }, chunk);
  const bytes = readFileSync(file);
  assert.deepEqual(new Uint8Array(bytes), encodeBefore(tensors, { format: 'pt' }));
  assert.equal(written.bytes, bytes.length);
  assert.equal(written.sha256, createHash('sha256').update(bytes).digest('hex'), 'the hash taken while writing is the file\'s');

  const seen: string[] = [];
  const read = streamSafetensors(file, (key, t) => {
    seen.push(key);
    assert.deepEqual(t.shape, tensors.get(key)!.shape);
    assert.deepEqual(t.data, tensors.get(key)!.data);
  }, chunk);
  assert.deepEqual(seen, [...tensors.keys()].sort());
  assert.equal(read.sha256, written.sha256, 'the hash taken while reading is the file\'s');
  assert.deepEqual(read.metadata, { format: 'pt' });

  const python = spawnSync('/usr/bin/python3', ['-c', PYTHON_READER, file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(python.status, 0, python.stderr);
  const fromPython = JSON.parse(python.stdout) as Record<string, { shape: number[]; values: number[] }>;
  assert.deepEqual(Object.keys(fromPython).sort(), [...tensors.keys()].sort());
  for (const [key, { shape, data }] of tensors) {
    assert.deepEqual(fromPython[key]!.shape, shape, key);
    assert.deepEqual(Float32Array.from(fromPython[key]!.values), data, key);
  }
});

/** Trains in this process (resuming when asked) and returns the loss of every step it ran. */
async function trainHere(config: RunConfig, runDir: string, opts: { resume?: boolean; stopAfter?: number } = {}) {
  const store = RunStore.open(join(runDir, '..', `test-${opts.resume ? 'resumed' : 'first'}.sqlite`));
  store.createRun({ id: 'r', name: 'r', config, configHash: 'h', seed: 0, backend: 'wasm', totalSteps: config.train.steps, versions: {}, runDir });
  const losses = new Map<number, number>();
  const warnings: string[] = [];
  try {
    const outcome = await train({
      config, configHash: 'h', runDir, data: await trainingData(config), metrics: new MetricBuffer(store, 'r'),
      log: pino({ level: 'silent' }), resume: Boolean(opts.resume), deleteMetricsAfter: () => {},
      hooks: {
        onStep: (r: StepReport) => losses.set(r.step, r.loss),
        stopRequested: () => opts.stopAfter !== undefined && losses.size >= opts.stopAfter,
        warn: (m) => warnings.push(m),
      },
    });
    return { outcome, losses, warnings };
  } finally {
    store.close();
  }
}

const SHARD = 20_000;
const RUN = { steps: 8, checkpoint_every: 4, keep_checkpoints: 3, eval_every: 8, diag_every: 0 };

function weightsOf(dir: string): Map<string, Float32Array> {
  const { params } = loadCheckpoint(dir, { optimizer: false });
  const out = new Map(Object.entries(params).map(([k, t]) => [k, t.dataSync() as Float32Array]));
  tf.dispose(Object.values(params));
  return out;
}

test('a tiny model with a 20 KB shard size: HF shards and indexes, checksummed; resume bit-identical to the unsharded run; damage detected without leaks', async () => {
  await useBackend('wasm');
  const reference = tinyConfig({}, RUN);
  const plain = await trainHere(reference.config, join(reference.dir, 'run'));
  assert.equal(plain.outcome.status, 'finished');

  const sharded = tinyConfig({}, { ...RUN, checkpoint_shard_size: SHARD });
  const runDir = join(sharded.dir, 'run');
  const first = await trainHere(sharded.config, runDir, { stopAfter: 5 });
  assert.equal(first.outcome.status, 'killed');
  const resumed = await trainHere(sharded.config, runDir, { resume: true });
  assert.equal(resumed.outcome.status, 'finished');
  assert.deepEqual([...resumed.losses], [...plain.losses].filter(([step]) => step > 5), 'the resumed steps\' losses are bit-identical');

  const checkpoints = join(runDir, 'checkpoints');
  const [last, , atFour] = stepDirs(checkpoints);
  assert.deepEqual(stepDirs(checkpoints).map((c) => c.step), [8, 5, 4]);
  assert.deepEqual(weightsOf(last!.dir), weightsOf(stepDirs(join(reference.dir, 'run', 'checkpoints'))[0]!.dir), 'final weights bit-identical');

  // The layout: no single files, HF names, indexes covering every tensor, every file checksummed.
  const files = readdirSync(last!.dir).sort();
  assert.ok(!files.includes('model.safetensors') && !files.includes('optimizer.safetensors'));
  const state = JSON.parse(readFileSync(join(last!.dir, 'state.json'), 'utf8'));
  for (const base of ['model', 'optimizer']) {
    const shards = files.filter((f) => f.startsWith(`${base}-`));
    assert.ok(shards.length > 2, `${base}: ${shards.length} shards`);
    shards.forEach((f, i) => assert.equal(f, `${base}-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
    const index = JSON.parse(readFileSync(join(last!.dir, `${base}.safetensors.index.json`), 'utf8'));
    let total = 0;
    const keys: string[] = [];
    for (const shard of shards) {
      const { tensors } = readSafetensors(join(last!.dir, shard));
      const bytes = [...tensors.values()].reduce((s, t) => s + t.data.byteLength, 0);
      assert.ok(bytes <= SHARD || tensors.size === 1, `${shard}: ${bytes} bytes in ${tensors.size} tensors`);
      for (const key of tensors.keys()) assert.equal(index.weight_map[key], shard);
      keys.push(...tensors.keys());
      total += bytes;
      assert.equal(state.checksums[shard], createHash('sha256').update(readFileSync(join(last!.dir, shard))).digest('hex'));
    }
    assert.equal(index.metadata.total_size, total);
    assert.deepEqual(Object.keys(index.weight_map).sort(), keys.sort());
    assert.ok(shards.some((s) => readSafetensors(join(last!.dir, s)).tensors.size > 1), 'small tensors share a shard');
    assert.ok(state.checksums[`${base}.safetensors.index.json`]);
  }

  // Damage: a truncated shard, a missing shard, an edited state.json; each falls back, leaks nothing.
  const live = tf.memory().numTensors;
  const damages: [string, (dir: string) => void, RegExp][] = [
    ['truncated shard', (d) => truncateSync(join(d, 'model-00002-of-' + files.find((f) => f.startsWith('model-'))!.slice(-17)), 100), /model-00002-of-\d+\.safetensors: checksum mismatch/],
    ['missing shard', (d) => rmSync(join(d, files.filter((f) => f.startsWith('optimizer-')).at(-1)!)), /optimizer-\d+-of-\d+\.safetensors: missing/],
    ['bit flip in the last shard', (d) => {
      const f = join(d, files.filter((n) => n.startsWith('optimizer-')).at(-1)!);
      const b = readFileSync(f);
      b[b.length - 3]! ^= 1;
      writeFileSync(f, b);
    }, /optimizer-\d+-of-\d+\.safetensors: checksum mismatch/],
    ['edited step in state.json', (d) => {
      const f = join(d, 'state.json');
      writeFileSync(f, readFileSync(f, 'utf8').replace(/"step": \d+/, '"step": 7'));
    }, /state\.json: checksum mismatch \(the state was edited or corrupted\)/],
  ];
  for (const [what, damage, message] of damages) {
    const dir = tempDir();
    spawnSync('cp', ['-r', last!.dir, atFour!.dir, dir]);
    const copies = stepDirs(dir);
    damage(copies[0]!.dir);
    assert.throws(() => loadCheckpoint(copies[0]!.dir), (e: Error) => e instanceof CheckpointError && message.test(e.message), what);
    assert.equal(tf.memory().numTensors, live, `${what}: the tensors loaded before the failure were freed`);
    const warnings: string[] = [];
    const good = latestGoodCheckpoint(dir, (m) => warnings.push(m));
    assert.equal(good?.state.step, 4, what);
    assert.match(warnings.join('\n'), /falling back to the previous checkpoint/);
    tf.dispose([...Object.values(good!.params), ...Object.values(good!.moments!.m), ...Object.values(good!.moments!.v)]);
    assert.equal(tf.memory().numTensors, live);
  }
});

test('weights-only loads (analyze, sample) never read the optimizer files', async () => {
  await useBackend('wasm');
  const { config, dir } = tinyConfig({}, { steps: 2, checkpoint_every: 2 });
  await trainHere(config, join(dir, 'run'));
  const [ckpt] = stepDirs(join(dir, 'run', 'checkpoints'));
  rmSync(join(ckpt!.dir, 'optimizer.safetensors'));
  const { params, moments } = loadCheckpoint(ckpt!.dir, { optimizer: false });
  assert.equal(moments, undefined);
  assert.ok(Object.keys(params).length > 0);
  tf.dispose(Object.values(params));
  assert.throws(() => loadCheckpoint(ckpt!.dir), /optimizer\.safetensors: missing/);
});

/** Rewrites a checkpoint's state.json as `edit` says, in the layout normlab writes it. */
function editState(dir: string, edit: (state: Record<string, unknown>) => void): void {
  const file = join(dir, 'state.json');
  const state = JSON.parse(readFileSync(file, 'utf8'));
  edit(state);
  writeFileSync(file, JSON.stringify(state, null, 2));
}

test('a checkpoint from before state_sha256 resumes with a warning that its state cannot be verified; a wrong state_sha256 is still refused', async () => {
  await useBackend('wasm');
  const { config, dir } = tinyConfig({}, { steps: 6, checkpoint_every: 3, eval_every: 6, diag_every: 0 });
  const runDir = join(dir, 'run');
  assert.equal((await trainHere(config, runDir, { stopAfter: 4 })).outcome.status, 'killed');
  const [latest] = stepDirs(join(runDir, 'checkpoints'));
  assert.equal(latest!.step, 4);

  // An older normlab wrote state.json as the state and its file checksums, nothing more.
  editState(latest!.dir, (state) => { delete state.state_sha256; });
  const resumed = await trainHere(config, runDir, { resume: true });
  assert.equal(resumed.outcome.status, 'finished');
  assert.deepEqual([...resumed.losses.keys()], [5, 6], 'resumed from the unverified checkpoint at step 4');
  const unverified = resumed.warnings.filter((w) => /state\.json has no state_sha256 \(written by an older normlab\): its step and data position cannot be verified/.test(w));
  assert.equal(unverified.length, 1, resumed.warnings.join('\n'));
  assert.ok(!resumed.warnings.some((w) => /falling back/.test(w)), 'nothing fell back');

  // Its files are still checked against the checksums it lists.
  const copy = join(tempDir(), 'step-00000004');
  spawnSync('cp', ['-r', latest!.dir, copy]);
  truncateSync(join(copy, 'model.safetensors'), 100);
  assert.throws(() => loadCheckpoint(copy, { warn: () => {} }), /model\.safetensors: checksum mismatch/);

  // A state_sha256 that is present but wrong is a corrupt checkpoint, as before.
  const [final] = stepDirs(join(runDir, 'checkpoints'));
  editState(final!.dir, (state) => { state.state_sha256 = '0'.repeat(64); });
  const warnings: string[] = [];
  assert.throws(() => loadCheckpoint(final!.dir, { warn: (m) => warnings.push(m) }), (e: Error) => e instanceof CheckpointError && /state\.json: checksum mismatch \(the state was edited or corrupted\)/.test(e.message));
  assert.deepEqual(warnings, []);
});

test('a disk too small for the next checkpoint stops cleanly by default, or trains on when train.on_checkpoint_no_space is keep_training', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { train: { steps: 12, checkpoint_every: 4, eval_every: 12, diag_every: 0 } });
  const lowdisk = { NORMLAB_FAULT: 'lowdisk:checkpoint-space:2' };
  const stopped = runCli(['train', config, '--quiet'], undefined, lowdisk);
  assert.equal(stopped.code, 1, stopped.stderr);
  assert.match(stopped.stderr, /could not write checkpoint .*step-00000008: not enough free space in .*checkpoints: a checkpoint takes [\d.]+ GB.*0\.00 GB is free; the previous checkpoint .*step-00000004 is intact\. Free space/);
  const runs = join(dir, 'runs');
  const checkpoints = join(runs, readdirSync(runs).find((n) => n.startsWith('tiny-'))!, 'checkpoints');
  assert.deepEqual(readdirSync(checkpoints), ['step-00000004'], 'nothing half-written');
  assert.ok(statSync(join(checkpoints, 'step-00000004', 'model.safetensors')).size > 0);

  const other = tempDir();
  const keepTraining = runCli(['train', writeConfig(other, { train: { steps: 12, checkpoint_every: 4, eval_every: 12, diag_every: 0, on_checkpoint_no_space: 'keep_training' } })], undefined, lowdisk);
  assert.equal(keepTraining.code, 0, keepTraining.stderr);
  assert.match(keepTraining.stderr, /skipped checkpoint .*step-00000008: not enough free space/);
  const otherRuns = join(other, 'runs');
  assert.deepEqual(readdirSync(join(otherRuns, readdirSync(otherRuns).find((n) => n.startsWith('tiny-'))!, 'checkpoints')).sort(), ['step-00000004', 'step-00000012']);
  assert.ok(!existsSync(join(checkpoints, 'step-00000008')));
});

const PYTHON_LLAMA = String.raw`
# Hugging Face's LlamaForCausalLM forward, written out (float64), on a checkpoint folder.
import json, math, os, struct, sys, torch
d, tokens = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
cfg = json.load(open(os.path.join(d, 'config.json')))
def read(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    out = {}
    for k, e in json.loads(raw[8:8 + n]).items():
        if k != '__metadata__':
            b, t = e['data_offsets']
            out[k] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + t]), dtype=torch.float32).reshape(e['shape']).double()
    return out
index = os.path.join(d, 'model.safetensors.index.json')
W = {}
for f in (sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']):
    W.update(read(os.path.join(d, f)))
H, D, L, eps = cfg['num_attention_heads'], cfg['hidden_size'], cfg['num_hidden_layers'], cfg['rms_norm_eps']
hd = D // H
inp, tgt = tokens[:, :-1], tokens[:, 1:]
B, T = inp.shape
def rms(x, w): return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
inv = 1.0 / (cfg['rope_theta'] ** (torch.arange(0, hd, 2).double() / hd))
freqs = torch.outer(torch.arange(T).double(), inv)
cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
def rot(x): return torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
def heads(x): return x.view(B, T, H, hd).transpose(1, 2)
mask = torch.full((T, T), float('-inf')).triu(1)
h = W['model.embed_tokens.weight'][inp]
for i in range(L):
    p = 'model.layers.%d.' % i
    x = rms(h, W[p + 'input_layernorm.weight'])
    q, k, v = (heads(x @ W[p + 'self_attn.%s_proj.weight' % n].T) for n in 'qkv')
    q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
    h = h + a.transpose(1, 2).reshape(B, T, D) @ W[p + 'self_attn.o_proj.weight'].T
    x = rms(h, W[p + 'post_attention_layernorm.weight'])
    h = h + (torch.nn.functional.silu(x @ W[p + 'mlp.gate_proj.weight'].T) * (x @ W[p + 'mlp.up_proj.weight'].T)) @ W[p + 'mlp.down_proj.weight'].T
logits = rms(h, W['model.norm.weight']) @ W['lm_head.weight'].T
print(json.dumps(torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(-1)).item()))
`;

test('config.json claims LlamaForCausalLM only for an exact Llama, and a trained `pre` checkpoint (sharded) gives normlab\'s loss under an independent Llama forward', async () => {
  const { huggingFaceConfig } = await import('../src/train/checkpoint.ts');
  const { STRATEGIES } = await import('../src/model/config.ts');
  const { resolveRunConfig } = await import('../src/config/load.ts');
  const arch = (model: object) => {
    const cfg = huggingFaceConfig(resolveRunConfig({ model: { preset: 'nano', ...model } }, 'test').model, 16);
    return `${(cfg.architectures as string[])[0]}/${cfg.model_type}`;
  };
  for (const norm of STRATEGIES) assert.equal(arch({ norm, n_layers: 4 }), norm === 'pre' ? 'LlamaForCausalLM/llama' : 'NormlabForCausalLM/normlab', norm);
  for (const modifier of [{ qk_norm: true }, { norm_type: 'layernorm' }, { embed_norm: true }, { gpas: true }, { residual_scale: 'layerscale' }]) {
    assert.equal(arch({ norm: 'pre', ...modifier }), 'NormlabForCausalLM/normlab', JSON.stringify(modifier));
  }
  assert.equal(arch({ norm: 'pre', tvr: true, init: 'lir' }), 'LlamaForCausalLM/llama', 'weight-only modifiers keep the Llama computation');

  await useBackend('wasm');
  const { config, dir } = tinyConfig({ norm: 'pre' }, { steps: 4, lr: 1e-2, checkpoint_every: 4, checkpoint_shard_size: SHARD });
  await trainHere(config, join(dir, 'run'));
  const [ckpt] = stepDirs(join(dir, 'run', 'checkpoints'));
  const written = JSON.parse(readFileSync(join(ckpt!.dir, 'config.json'), 'utf8'));
  assert.deepEqual([written.architectures, written.eos_token_id, written.normlab.norm], [['LlamaForCausalLM'], 0, 'pre']);
  assert.deepEqual(JSON.parse(readFileSync(join(ckpt!.dir, 'generation_config.json'), 'utf8')),
    { bos_token_id: 0, eos_token_id: 0, pad_token_id: 0, normlab_tokenizer: { name: 'byte', vocab_size: 256, add_bos_token: false } });

  const rng = new Rng(11);
  const tokens = Array.from({ length: 2 }, () => Array.from({ length: 17 }, () => rng.nextUint32() % 256));
  const { params } = loadCheckpoint(ckpt!.dir, { optimizer: false });
  const { Model } = await import('../src/model/model.ts');
  const { evaluate } = await import('../src/train/evaluate.ts');
  const model = new Model(config.model);
  const batch = tf.tensor2d(tokens.flat(), [2, 17], 'int32');
  const ours = evaluate(model, params, [batch]).loss;
  tf.dispose([batch, ...Object.values(params)]);
  model.dispose();
  const python = spawnSync('/usr/bin/python3', ['-c', PYTHON_LLAMA, ckpt!.dir, JSON.stringify(tokens)], { encoding: 'utf8' });
  assert.equal(python.status, 0, python.stderr);
  const theirs = JSON.parse(python.stdout) as number;
  assert.ok(Math.abs(ours - theirs) < 1e-5, `normlab ${ours} vs Llama ${theirs}`);
});

test('a failed checkpoint write says its reason; only ENOSPC says the disk is full', async () => {
  const { CheckpointWriteError } = await import('../src/train/checkpoint.ts');
  const denied = new CheckpointWriteError('/r/step-2', '/r/step-1', Object.assign(new Error('EACCES: permission denied, open \'/r/step-2.tmp-1/model.safetensors\''), { code: 'EACCES' }));
  assert.match(denied.message, /could not write checkpoint \/r\/step-2: EACCES: permission denied.*; the previous checkpoint \/r\/step-1 is intact\. Fix that, then resume/);
  assert.doesNotMatch(denied.message, /disk is full|Free space/);
  const full = new CheckpointWriteError('/r/step-2', undefined, Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  assert.match(full.message, /ENOSPC: no space left on device, write \(the disk is full\); no earlier checkpoint exists\. Free space, then resume/);
});
