import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend/index.ts';
import { Rng } from '../src/data/rng.ts';
const rng = new Rng(2024);
const v = Float32Array.from({ length: 200000 }, () => rng.nextFloat() * 2 - 1);
let exact = 0; for (const a of v) exact += a;
for (const b of ['cpu', 'wasm'] as const) { await useBackend(b); console.log(b, tf.tensor(v).sum().dataSync()[0], 'exact', exact); }
const p = Float32Array.from({ length: 200000 }, () => 0.5 + rng.nextFloat());
exact = 0; for (const a of p) exact += a;
for (const b of ['cpu', 'wasm'] as const) { await useBackend(b); const s = tf.tensor(p).sum().dataSync()[0]; console.log(b, s, 'exact', exact, (s-exact)/exact); }
