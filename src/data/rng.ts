// A small seeded PRNG, so data order and weight init are reproducible from a
// seed and resumable from a saved state (Math.random is neither).

/** murmur3's 32-bit finalizer: a bijection that spreads every input bit over the output. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const GOLDEN = 0x9e3779b9; // 2^32 / φ, the Weyl increment of splitmix

/** A well-mixed uint32 from a tuple of integers, e.g. (seed, epoch) or (seed, document). */
export function hash32(...words: number[]): number {
  let h = GOLDEN;
  for (const w of words) h = fmix32((h ^ (w >>> 0)) + GOLDEN);
  return h;
}

/** splitmix32: a Weyl sequence through fmix32; the whole state is one uint32 (plus a spare normal). */
export class Rng {
  private s: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  nextUint32(): number {
    this.s = (this.s + GOLDEN) >>> 0;
    return fmix32(this.s);
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** Standard normal (float64) by Box-Muller; the second value of each pair is kept for the next call. */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.nextFloat())); // 1 - u is in (0, 1]: no log(0)
    const theta = 2 * Math.PI * this.nextFloat();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** JSON-safe state: [s] or [s, spare]. */
  state(): number[] {
    return this.spare === null ? [this.s] : [this.s, this.spare];
  }

  static fromState(state: number[]): Rng {
    const rng = new Rng(state[0]);
    rng.spare = state.length > 1 ? state[1] : null;
    return rng;
  }
}
