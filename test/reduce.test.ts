// The reduction step between the store and the figures (src/report/reduce.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { binOf, envelope, extent, heatBins, stepBins } from '../src/report/reduce.ts';

test('step buckets are whole steps, at most the asked number, covering first to last step', () => {
  assert.deepEqual(stepBins(1, 100_000, 492), { x0: 1, width: 204, count: 491 });
  assert.deepEqual(stepBins(1, 40, 492), { x0: 1, width: 1, count: 40 }, 'a short run keeps every step');
  const b = stepBins(10, 20_000, 200);
  assert.equal(binOf(b, 10), 0);
  assert.equal(binOf(b, 20_000), b.count - 1);
  assert.ok(b.count <= 200);
});

test('an envelope keeps each bucket\'s mean, min and max; a NaN counts as a point but breaks the line', () => {
  const steps = Float64Array.from({ length: 10 }, (_, i) => i + 1);
  const values = Float64Array.from([1, 2, 3, 100, 5, 6, NaN, NaN, 9, 10]);
  const e = envelope(steps, values, stepBins(1, 10, 5));
  assert.deepEqual([...e.x], [1.5, 3.5, 5.5, 7.5, 9.5]);
  assert.deepEqual([...e.max], [2, 100, 6, NaN, 10]);
  assert.deepEqual([...e.min], [1, 3, 5, NaN, 9]);
  assert.deepEqual([...e.mean], [1.5, 51.5, 5.5, NaN, 9.5]);
  assert.equal(e.points, 10);
});

test('a binned heatmap drops buckets no row has and counts the points it summarises', () => {
  const bins = stepBins(10, 60, 3); // width 17: buckets from 10, 27, 44
  const h = heatBins(bins, 2, [
    { bin: 0, row: 1, mean: 1, max: 2, count: 2 }, { bin: 0, row: 2, mean: 3, max: 4, count: 2 },
    { bin: 2, row: 2, mean: 5, max: 6, count: 1 },
  ]);
  assert.deepEqual(h.steps, [10, 44]);
  assert.deepEqual(h.mean, [[1, NaN], [3, 5]]);
  assert.deepEqual(h.max, [[2, NaN], [4, 6]]);
  assert.equal(h.points, 5);
});

test('extent loops over any number of values (a spread of 200,000 overflows the stack)', () => {
  const many = Float64Array.from({ length: 200_000 }, (_, i) => i - 7);
  assert.deepEqual(extent(many), [-7, 199_992]);
  assert.deepEqual(extent([NaN, Infinity, 0.5, -1], (v) => v > 0), [0.5, 0.5]);
  assert.equal(extent([NaN]), undefined);
});
