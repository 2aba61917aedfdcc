import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BackendError, useBackend } from '../src/backend/index.ts';
import { AddonUnavailable, torchMemory, useTorch } from '../src/backend/torch/index.ts';
import { Rng } from '../src/data/rng.ts';
import { MODEL_DEFAULTS, type ModelConfig } from '../src/model/config.ts';
import { initParams } from '../src/model/init.ts';
import { hasKernel } from '../src/model/fused.ts';
import { gatedSilu, linear, maskedSoftmax, rope } from '../src/model/layers.ts';
import { Model, tokenLosses } from '../src/model/model.ts';
import { rmsNorm } from '../src/model/norms.ts';
import { gradNorms, gradSquareSums } from '../src/metrics/diagnostics.ts';
import { AdamW, clipFactor } from '../src/train/adamw.ts';
import { evaluate } from '../src/train/evaluate.ts';
import { lossAndGrads } from '../src/train/step.ts';
import { compareCase, computeCase, findCases, loadCase, UnsupportedCase } from '../src/verify/golden.ts';
import { findLibtorch } from '../scripts/build-torch.ts';
import { ROOT } from './helpers/cli.ts';
import { assertMatchesCpu, ids, type Input, makeInputs, MODEL_OPS, type OpCase, positive, relativeError, x } from './helpers/ops.ts';

const torchLoads = await useTorch('cpu').then(() => true, (e) => {
  if (!(e instanceof AddonUnavailable)) throw e;
  return false;
});
const skip = !torchLoads && 'the torch addon is not built here';

test('the torch addon is built wherever the install script finds a libtorch', () => {
  const libtorch = findLibtorch();
  if (libtorch) assert.ok(torchLoads, `a libtorch was found (${libtorch.source}) but the addon does not load: npm run install`);
});

test('without a libtorch the install script prints one line and exits 0', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build-torch.ts'], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, NORMLAB_LIBTORCH: 'none' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  assert.match(r.stdout, /torch backend is not built/);
});


/** The model's ops, and the neighbours the diagnostics and other strategies use. */
const ops: OpCase[] = [
  ...MODEL_OPS,
  { name: 'matMul big enough to split across threads', inputs: [x(300, 128), x(384, 128)], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'batchMatMul big enough to split across threads', inputs: [x(9, 64, 64), x(9, 64, 64)], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'fused matMul + bias + relu', inputs: [x(3, 4), x(4, 5), x(5)], f: (a, b, c) => tf.fused.matMul({ a, b, bias: c, activation: 'relu' }) },
  { name: 'gather axis 1', inputs: [x(3, 10, 2), ids([4], 10)], f: (e, i) => tf.gather(e, i, 1), wrt: [0] },
  { name: 'transpose then reshape (a copy)', inputs: [x(2, 3, 4, 5)], f: (a) => tf.transpose(a, [0, 2, 1, 3]).reshape([6, 20]) },
  { name: 'split, concat (RoPE rotate_half)', inputs: [x(2, 3, 5, 8)], f: (a) => { const [p, q] = tf.split(a, 2, 3); return tf.concat([q!.neg(), p!], 3); } },
  { name: 'mul by a scalar', inputs: [x(3, 4)], f: (a) => a.mul(0.5).add(2) },
  { name: 'prod', inputs: [positive(2, 3, 4)], f: (a) => tf.prod(a, [0, 2]) },
  { name: 'min', inputs: [x(3, 5)], f: (a) => tf.min(a, 0) },
  { name: 'argMax', inputs: [x(3, 5)], f: (a) => tf.argMax(a, 1), wrt: [] },
  { name: 'oneHot of out-of-range ids', inputs: [{ shape: [4], dtype: 'int32', values: (i) => [0, -1, 3, 7][i]! }], f: (i) => tf.oneHot(i as tf.Tensor1D, 4, 2, -1), wrt: [] },
  { name: 'int32 arithmetic', inputs: [ids([3, 4], 9), ids([3, 4], 5)], f: (a, b) => a.add(b).mul(b).sub(a).floorDiv(b.add(1)), wrt: [] },
  {
    name: 'greater, less, equal',
    inputs: [x(3, 4), x(3, 4)],
    f: (a, b) => tf.cast(tf.greater(a, b), 'float32').add(tf.cast(tf.less(a, b), 'float32').mul(2)).add(tf.cast(tf.equal(a, a), 'float32')),
    wrt: [],
  },
  { name: 'pad', inputs: [x(2, 3)], f: (a) => tf.pad(a, [[1, 0], [0, 2]], 0.5) },
  { name: 'reverse', inputs: [x(2, 3)], f: (a) => tf.reverse(a, 1) },
  { name: 'cumsum exclusive reverse', inputs: [x(3, 4)], f: (a) => tf.cumsum(a, 1, true, true) },
  { name: 'relu, elu, leakyRelu', inputs: [x(3, 4)], f: (a) => tf.relu(a).add(tf.elu(a)).add(tf.leakyRelu(a, 0.1)) },
  { name: 'addN', inputs: [x(3, 4), x(3, 4), x(3, 4)], f: (a, b, c) => tf.addN([a, b, c]) },
  { name: 'linspace', inputs: [x(5)], f: (a) => a.mul(tf.linspace(0, 1, 5)) },
];


