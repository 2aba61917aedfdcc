// The page's one door to the reduction step (src/report/reduce.ts, shared with
// the SVG/PNG figures): a line becomes at most one point per pixel column, a
// block × step grid at most a few hundred step columns.
// TODO(#22): until reduce.ts lands on main this passes series through unreduced.

/** A reduced line: per point its step, the mean, min and max of the steps it stands for. */
export interface Line {
  x: ArrayLike<number>;
  mean: ArrayLike<number>;
  min: ArrayLike<number>;
  max: ArrayLike<number>;
  /** The most steps one point stands for (1: not reduced). */
  stepsPerPoint: number;
}

export interface Grid {
  steps: number[];
  /** values[block − 1][column]. */
  values: number[][];
  stepsPerColumn: number;
}

export function reduceLine(steps: number[], values: ArrayLike<number>): Line {
  return { x: steps, mean: values, min: values, max: values, stepsPerPoint: 1 };
}

export function reduceGrid(rows: { step: number; layer: number; value: number }[], layers: number): Grid {
  const steps = [...new Set(rows.map((r) => r.step))].sort((a, b) => a - b);
  const column = new Map(steps.map((s, i) => [s, i]));
  const values = Array.from({ length: layers }, () => new Array<number>(steps.length).fill(NaN));
  for (const r of rows) if (r.layer >= 1 && r.layer <= layers) values[r.layer - 1]![column.get(r.step)!] = r.value;
  return { steps, values, stepsPerColumn: 1 };
}
