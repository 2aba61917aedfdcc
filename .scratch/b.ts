import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend/index.ts';
for (const n of ['tensorflow', 'tensorflow-gpu'] as const) { try { await useBackend(n); } catch (e) { console.log((e as Error).constructor.name, (e as Error).message); } }
console.log(await useBackend('auto'));
console.log(await useBackend('cpu'));
tf.tensor([1,2]).print();
console.log(await useBackend('wasm'));
const e = tf.variable(tf.randomNormal([10, 4]));
const g = tf.grad((x: tf.Tensor) => tf.gather(x, tf.tensor1d([1, 1, 3], 'int32')).sum())(e);
g.print();
