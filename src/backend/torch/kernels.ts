// tfjs kernels of the torch backend: each entry names a kernel's inputs in the
// order native/src/kernels.cc takes them and flattens its attributes into the
// values it reads. Axes are normalized here, with tfjs's own helpers.
import * as tf from '@tensorflow/tfjs';
import type { AttrValue, TorchAddon } from './addon.ts';
import type { TorchBackend } from './backend.ts';

type Attrs = Record<string, unknown>;

interface KernelSpec {
  /** Named inputs in order, or 'list' for kernels that take an array of tensors. */
  inputs: readonly string[] | 'list';
  attrs?: (attrs: Attrs, inputs: tf.TensorInfo[]) => AttrValue[];
  /** Returns an array even for one output (split, unstack). */
  multiple?: boolean;
}

const unary: KernelSpec = { inputs: ['x'] };
const binary: KernelSpec = { inputs: ['a', 'b'] };
const axis = (value: unknown, t: tf.TensorInfo) => tf.util.parseAxisParam(value as number, t.shape)[0]!;
const reduction = (key: string): KernelSpec => ({
  inputs: ['x'],
  attrs: (a, [x]) => [tf.util.parseAxisParam(a[key] as number[], x!.shape), a.keepDims as boolean],
});
const cumulative: KernelSpec = { inputs: ['x'], attrs: (a, [x]) => [axis(a.axis, x!), a.exclusive as boolean, a.reverse as boolean] };

const UNARY = [
  'Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'Ceil', 'Cos', 'Cosh', 'Elu', 'Erf', 'Exp', 'Expm1',
  'Floor', 'IsFinite', 'IsInf', 'IsNan', 'Log', 'Log1p', 'LogicalNot', 'Neg', 'OnesLike', 'Reciprocal', 'Relu',
  'Relu6', 'Round', 'Rsqrt', 'Selu', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Softplus', 'Sqrt', 'Square', 'Tan', 'Tanh',
  'ZerosLike',
];
const BINARY = [
  'Add', 'Atan2', 'Equal', 'FloorDiv', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'LogicalAnd', 'LogicalOr',
  'Maximum', 'Minimum', 'Mod', 'Multiply', 'NotEqual', 'Pow', 'RealDiv', 'SquaredDifference', 'Sub',
];

