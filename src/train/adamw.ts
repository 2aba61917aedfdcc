// AdamW as torch.optim.AdamW (decoupled weight decay, bias correction), after
// global-norm clipping as torch.nn.utils.clip_grad_norm_ (MODEL.md §6).
import * as tf from '@tensorflow/tfjs';
import { hasKernel, runFused } from '../model/fused.ts';
import type { Params } from '../model/norms.ts';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
}

/** Factor that scales every gradient so the global norm is at most `clipNorm` (0 = off). */
export function clipFactor(totalNorm: number, clipNorm: number): number {
  return clipNorm > 0 ? Math.min(1, clipNorm / (totalNorm + 1e-6)) : 1;
}

/** Only matrices decay; norm gains, biases and scalars do not. */
export const decays = (shape: number[]) => shape.length >= 2;

/** One step's numbers for one parameter: `decay` is the factor weight decay puts on it (1 for none). */
interface StepHyper {
  gradScale: number;
  beta1: number;
  beta2: number;
  eps: number;
  decay: number;
  stepSize: number;
  sqrtBias2: number;
}

type Step = (p: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, h: StepHyper) => tf.Tensor[];

const opsStep: Step = (p, grad, m, v, h) => tf.tidy(() => {
  const g = h.gradScale === 1 ? grad : grad.mul(h.gradScale);
  const m1 = m.mul(h.beta1).add(g.mul(1 - h.beta1));
  const v1 = v.mul(h.beta2).add(g.square().mul(1 - h.beta2));
  const decayed = h.decay === 1 ? p : p.mul(h.decay);
  const update = m1.div(v1.sqrt().div(h.sqrtBias2).add(h.eps)).mul(h.stepSize);
  return [decayed.sub(update), m1, v1];
});

/** The same step as one kernel (native/src/fused.cc), where the backend has it. */
const fusedStep: Step = (param, grad, m, v, h) => runFused<tf.Tensor[]>('NormlabAdamW', { param, grad, m, v }, { ...h });

export class AdamW {
  step = 0;
  readonly m: Params = {};
  readonly v: Params = {};

  /** Fresh moments for `params`, or the saved ones of a checkpoint. */
  constructor(readonly config: AdamWConfig, params: Params, saved?: { m: Params; v: Params; step: number }) {
    for (const [key, p] of Object.entries(params)) {
      this.m[key] = saved?.m[key] ?? tf.zerosLike(p);
      this.v[key] = saved?.v[key] ?? tf.zerosLike(p);
    }
    this.step = saved?.step ?? 0;
  }

  /** Updates `params` in place (old tensors disposed), each gradient scaled by `gradScale` (one factor, or one per key). */
  apply(params: Params, grads: Record<string, tf.Tensor>, lr: number, gradScale: number | ((key: string) => number)): void {
    this.step += 1;
    const { beta1, beta2, eps, weight_decay } = this.config;
    const stepSize = lr / (1 - beta1 ** this.step);
    const sqrtBias2 = Math.sqrt(1 - beta2 ** this.step);
    const step = hasKernel('NormlabAdamW') ? fusedStep : opsStep;
    for (const key of Object.keys(params)) {
      const [p, m, v] = [params[key]!, this.m[key]!, this.v[key]!];
      const hyper: StepHyper = {
        gradScale: typeof gradScale === 'number' ? gradScale : gradScale(key),
        beta1, beta2, eps, stepSize, sqrtBias2,
        decay: weight_decay > 0 && decays(p.shape) ? 1 - lr * weight_decay : 1,
      };
      const [next, nextM, nextV] = step(p, grads[key]!, m, v, hyper);
      tf.dispose([p, m, v]);
      params[key] = next!;
      this.m[key] = nextM!;
      this.v[key] = nextV!;
    }
  }

  dispose(): void {
    tf.dispose([...Object.values(this.m), ...Object.values(this.v)]);
  }
}
