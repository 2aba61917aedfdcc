import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels } from '../src/backend/wasm-kernels.ts';
registerWasmKernels();

let s = 12345;
function rnd() { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 * 2 - 1; }
type Spec = { shape: number[]; dtype?: 'float32'|'int32'|'bool'; gen?: (i:number)=>number };
type Case = { name: string; inputs: Spec[]; f: (...xs: tf.Tensor[]) => tf.Tensor; diff?: number[] };
const fl = (shape: number[], gen?: (i:number)=>number): Spec => ({ shape, gen });
const pos = (shape: number[]): Spec => ({ shape, gen: () => 0.5 + Math.abs(rnd()) });
const cases: Case[] = [
  { name: 'matMul', inputs: [fl([3,4]), fl([4,5])], f: (a,b)=>tf.matMul(a,b) },
  { name: 'matMul tA', inputs: [fl([4,3]), fl([4,5])], f: (a,b)=>tf.matMul(a,b,true,false) },
  { name: 'matMul tB', inputs: [fl([3,4]), fl([5,4])], f: (a,b)=>tf.matMul(a,b,false,true) },
  { name: 'matMul tAtB', inputs: [fl([4,3]), fl([5,4])], f: (a,b)=>tf.matMul(a,b,true,true) },
  { name: 'batchMatMul r3', inputs: [fl([2,3,4]), fl([2,4,5])], f: (a,b)=>tf.matMul(a,b) },
  { name: 'batchMatMul r3 tB', inputs: [fl([2,3,4]), fl([2,5,4])], f: (a,b)=>tf.matMul(a,b,false,true) },
  { name: 'batchMatMul r3 tA', inputs: [fl([2,4,3]), fl([2,4,5])], f: (a,b)=>tf.matMul(a,b,true,false) },
  { name: 'batchMatMul r4', inputs: [fl([2,3,4,5]), fl([2,3,5,6])], f: (a,b)=>tf.matMul(a,b) },
  { name: 'batchMatMul r4 tB', inputs: [fl([2,3,4,5]), fl([2,3,6,5])], f: (a,b)=>tf.matMul(a,b,false,true) },
  { name: 'batchMatMul bcast', inputs: [fl([2,3,4]), fl([4,5])], f: (a,b)=>tf.matMul(a,b) },
  { name: 'gather', inputs: [fl([10,4]), { shape: [2,5], dtype: 'int32', gen: (i)=> (i*7)%10 }], f: (a,i)=>tf.gather(a,i), diff: [0] },
  { name: 'reshape', inputs: [fl([2,3,4])], f: a=>tf.reshape(a,[6,4]) },
  { name: 'transpose', inputs: [fl([2,3,4,5])], f: a=>tf.transpose(a,[0,2,1,3]) },
  { name: 'slice', inputs: [fl([4,6,5])], f: a=>tf.slice(a,[1,2,0],[2,3,-1]) },
  { name: 'concat', inputs: [fl([2,3]), fl([2,4])], f: (a,b)=>tf.concat([a,b],1) },
  { name: 'concat0', inputs: [fl([2,3]), fl([4,3])], f: (a,b)=>tf.concat([a,b],0) },
  { name: 'softmax', inputs: [fl([3,7])], f: a=>tf.softmax(a) },
  { name: 'logSoftmax', inputs: [fl([3,7])], f: a=>tf.logSoftmax(a) },
  { name: 'exp', inputs: [fl([3,4])], f: a=>tf.exp(a) },
  { name: 'log', inputs: [pos([3,4])], f: a=>tf.log(a) },
  { name: 'tanh', inputs: [fl([3,4])], f: a=>tf.tanh(a) },
  { name: 'sigmoid', inputs: [fl([3,4])], f: a=>tf.sigmoid(a) },
  { name: 'mul bcast', inputs: [fl([2,3,4]), fl([4])], f: (a,b)=>tf.mul(a,b) },
  { name: 'add bcast', inputs: [fl([2,3,4]), fl([3,1])], f: (a,b)=>tf.add(a,b) },
  { name: 'sub bcast', inputs: [fl([2,3,4]), fl([1,3,4])], f: (a,b)=>tf.sub(a,b) },
  { name: 'div bcast', inputs: [fl([2,3,4]), pos([2,3,1])], f: (a,b)=>tf.div(a,b) },
  { name: 'neg', inputs: [fl([3,4])], f: a=>tf.neg(a) },
  { name: 'mean', inputs: [fl([2,3,4])], f: a=>tf.mean(a,-1,true) },
  { name: 'mean all', inputs: [fl([2,3,4])], f: a=>tf.mean(a) },
  { name: 'sum', inputs: [fl([2,3,4])], f: a=>tf.sum(a,1) },
  { name: 'square', inputs: [fl([3,4])], f: a=>tf.square(a) },
  { name: 'sqrt', inputs: [pos([3,4])], f: a=>tf.sqrt(a) },
  { name: 'rsqrt', inputs: [pos([3,4])], f: a=>tf.rsqrt(a) },
  { name: 'maximum', inputs: [fl([3,4]), fl([3,4])], f: (a,b)=>tf.maximum(a,b) },
  { name: 'minimum', inputs: [fl([3,4]), fl([3,4])], f: (a,b)=>tf.minimum(a,b) },
  { name: 'oneHot', inputs: [{ shape:[5], dtype:'int32', gen: i=>i%3 }], f: i=>tf.oneHot(i as tf.Tensor1D, 4), diff: [] },
  { name: 'cast', inputs: [fl([3,4])], f: a=>tf.cast(tf.cast(a.mul(3),'int32'),'float32').add(a) },
  { name: 'where', inputs: [fl([3,4]), fl([3,4]), fl([3,4])], f: (c,a,b)=>tf.where(tf.greater(c,0), a, b), diff: [1,2] },
  { name: 'clipByValue', inputs: [fl([3,4])], f: a=>tf.clipByValue(a,-0.5,0.5) },
  { name: 'cos sin', inputs: [fl([3,4])], f: a=>tf.cos(a).add(tf.sin(a)) },
  { name: 'onesLike zerosLike', inputs: [fl([3,4])], f: a=>tf.onesLike(a).add(tf.zerosLike(a)).mul(a) },
  { name: 'stack', inputs: [fl([3,4]), fl([3,4])], f: (a,b)=>tf.stack([a,b],1) },
  { name: 'unstack', inputs: [fl([3,4])], f: a=>{ const u = tf.unstack(a,1); return u[0].mul(u[2]).add(u[3]); } },
  { name: 'abs', inputs: [fl([3,4])], f: a=>tf.abs(a) },
  { name: 'greater less', inputs: [fl([3,4]), fl([3,4])], f: (a,b)=>tf.cast(tf.greater(a,b),'float32').add(tf.cast(tf.less(a,b),'float32').mul(2)), diff: [] },
  { name: 'max', inputs: [fl([3,5])], f: a=>tf.max(a,-1) },
  { name: 'pow', inputs: [pos([3,4])], f: a=>tf.pow(a, 1.5) },
  { name: 'moments', inputs: [fl([2,3,8])], f: a=>{ const m = tf.moments(a,-1,true); return m.mean.add(m.variance.mul(2)); } },
  { name: 'sqdiff', inputs: [fl([3,4]), fl([3,4])], f: (a,b)=>tf.squaredDifference(a,b) },
  { name: 'expandDims tile', inputs: [fl([3,4])], f: a=>tf.tile(tf.expandDims(a,0),[2,1,1]) },
  { name: 'broadcastTo', inputs: [fl([1,4])], f: a=>tf.broadcastTo(a,[3,4]) },
  { name: 'split', inputs: [fl([3,8])], f: a=>{ const [p,q] = tf.split(a,2,-1); return p.mul(q); } },
  { name: 'pad', inputs: [fl([3,4])], f: a=>tf.pad(a,[[1,0],[0,2]]) },
  { name: 'norm', inputs: [fl([3,4])], f: a=>tf.norm(a) },
  { name: 'relu', inputs: [fl([3,4])], f: a=>tf.relu(a) },
  { name: 'silu', inputs: [fl([3,4])], f: a=>a.mul(tf.sigmoid(a)) },
  { name: 'argMax', inputs: [fl([3,7])], f: a=>tf.cast(tf.argMax(a,-1),'float32'), diff: [] },
  { name: 'int32 slice gather', inputs: [fl([50,8]), { shape:[4,9], dtype:'int32', gen: i=>(i*13)%50 }], f: (e,t)=>tf.gather(e, tf.slice(t,[0,0],[4,8])), diff: [0] },
  { name: 'gather big', inputs: [fl([1000,64]), { shape:[8,64], dtype:'int32', gen: i=>(i*37)%1000 % 200 }], f: (e,t)=>tf.gather(e,t), diff: [0] },
  { name: 'matMul big', inputs: [fl([128,256]), fl([384,256])], f: (a,b)=>tf.matMul(a,b,false,true) },
  { name: 'attn big', inputs: [fl([4,4,64,32]), fl([4,4,64,32])], f: (q,k)=>tf.softmax(tf.matMul(q,k,false,true).div(Math.sqrt(32))) },
  { name: 'logSoftmax wide', inputs: [fl([16,5000])], f: a=>tf.logSoftmax(a.mul(5)) },
  { name: 'sum big', inputs: [fl([200000])], f: a=>tf.sum(a).reshape([1]) },
  { name: 'mean axis0 big', inputs: [fl([1024,64])], f: a=>tf.mean(a,0) },
  { name: 'isFinite', inputs: [fl([3,4])], f: a=>tf.cast(tf.isFinite(a.div(0.0)),'float32'), diff: [] },
  { name: 'where bcast', inputs: [fl([2,3,4,4])], f: a=>{ const m = tf.greaterEqual(tf.range(0,4).reshape([4,1]), tf.range(0,4).reshape([1,4])); return tf.softmax(tf.where(m, a, tf.fill([2,3,4,4], -1e9))); } },
  { name: 'xent', inputs: [fl([6,11]), { shape:[6], dtype:'int32', gen: i=>(i*5)%11 }], f: (l,t)=>tf.neg(tf.mean(tf.sum(tf.logSoftmax(l).mul(tf.oneHot(t as tf.Tensor1D, 11)),-1))).reshape([1]), diff: [0] },
  { name: 'linear band', inputs: [fl([4,4])], f: a=>tf.linalg.bandPart(a,-1,0) },
];

