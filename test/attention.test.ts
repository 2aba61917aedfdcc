// The torch backend's fused attention (NormlabAttention, native/src/attention.cc:
// ATen's scaled_dot_product_attention, its gradient by autograd) against the
// tfjs composition it replaces (src/model/layers.ts), on the CPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend/index.ts';
import { AddonUnavailable, setTorchAttention, setTorchPrecision, type TorchAttention, torchMemory, useTorch } from '../src/backend/torch/index.ts';
import { Rng } from '../src/data/rng.ts';
import { MODEL_DEFAULTS, type ModelConfig } from '../src/model/config.ts';
import { hasKernel } from '../src/model/fused.ts';
import { initParams } from '../src/model/init.ts';
import { causalAttention, causalMask } from '../src/model/layers.ts';
import { Model } from '../src/model/model.ts';
import { lossAndGrads } from '../src/train/step.ts';
import { makeInputs, relativeError, x } from './helpers/ops.ts';

const torchLoads = await useTorch('cpu').then(() => true, (e) => {
  if (!(e instanceof AddonUnavailable)) throw e;
  return false;
});
const skip = !torchLoads && 'the torch addon is not built here';

interface Case {
  name: string;
  /** Queries, and keys (S ≥ T: the queries are the last T positions). */
  T: number;
  S: number;
  hd: number;
  scale: number;
}

const cases: Case[] = [
  { name: 'causal, scale 1/sqrt(hd)', T: 7, S: 7, hd: 8, scale: 1 / Math.sqrt(8) },
  { name: "causal, nGPT's scale sqrt(hd)", T: 7, S: 7, hd: 8, scale: Math.sqrt(8) },
  { name: 'the last 3 of 7 positions (a KV cache), masked explicitly', T: 3, S: 7, hd: 8, scale: 1 / Math.sqrt(8) },
  { name: 'one query over 5 cached positions', T: 1, S: 5, hd: 4, scale: 0.5 },
  { name: 'big enough to split the composition across threads', T: 64, S: 64, hd: 16, scale: 0.25 },
];

/** The attention output and the gradients of Σ w·attention by q, k, v. */
function valueAndGrads(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const [q, k, v, w] = makeInputs([x(2, 3, c.T, c.hd), x(2, 3, c.S, c.hd), x(2, 3, c.S, c.hd), x(2, 3, c.T, c.hd)]);
    const mask = causalMask(c.S).slice([c.S - c.T, 0], [c.T, c.S]);
    const attend = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => causalAttention(a, b, d, c.scale, mask);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => attend(a, b, d).mul(w!).sum())([q!, k!, v!]);
    return [attend(q!, k!, v!), ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

async function onTorch(attention: TorchAttention, c: Case): Promise<Float32Array[]> {
  await useTorch('cpu');
  setTorchAttention(attention);
  assert.equal(hasKernel('NormlabAttention'), attention === 'sdpa', `torch registers NormlabAttention for ${attention}`);
  return valueAndGrads(c);
}

function assertClose(got: Float32Array[], want: Float32Array[], what: string, tolerance: number): void {
  ['value', 'd q', 'd k', 'd v'].forEach((name, i) => {
    const err = relativeError(want[i]!, got[i]!);
    assert.ok(err <= tolerance, `${what}: ${name} differs by ${err.toExponential(2)}`);
  });
}

test('SDPA attention and its gradients equal the composition on torch and on tfjs cpu', { skip }, async (t) => {
  try {
    for (const c of cases) {
      await t.test(c.name, async () => {
        await useBackend('cpu');
        const definition = valueAndGrads(c);
        const composed = await onTorch('composed', c);
        const sdpa = await onTorch('sdpa', c);
        assertClose(composed, definition, 'composed on torch vs cpu', 1e-5);
        assertClose(sdpa, definition, 'sdpa on torch vs cpu', 1e-5);
      });
    }
  } finally {
    await useTorch('cpu');
  }
});

test('in bf16 SDPA attention computes in bfloat16, as close to float32 as the composition', { skip }, async () => {
  const c = cases[4]!;
  try {
    const fp32 = await onTorch('sdpa', c);
    setTorchPrecision('bf16');
    const sdpa = await onTorch('sdpa', c);
    const composed = await onTorch('composed', c);
    const err = relativeError(fp32[0]!, sdpa[0]!);
    assert.ok(err > 1e-4, `bf16 attention rounds (differs from float32 by ${err.toExponential(2)})`);
    // bfloat16 keeps 8 significant bits: a relative error of 2^-8 per rounding.
    assertClose(sdpa, fp32, 'sdpa bf16 vs float32', 2e-2);
    assertClose(composed, fp32, 'composed bf16 vs float32', 2e-2);
  } finally {
    setTorchPrecision('fp32');
    await useTorch('cpu');
  }
});

const smokeModel: ModelConfig = { ...MODEL_DEFAULTS, vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 4, ffn_dim: 192, qk_norm: true };

test('a training step gives the same loss and gradients with SDPA attention, and native memory stays flat', { skip }, async () => {
  const model = new Model(smokeModel);
  const params = initParams(smokeModel, 0);
  const rng = new Rng(3);
  const tokens = tf.tensor2d(Int32Array.from({ length: 4 * 33 }, () => rng.nextUint32() % 256), [4, 33], 'int32');
  const step = (attention: TorchAttention) => {
    setTorchAttention(attention);
    const { loss, grads } = lossAndGrads(model, params, tokens);
    const values = [loss, ...Object.values(grads)].map((g) => g.dataSync() as Float32Array);
    tf.dispose([loss, ...Object.values(grads)]);
    return values;
  };
  try {
    await useTorch('cpu');
    const composed = step('composed');
    const sdpa = step('sdpa');
    sdpa.forEach((g, i) => {
      const err = relativeError(composed[i]!, g);
      assert.ok(err <= 1e-5, `${i === 0 ? 'loss' : `gradient ${Object.keys(params)[i - 1]}`} differs by ${err.toExponential(2)}`);
    });
    step('sdpa');
    const evaluate = () => tf.tidy(() => model.forward(params, tokens).logits.dataSync());
    evaluate();
    const before = torchMemory()!;
    for (let i = 0; i < 5; i++) {
      step('sdpa');
      evaluate();
    }
    const after = torchMemory()!;
    assert.equal(after.tensors, before.tensors, 'native tensors');
    assert.equal(after.allocatedBytes, before.allocatedBytes, 'native bytes in use');
  } finally {
    await useTorch('cpu');
    model.dispose();
    tf.dispose([tokens, ...Object.values(params)]);
  }
});