test('every model op and its gradient agree on torch and cpu', { skip }, async (t) => {
  for (const c of ops) await t.test(c.name, () => assertMatchesCpu('torch', c));
});

/** The model's fused ops (src/model/fused.ts): a Normlab* kernel on torch, the tfjs composition on cpu. */
const causalMaskValues = (t: number): Input => ({ shape: [t, t], values: (i) => (i % t > Math.floor(i / t) ? -1e9 : 0) });
const fusedOps: (OpCase & { kernel: string })[] = [
  { kernel: 'NormlabLinear', name: 'linear of [B, T, in]', inputs: [x(2, 5, 6), x(4, 6)], f: (a, w) => linear(a, w) },
  { kernel: 'NormlabLinear', name: 'linear of a transposed (strided) input', inputs: [x(2, 6, 5), x(4, 6)], f: (a, w) => linear(a.transpose([0, 2, 1]), w) },
  { kernel: 'NormlabLinear', name: 'linear big enough to split across threads', inputs: [x(4, 75, 128), x(384, 128)], f: (a, w) => linear(a, w) },
  { kernel: 'NormlabRMSNorm', name: 'rmsNorm', inputs: [x(2, 3, 8), positive(8)], f: (a, w) => rmsNorm(a, w, 1e-6) },
  { kernel: 'NormlabRMSNorm', name: 'rmsNorm per head of [B, T, H, hd]', inputs: [x(2, 3, 2, 4), x(4)], f: (a, w) => rmsNorm(a, w, 1e-5) },
  { kernel: 'NormlabRope', name: 'rope (tables with unrelated halves)', inputs: [x(2, 3, 5, 8), x(5, 8), x(5, 8)], f: (a, cos, sin) => rope(a, { cos: cos as tf.Tensor2D, sin: sin as tf.Tensor2D }), wrt: [0] },
  { kernel: 'NormlabSwiGLU', name: 'SiLU(gate) ⊙ up', inputs: [x(2, 3, 6), x(2, 3, 6)], f: (g, u) => gatedSilu(g.mul(4), u) },
  { kernel: 'NormlabMaskedSoftmax', name: 'masked softmax with the causal mask', inputs: [x(2, 2, 4, 4), causalMaskValues(4)], f: (s, m) => maskedSoftmax(s.mul(3), m as tf.Tensor2D, 0.5), wrt: [0] },
  { kernel: 'NormlabCrossEntropy', name: 'token losses', inputs: [x(6, 11), ids([6], 11)], f: (l, t) => tokenLosses(l.mul(5) as tf.Tensor2D, t as tf.Tensor1D), wrt: [0] },
];

test('every fused op and its gradient agree with the tfjs composition', { skip }, async (t) => {
  for (const c of fusedOps) {
    await t.test(c.name, async () => {
      await assertMatchesCpu('torch', c);
      assert.ok(hasKernel(c.kernel), `torch registers ${c.kernel}`);
    });
  }
});

test('AdamW takes the same steps with the fused kernel on torch as with tfjs ops on cpu', { skip }, async () => {
  const config = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
  const run = async (backend: 'cpu' | 'torch') => {
    await useBackend(backend);
    const [w, b, gw, gb] = makeInputs([x(16, 8), x(8), x(16, 8), x(8)]);
    const params = { w: w!, b: b! };
    const adamw = new AdamW(config, params);
    for (const [lr, scale] of [[1e-2, 0.5], [5e-3, 1]] as const) {
      adamw.apply(params, { w: gw!, b: gb! }, lr, (key) => (key === 'w' ? scale : 1));
    }
    const read = async (t: tf.Tensor) => Float32Array.from(await t.data());
    const out = { param: [await read(params.w), await read(params.b)], m: [await read(adamw.m.w!), await read(adamw.m.b!)], v: [await read(adamw.v.w!), await read(adamw.v.b!)] };
    adamw.dispose();
    tf.dispose([params.w, params.b, gw!, gb!]);
    return out;
  };
  const ops = await run('cpu');
  const fused = await run('torch');
  assert.ok(hasKernel('NormlabAdamW'));
  for (const name of ['param', 'm', 'v'] as const) {
    ops[name].forEach((ref, i) => {
      const err = relativeError(ref, fused[name][i]!);
      assert.ok(err <= 1e-6, `${name} ${i === 0 ? '(decayed matrix)' : '(vector)'} differs by ${err.toExponential(2)}`);
    });
  }
});

