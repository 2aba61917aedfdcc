// Gradients that tfjs computes with several full-size ops, or with a ones()
// array built in JS and uploaded, and that ATen does in one kernel or a view.
// tfjs keeps one gradient per kernel name for all backends, so each override
// defers to tfjs's own unless torch is the active backend.
import * as tf from '@tensorflow/tfjs';

/**
 * dy broadcast back over the reduced axes of x: a view on torch, where tfjs
 * multiplies by ones(x.shape). (tf.broadcastTo would copy: it runs Tile.)
 */
function expandOverReduced(dy: tf.Tensor, x: tf.Tensor, axis: unknown): tf.Tensor {
  const shape = x.shape.slice();
  for (const a of tf.util.parseAxisParam(axis as number[], x.shape)) shape[a] = 1;
  return tf.engine().runKernel('BroadcastTo', { x: dy.reshape(shape) }, { shape: x.shape, inputShape: shape }) as tf.Tensor;
}

const overrides: Record<string, tf.GradFunc> = {
  Sum: (dy, [x], attrs) => ({ x: () => expandOverReduced(dy as tf.Tensor, x!, attrs.axis) }),
  Mean: (dy, [x], attrs) => {
    const count = x!.size / (dy as tf.Tensor).size;
    return { x: () => expandOverReduced(dy as tf.Tensor, x!, attrs.axis).div(count) };
  },
  Sigmoid: (dy, [y]) => ({ x: () => tf.engine().runKernel('TorchSigmoidGrad', { dy: dy as tf.Tensor, y: y! }) as tf.Tensor }),
  Softmax: (dy, [y], attrs) => ({
    logits: () => tf.engine().runKernel('TorchSoftmaxGrad', { dy: dy as tf.Tensor, y: y! }, attrs) as tf.Tensor,
  }),
};

let registered = false;

/** Installs the overrides once; they take effect while 'torch' is the active backend. */
export function registerTorchGradients(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, torchGrad] of Object.entries(overrides)) {
    const tfjs = tf.getGradient(kernelName);
    tf.registerGradient({
      ...tfjs,
      gradFunc: (dy, saved, attrs) => (tf.getBackend() === 'torch' ? torchGrad : tfjs.gradFunc)(dy, saved, attrs),
    });
  }
}