export const KERNELS: Record<string, KernelSpec> = {
  ...Object.fromEntries(UNARY.map((name) => [name, unary])),
  ...Object.fromEntries(BINARY.map((name) => [name, binary])),
  Prelu: { inputs: ['x', 'alpha'] },
  EluGrad: { inputs: ['dy', 'y'] },
  Cast: { inputs: ['x'], attrs: (a) => [a.dtype as string] },
  ClipByValue: { inputs: ['x'], attrs: (a) => [a.clipValueMin as number, a.clipValueMax as number] },
  LeakyRelu: { inputs: ['x'], attrs: (a) => [a.alpha as number] },
  Select: { inputs: ['condition', 't', 'e'] },
  Step: { inputs: ['x'], attrs: (a) => [a.alpha as number] },
  AddN: { inputs: 'list' },

  All: reduction('axis'),
  Any: reduction('axis'),
  Max: reduction('reductionIndices'),
  Mean: reduction('axis'),
  Min: reduction('axis'),
  Prod: reduction('axis'),
  Sum: reduction('axis'),
  ArgMax: { inputs: ['x'], attrs: (a, [x]) => [axis(a.axis, x!)] },
  ArgMin: { inputs: ['x'], attrs: (a, [x]) => [axis(a.axis, x!)] },
  Cumprod: cumulative,
  Cumsum: cumulative,
  Softmax: { inputs: ['logits'], attrs: (a, [x]) => [axis(a.dim, x!)] },
  TopK: { inputs: ['x'], attrs: (a) => [a.k as number, a.sorted as boolean], multiple: true },

  TorchSigmoidGrad: { inputs: ['dy', 'y'] },
  TorchSoftmaxGrad: { inputs: ['dy', 'y'], attrs: (a, [, y]) => [axis(a.dim, y!)] },

  // normlab's fused kernels (native/src/fused.cc; JS side src/model/fused.ts, src/train/adamw.ts).
  NormlabAdamW: {
    inputs: ['param', 'grad', 'm', 'v'],
    attrs: (a) => ['gradScale', 'beta1', 'beta2', 'eps', 'decay', 'stepSize', 'sqrtBias2'].map((k) => a[k] as number),
    multiple: true,
  },
  NormlabAttention: { inputs: ['q', 'k', 'v', 'mask'], attrs: (a) => [a.scale as number, a.record as boolean] },
  NormlabAttentionGrad: { inputs: ['dy', 'out'], multiple: true },
  NormlabCrossEntropy: { inputs: ['logits', 'targets'] },
  NormlabCrossEntropyGrad: { inputs: ['dy', 'logits', 'targets'] },
  NormlabLinear: { inputs: ['x', 'weight'] },
  NormlabLinearGradX: { inputs: ['dy', 'weight'] },
  NormlabLinearGradWeight: { inputs: ['dy', 'x'] },
  NormlabMaskedSoftmax: { inputs: ['scores', 'mask'], attrs: (a) => [a.scale as number] },
  NormlabMaskedSoftmaxGrad: { inputs: ['dy', 'y'], attrs: (a) => [a.scale as number] },
  NormlabRMSNorm: { inputs: ['x', 'weight'], attrs: (a) => [a.eps as number] },
  NormlabRMSNormGradX: { inputs: ['dy', 'x', 'weight'], attrs: (a) => [a.eps as number] },
  NormlabRMSNormGradWeight: { inputs: ['dy', 'x'], attrs: (a) => [a.eps as number] },
  NormlabRope: { inputs: ['x', 'cos', 'sin'] },
  NormlabRopeGrad: { inputs: ['dy', 'cos', 'sin'] },
  NormlabSquareSums: { inputs: 'list' },
  NormlabSwiGLU: { inputs: ['gate', 'up'] },
  NormlabSwiGLUGradGate: { inputs: ['dy', 'gate', 'up'] },
  NormlabSwiGLUGradUp: { inputs: ['dy', 'gate'] },

  BatchMatMul: { inputs: ['a', 'b'], attrs: (a) => [a.transposeA as boolean, a.transposeB as boolean] },
  _FusedMatMul: {
    inputs: ['a', 'b', 'bias', 'preluActivationWeights'],
    attrs: (a) => [a.transposeA as boolean, a.transposeB as boolean, a.activation as string, (a.leakyreluAlpha as number) ?? null],
  },
  Einsum: { inputs: 'list', attrs: (a) => [a.equation as string] },

  BroadcastTo: { inputs: ['x'], attrs: (a) => [a.shape as number[]] },
  Concat: { inputs: 'list', attrs: (a, [x]) => [axis(a.axis, x!)] },
  ExpandDims: { inputs: ['input'], attrs: (a, [x]) => [(a.dim as number) < 0 ? x!.shape.length + 1 + (a.dim as number) : (a.dim as number)] },
  GatherV2: { inputs: ['x', 'indices'], attrs: (a, [x]) => [axis(a.axis, x!), a.batchDims as number] },
  OneHot: {
    inputs: ['indices'],
    attrs: (a) => [a.depth as number, a.onValue as number, a.offValue as number, (a.dtype as string) ?? 'int32'],
  },
  Pack: { inputs: 'list', attrs: (a) => [a.axis as number] },
  PadV2: { inputs: ['x'], attrs: (a) => [(a.paddings as number[][]).flat(), a.constantValue as number] },
  Reshape: { inputs: ['x'], attrs: (a) => [a.shape as number[]] },
  Reverse: { inputs: ['x'], attrs: (a, [x]) => [tf.util.parseAxisParam(a.dims as number[], x!.shape)] },
  Slice: { inputs: ['x'], attrs: (a, [x]) => tf.slice_util.parseSliceParams(x!, a.begin as number[], a.size as number[]) },
  SplitV: {
    inputs: ['x'],
    attrs: (a, [x]) => [tf.backend_util.prepareSplitSize(x!, a.numOrSizeSplits as number[], axis(a.axis, x!)), axis(a.axis, x!)],
    multiple: true,
  },
  Tile: { inputs: ['x'], attrs: (a) => [a.reps as number[]] },
  Transpose: { inputs: ['x'], attrs: (a) => [a.perm as number[]] },
  Unpack: { inputs: ['value'], attrs: (a) => [a.axis as number], multiple: true },
  UnsortedSegmentSum: { inputs: ['x', 'segmentIds'], attrs: (a) => [a.numSegments as number] },

  Fill: { inputs: [], attrs: (a) => [a.shape as number[], a.value as number, (a.dtype as string) ?? 'float32'] },
  LinSpace: { inputs: [], attrs: (a) => [a.start as number, a.stop as number, a.num as number] },
  Range: { inputs: [], attrs: (a) => [a.start as number, a.stop as number, a.step as number, (a.dtype as string) ?? 'float32'] },
};

