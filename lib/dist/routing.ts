// Routing generators for tests and benchmarks (plain JS, seeded, identical on every rank and machine).
//
// deepepRouting follows DeepEP's test generator: scores |N(0,1)| + 1 per (token, expert); each group
// of experts is scored by its best expert, the `topkGroups` best groups are kept, and the `topk` best
// experts inside them are chosen (DeepSeek-V3: top-8 of 256 experts in 4 of 8 groups).

/** A small, fast, seeded generator (xoshiro128**) with uniform and normal draws. */
export class Rng {
  private s = new Uint32Array(4);
  private spare: number | undefined;
  constructor(seed: number) {
    let x = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
      x = (x ^ (x >>> 16)) >>> 0;
      this.s[i] = x || 1;
    }
  }
  /** Uniform u32. */
  u32(): number {
    const s = this.s;
    const r = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ((s[3] << 11) | (s[3] >>> 21)) >>> 0;
    return r;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = 1 - this.uniform(), v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

export interface Routing {
  /** i32 [T * K], row-major. */
  indices: Int32Array;
  /** f32 [T * K]. */
  weights: Float32Array;
  tokens: number;
  topk: number;
}

export interface DeepepRoutingOptions {
  tokens: number;
  numExperts: number;
  topk: number;
  /** Expert groups (default 8) and how many of them a token may use (default 4). */
  numGroups?: number;
  topkGroups?: number;
  seed: number;
}

/** DeepEP's routing: top-k experts inside the best topkGroups groups, random positive weights. */
export function deepepRouting(o: DeepepRoutingOptions): Routing {
  const { tokens: T, numExperts: E, topk: K } = o;
  const G = o.numGroups ?? 8, TG = o.topkGroups ?? 4;
  if (E % G) throw new RangeError(`deepepRouting: numExperts ${E} is not a multiple of numGroups ${G}`);
  if (K > (E / G) * TG) throw new RangeError('deepepRouting: topk exceeds the experts of the chosen groups');
  const rng = new Rng(o.seed);
  const per = E / G;
  const indices = new Int32Array(T * K), weights = new Float32Array(T * K);
  const scores = new Float64Array(E);
  const order = new Int32Array(E);
  const gScore = new Float64Array(G);
  const gOrder = new Int32Array(G);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) scores[e] = Math.abs(rng.normal()) + 1;
    for (let g = 0; g < G; g++) {
      let m = -Infinity;
      for (let i = 0; i < per; i++) m = Math.max(m, scores[g * per + i]);
      gScore[g] = m;
      gOrder[g] = g;
    }
    gOrder.sort((a, b) => gScore[b] - gScore[a] || a - b);
    let n = 0;
    for (let gi = 0; gi < TG; gi++) for (let i = 0; i < per; i++) order[n++] = gOrder[gi] * per + i;
    const cand = order.subarray(0, n);
    cand.sort((a, b) => scores[b] - scores[a] || a - b);
    for (let k = 0; k < K; k++) {
      indices[t * K + k] = cand[k];
      weights[t * K + k] = Math.fround(0.05 + 0.95 * rng.uniform());
    }
  }
  return { indices, weights, tokens: T, topk: K };
}

export interface SkewedRoutingOptions {
  tokens: number;
  numExperts: number;
  topk: number;
  seed: number;
  /** Every token picks this expert first (default 0). */
  hotExpert?: number;
  /** Only experts in [lo, hi) are picked besides the hot one (default all): confines traffic to some ranks. */
  expertRange?: [number, number];
  /** Probability that an entry is -1 (no expert; default 0). */
  dropProb?: number;
}

/** Random distinct experts per token with one hot expert every token uses; optional -1 entries. */
export function skewedRouting(o: SkewedRoutingOptions): Routing {
  const { tokens: T, numExperts: E, topk: K } = o;
  const rng = new Rng(o.seed);
  const [lo, hi] = o.expertRange ?? [0, E];
  const hot = o.hotExpert ?? 0;
  if (hi - lo < K) throw new RangeError('skewedRouting: the expert range is smaller than topk');
  const indices = new Int32Array(T * K), weights = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const used = new Set<number>();
    for (let k = 0; k < K; k++) {
      let e: number;
      if (k === 0) e = hot;
      else do e = lo + rng.int(hi - lo); while (used.has(e));
      used.add(e);
      const drop = o.dropProb && k > 0 && rng.uniform() < o.dropProb;
      indices[t * K + k] = drop ? -1 : e;
      weights[t * K + k] = Math.fround(0.1 + rng.uniform());
    }
  }
  return { indices, weights, tokens: T, topk: K };
}