async function run(backend: string, c: Case) {
  await tf.setBackend(backend);
  s = 999;
  const xs = c.inputs.map(sp => {
    const n = sp.shape.reduce((a,b)=>a*b,1);
    const vals = Array.from({length:n}, (_, i) => sp.gen ? sp.gen(i) : rnd());
    return tf.tensor(vals, sp.shape, sp.dtype ?? 'float32');
  });
  const y = c.f(...xs);
  const w = tf.tensor(Array.from({length: y.size}, () => rnd()), y.shape);
  const diff = c.diff ?? xs.map((_, i) => i);
  const out = [await y.data()];
  if (diff.length) {
    const g = tf.grads((...d: tf.Tensor[]) => { const a = xs.slice(); diff.forEach((k, j) => a[k] = d[j]); return c.f(...a).mul(w).sum(); });
    const gs = g(diff.map(k => xs[k]));
    for (const t of gs) out.push(await t.data());
  }
  return out;
}
for (const c of cases) {
  try {
    const a = await run('cpu', c);
    let b;
    try { b = await run('wasm', c); } catch (e) { console.log('FAIL', c.name, (e as Error).message); continue; }
    let worst = 0;
    a.forEach((arr, k) => arr.forEach((v, i) => { const d = Math.abs(v - b[k][i]) / Math.max(1, Math.abs(v)); worst = Math.max(worst, d); }));
    console.log(worst > 1e-5 ? 'WRONG' : 'ok   ', c.name, worst.toExponential(2));
  } catch (e) { console.log('CPUFAIL', c.name, (e as Error).message); }
}