test('gradient square sums agree with the fused kernel on torch', { skip }, async () => {
  const sums = async (backend: 'cpu' | 'torch') => {
    await useBackend(backend);
    const [a, b] = makeInputs([x(30, 20), x(7)]);
    const result = gradSquareSums({ a: a!, b: b! });
    tf.dispose([a!, b!]);
    return [...result.values()];
  };
  const [ref, fused] = [await sums('cpu'), await sums('torch')];
  ref.forEach((r, i) => assert.ok(Math.abs(r - fused[i]!) <= 1e-5 * r, `sum ${i}: ${r} vs ${fused[i]}`));
});

test('a kernel the torch backend lacks is an error that names it', { skip }, async () => {
  await useBackend('torch', 'cpu');
  const image = tf.zeros([1, 4, 4, 1]);
  assert.throws(() => tf.conv2d(image as tf.Tensor4D, tf.zeros([2, 2, 1, 1]) as tf.Tensor4D, 1, 'valid'), /'Conv2D'.*'torch'/);
  tf.dispose(image);
});

test('a native error names the kernel', { skip }, async () => {
  await useBackend('torch', 'cpu');
  const table = tf.zeros([4, 2]);
  assert.throws(() => tf.gather(table, tf.tensor1d([5], 'int32')), /torch kernel GatherV2: .*out of range/i);
  tf.dispose(table);
});

test('--device cuda where libtorch has no CUDA or no GPU is visible is an error that says which', { skip }, async () => {
  const cuda = await useBackend('torch', 'cuda').then(() => true, (e) => {
    assert.ok(e instanceof BackendError, String(e));
    assert.match(e.message, /--device cuda: (this libtorch was built without CUDA|no CUDA device is visible)/);
    return false;
  });
  if (cuda) assert.equal(tf.getBackend(), 'torch');
});

test('tensors made on another backend move to torch when first used', { skip }, async () => {
  await useBackend('cpu');
  const a = tf.tensor2d([[1, 2], [3, 4]]);
  await useBackend('torch', 'cpu');
  const b = tf.matMul(a, a);
  assert.deepEqual(Array.from(await b.data()), [7, 10, 15, 22]);
  tf.dispose([a, b]);
});

test('the reference cases pass on torch', { skip }, async () => {
  await useBackend('torch', 'cpu');
  let passed = 0;
  for (const dir of findCases(`${ROOT}/../shared/golden`)) {
    let c;
    try {
      c = loadCase(dir);
    } catch (e) {
      if (e instanceof UnsupportedCase) continue;
      throw e;
    }
    const bad = compareCase(c.expected, computeCase(c)).filter((r) => !r.ok);
    assert.deepEqual(bad, [], c.name);
    passed++;
  }
  assert.ok(passed > 0, 'no supported reference case found');
});

const smokeModel: ModelConfig = { ...MODEL_DEFAULTS, vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 4, ffn_dim: 192 };

test('training steps keep native memory flat on torch', { skip }, async () => {
  await useBackend('torch', 'cpu');
  const model = new Model(smokeModel);
  const params = initParams(smokeModel, 0);
  const optimizer = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }, params);
  const rng = new Rng(1);
  const batch = () => tf.tensor2d(Int32Array.from({ length: 4 * 65 }, () => rng.nextUint32() % 256), [4, 65], 'int32');
  const validation = [batch()];
  const step = (i: number) => {
    const tokens = batch();
    const { loss, grads, outputVariances } = lossAndGrads(model, params, tokens, { outputVariances: i % 5 === 0 });
    const norms = gradNorms(gradSquareSums(grads), smokeModel.n_layers);
    outputVariances?.dataSync();
    optimizer.apply(params, grads, 1e-3, clipFactor(norms.total, 1));
    if (i % 10 === 0) evaluate(model, params, validation);
    tf.dispose([tokens, loss, ...Object.values(grads), ...(outputVariances ? [outputVariances] : [])]);
  };
  for (let i = 1; i <= 10; i++) step(i); // warm-up: constants and cached blocks
  const before = torchMemory()!;
  for (let i = 11; i <= 40; i++) step(i);
  const after = torchMemory()!;
  assert.equal(after.tensors, before.tensors, 'native tensors');
  assert.equal(after.allocatedBytes, before.allocatedBytes, 'native bytes in use');
  assert.ok(after.cachedBytes <= before.cachedBytes + 2 ** 20, `cached blocks grew from ${before.cachedBytes} to ${after.cachedBytes}`);
  optimizer.dispose();
  model.dispose();
  tf.dispose([...validation, ...Object.values(params)]);
});

test('memory() counts native bytes, and disposing a tensor returns them', { skip }, async () => {
  await useBackend('torch', 'cpu');
  const before = torchMemory()!.allocatedBytes;
  const ones = tf.fill([256, 1024], 1);
  assert.ok(torchMemory()!.allocatedBytes - before <= 64, 'a fill is a view of one value');
  const twos = ones.add(1);
  assert.ok(torchMemory()!.allocatedBytes - before >= 2 ** 20, 'add() allocates its 1 MiB result');
  tf.dispose([ones, twos]);
  assert.equal(torchMemory()!.allocatedBytes, before);
});