/** c10d collectives (native/src/distributed.cc), registered when the addon has them: an addon built before them still trains one process. */
const COLLECTIVES: Record<string, KernelSpec> = {
  NormlabAllReduceSum: { inputs: 'list', multiple: true },
  NormlabBroadcast: { inputs: 'list', attrs: (a) => [a.root as number], multiple: true },
};

/** tfjs's Identity shares the input's data; no native call. */
const identity: tf.KernelFunc = ({ inputs, backend }) => {
  const x = inputs.x!;
  (backend as TorchBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

function nativeKernel(kernelName: string, spec: KernelSpec, id: number): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const list = spec.inputs === 'list' ? (inputs as unknown as tf.TensorInfo[]) : spec.inputs.map((n) => inputs[n]);
    const present = list.filter((t): t is tf.TensorInfo => t !== undefined);
    let out: tf.TensorInfo[];
    try {
      out = (backend as TorchBackend).run(id, list, spec.attrs?.(attrs ?? {}, present) ?? []);
    } catch (e) {
      throw new Error(`torch kernel ${kernelName}: ${(e as Error).message}`);
    }
    return spec.multiple ? out : out[0]!;
  };
}

/** Kernels registered only where setTorchKernel says so; tfjs's composition runs where they are absent. */
const SWITCHED = ['NormlabAttention'] as const;
export type SwitchedKernel = (typeof SWITCHED)[number];
const switched = new Map<SwitchedKernel, tf.KernelConfig>();

/** Registers kernel `name` for the torch backend (on) or removes it (off). */
export function setTorchKernel(name: SwitchedKernel, on: boolean): void {
  const config = switched.get(name)!;
  const registered = tf.getKernel(name, config.backendName) !== undefined;
  if (on && !registered) tf.registerKernel(config);
  if (!on && registered) tf.unregisterKernel(name, config.backendName);
}

/** Registers every kernel of KERNELS for `backendName` (SWITCHED ones off); one the addon lacks is a build mismatch. */
export function registerTorchKernels(backendName: string, addon: TorchAddon): void {
  const missing = Object.keys(KERNELS).filter((name) => addon.kernelId(name) < 0);
  if (missing.length) throw new Error(`the torch addon lacks kernels ${missing.join(', ')}; rebuild it: npm run install`);
  const collectives = Object.entries(COLLECTIVES).filter(([name]) => addon.kernelId(name) >= 0);
  const native = Object.fromEntries([...Object.entries(KERNELS), ...collectives].map(([name, spec]) => [name, nativeKernel(name, spec, addon.kernelId(name))]));
  const kernels: Record<string, tf.KernelFunc> = {
    ...native,
    Identity: identity,
    // tfjs casts to the dtype a tensor already has (logSoftmax, sigmoid's gradient): no native call.
    Cast: (args) => (args.inputs.x!.dtype === args.attrs!.dtype ? identity(args) : native.Cast!(args)),
  };
  for (const [kernelName, kernelFunc] of Object.entries(kernels)) {
    const config = { kernelName, backendName, kernelFunc };
    if ((SWITCHED as readonly string[]).includes(kernelName)) switched.set(kernelName as SwitchedKernel, config);
    else tf.registerKernel(config);
  }
}
