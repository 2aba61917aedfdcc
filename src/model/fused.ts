// Fused kernels: where the active backend registers a Normlab* kernel (the
// torch backend does, native/src/fused.cc), a hot composition of tfjs ops runs
// as that one kernel, and its gradient as one kernel per input. Every other
// backend runs the composition, which stays the definition: each fused kernel
// is tested against it (test/torch-backend.test.ts).
import * as tf from '@tensorflow/tfjs';

/** Whether the active backend has its own kernel `name`. */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Runs a fused kernel; recorded for gradients like any tfjs op. */
export function runFused<T extends tf.Tensor | tf.Tensor[] = tf.Tensor>(
  name: string, inputs: Record<string, tf.Tensor> | tf.Tensor[], attrs: Record<string, number> = {},
): T {
  return tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs) as T;
}

// Inputs that are constants here (RoPE tables, the mask, targets) get no gradient.
const GRADIENTS: tf.GradConfig[] = [
  {
    kernelName: 'NormlabLinear',
    inputsToSave: ['x', 'weight'],
    gradFunc: (dy, [x, weight]) => ({
      x: () => runFused('NormlabLinearGradX', { dy: dy as tf.Tensor, weight: weight! }),
      weight: () => runFused('NormlabLinearGradWeight', { dy: dy as tf.Tensor, x: x! }),
    }),
  },
  {
    kernelName: 'NormlabRMSNorm',
    inputsToSave: ['x', 'weight'],
    gradFunc: (dy, [x, weight], attrs) => ({
      x: () => runFused('NormlabRMSNormGradX', { dy: dy as tf.Tensor, x: x!, weight: weight! }, attrs as Record<string, number>),
      weight: () => runFused('NormlabRMSNormGradWeight', { dy: dy as tf.Tensor, x: x! }, attrs as Record<string, number>),
    }),
  },
  {
    kernelName: 'NormlabRope',
    inputsToSave: ['cos', 'sin'],
    gradFunc: (dy, [cos, sin]) => ({ x: () => runFused('NormlabRopeGrad', { dy: dy as tf.Tensor, cos: cos!, sin: sin! }) }),
  },
  {
    kernelName: 'NormlabSwiGLU',
    inputsToSave: ['gate', 'up'],
    gradFunc: (dy, [gate, up]) => ({
      gate: () => runFused('NormlabSwiGLUGradGate', { dy: dy as tf.Tensor, gate: gate!, up: up! }),
      up: () => runFused('NormlabSwiGLUGradUp', { dy: dy as tf.Tensor, gate: gate! }),
    }),
  },
  {
    kernelName: 'NormlabMaskedSoftmax',
    outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => ({
      scores: () => runFused('NormlabMaskedSoftmaxGrad', { dy: dy as tf.Tensor, y: y! }, attrs as Record<string, number>),
    }),
  },
  {
    // The native gradient differentiates the graph its forward recorded with the
    // output: one call for all three inputs, each thunk takes its own.
    kernelName: 'NormlabAttention',
    outputsToSave: [true],
    gradFunc: (dy, [out]) => {
      const [dq, dk, dv] = runFused<tf.Tensor[]>('NormlabAttentionGrad', { dy: dy as tf.Tensor, out: out! });
      return { q: () => dq!, k: () => dk!, v: () => dv! };
    },
  },
  {
    kernelName: 'NormlabCrossEntropy',
    inputsToSave: ['logits', 'targets'],
    gradFunc: (dy, [logits, targets]) => ({
      logits: () => runFused('NormlabCrossEntropyGrad', { dy: dy as tf.Tensor, logits: logits!, targets: targets! }),
    }),
  },
];

for (const config of GRADIENTS) tf.registerGradient(config);
