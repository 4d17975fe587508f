// MoE ops: the CPU reference against float64 / exact JS references written here, every device against
// those, and CUDA against the CPU bit for bit (routing, layout, unpermute).
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { hasCuda, testDevices } from './helpers/devices';

type Dev = 'cpu' | 'cuda:0';
type GateCfg = Omit<dsk.ops.MoeGateOptions, 'bias'>;

// Model configurations (HF config.json: scoring_func, num_experts_per_tok, n_group, topk_group,
// norm_topk_prob, routed_scaling_factor).
const V3: GateCfg = { scoring: 'sigmoid', topk: 8, nGroup: 8, topkGroup: 4, normTopk: true, routedScale: 2.5 };
const V2_LITE: GateCfg = { scoring: 'softmax', topk: 6 };
const V2: GateCfg = { scoring: 'softmax', topk: 6, nGroup: 8, topkGroup: 3, routedScale: 16 };
const ODD: GateCfg = { scoring: 'sigmoid', topk: 5, nGroup: 6, topkGroup: 2, groupScore: 'max', normTopk: true, routedScale: 1.5 };

const f32bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// ---------------------------------------------------------------------------------------------------
// float64 reference of the gate, written from the definition (DeepSeek-V3 inference/model.py Gate).

/** Gaps below this between different f64 scores are near-ties that f32 rounding may order either way. */
const NEAR = 2e-6;
const nearTie = (a: number, b: number) => a !== b && Math.abs(a - b) < NEAR;

interface RefToken {
  indices: number[];
  s: Float64Array;
  /** A decision of the reference rests on a near-tie, so f32 may legitimately pick otherwise. */
  ambiguous: boolean;
}

function refGateToken(l: ArrayLike<number>, bias: ArrayLike<number> | null, E: number, cfg: GateCfg): RefToken {
  const s = new Float64Array(E);
  if (cfg.scoring === 'softmax') {
    let m = -Infinity;
    for (let e = 0; e < E; e++) m = Math.max(m, l[e]);
    let sum = 0;
    for (let e = 0; e < E; e++) sum += Math.exp(l[e] - m);
    for (let e = 0; e < E; e++) s[e] = Math.exp(l[e] - m) / sum;
  } else {
    for (let e = 0; e < E; e++) s[e] = 1 / (1 + Math.exp(-l[e]));
  }
  const sel = Float64Array.from(s, (v, e) => v + (bias ? bias[e] : 0));
  const byScore = (v: ArrayLike<number>) => (a: number, b: number) => (v[b] !== v[a] ? v[b] - v[a] : a - b);
  const G = cfg.nGroup ?? 1, per = E / G;
  const mode = cfg.groupScore ?? (cfg.scoring === 'sigmoid' ? 'top2sum' : 'max');
  let ambiguous = false;
  let groups = [...Array(G).keys()];
  if (G > 1) {
    const gs = groups.map((g) => {
      const v = Array.from(sel.subarray(g * per, (g + 1) * per)).sort((a, b) => b - a);
      return mode === 'top2sum' ? v[0] + v[1] : v[0];
    });
    const order = groups.slice().sort(byScore(gs));
    const kg = cfg.topkGroup ?? 1;
    if (kg < G && nearTie(gs[order[kg - 1]], gs[order[kg]])) ambiguous = true;
    groups = order.slice(0, kg);
  }
  const cand = groups.flatMap((g) => [...Array(per).keys()].map((i) => g * per + i)).sort(byScore(sel));
  for (let j = 0; j < cfg.topk && j + 1 < cand.length; j++) if (nearTie(sel[cand[j]], sel[cand[j + 1]])) ambiguous = true;
  return { indices: cand.slice(0, cfg.topk), s, ambiguous };
}

/** f64 weights of the experts a device chose: s, normalized over the chosen set, scaled. */
function refWeights(s: Float64Array, idx: ArrayLike<number>, cfg: GateCfg): number[] {
  const w = Array.from(idx, (e) => s[e]);
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((v) => (cfg.normTopk ? v / sum : v) * (cfg.routedScale ?? 1));
}

async function gateOn(device: Dev, logits: dsk.Tensor, bias: dsk.Tensor | null, cfg: GateCfg) {
  const l = logits.to(device);
  const b = bias?.to(device);
  const { indices, weights } = dsk.ops.moeGate(l, { ...cfg, ...(b ? { bias: b } : {}) });
  return { indices: (await indices.toArray()) as Int32Array, weights: (await weights.toArray()) as Float32Array };
}

/** Compares a device's routing with the f64 reference; returns the number of near-tie tokens. */
function checkAgainstRef(l: Float32Array, b: Float32Array | null, T: number, E: number, cfg: GateCfg,
  got: { indices: Int32Array; weights: Float32Array }): number {
  const k = cfg.topk;
  const bad: string[] = [];
  let ambiguous = 0;
  for (let t = 0; t < T; t++) {
    const ref = refGateToken(l.subarray(t * E, (t + 1) * E), b, E, cfg);
    const idx = Array.from(got.indices.subarray(t * k, (t + 1) * k));
    if (new Set(idx).size !== k || idx.some((e) => e < 0 || e >= E)) bad.push(`token ${t}: invalid indices ${idx}`);
    if (ref.ambiguous) ambiguous++;
    else if (idx.join() !== ref.indices.join()) bad.push(`token ${t}: indices ${idx} != reference ${ref.indices}`);
    const w = refWeights(ref.s, idx, cfg);
    for (let j = 0; j < k; j++) {
      const g = got.weights[t * k + j];
      if (!(Math.abs(g - w[j]) <= 1e-6 * Math.abs(w[j]) + 1e-30)) bad.push(`token ${t} slot ${j}: weight ${g} != ${w[j]}`);
    }
    if (bad.length > 10) break;
  }
  expect(bad).toEqual([]);
  return ambiguous;
}

// ---------------------------------------------------------------------------------------------------

describe.each(testDevices)('moeGate on %s', (device) => {
  const cases: [string, GateCfg, number, boolean][] = [
    ['DeepSeek-V3', V3, 256, true],
    ['DeepSeek-V2-Lite', V2_LITE, 64, false],
    ['DeepSeek-V2', V2, 160, false],
    ['odd groups (max score, bias)', ODD, 72, true],
  ];
  for (const [name, cfg, E, withBias] of cases) {
    it(`matches float64 routing: ${name}`, async () => {
      const T = 300;
      const logits = dsk.randn([T, E], { seed: 101 + E, std: 1.5 });
      const bias = withBias ? dsk.randn([E], { seed: 202 + E, std: 0.1 }) : null;
      const got = await gateOn(device, logits, bias, cfg);
      const l = (await logits.toArray()) as Float32Array;
      const b = bias ? ((await bias.toArray()) as Float32Array) : null;
      const ambiguous = checkAgainstRef(l, b, T, E, cfg, got);
      expect(ambiguous).toBeLessThan(T * 0.02);
    });
  }

  it('bias steers selection but not the weights', async () => {
    // A large bias on expert 5 forces it in; its weight is still its unbiased sigmoid score.
    const T = 16, E = 32;
    const logits = dsk.randn([T, E], { seed: 7 });
    const biasArr = new Float32Array(E);
    biasArr[5] = 10;
    const cfg: GateCfg = { scoring: 'sigmoid', topk: 4 };
    const got = await gateOn(device, logits, dsk.tensor(biasArr), cfg);
    const l = (await logits.toArray()) as Float32Array;
    for (let t = 0; t < T; t++) {
      expect(got.indices[t * 4]).toBe(5);
      expect(got.weights[t * 4]).toBeCloseTo(1 / (1 + Math.exp(-l[t * E + 5])), 6);
    }
    checkAgainstRef(l, biasArr, T, E, cfg, got);
  });

  it('equal scores resolve to the lower index', async () => {
    // All logits equal: experts 0..k-1 in order, equal weights.
    const T = 3;
    const eq = await gateOn(device, dsk.full([T, 256], 0.25), dsk.zeros([256]), V3);
    const first8 = [0, 1, 2, 3, 4, 5, 6, 7];
    expect(Array.from(eq.indices)).toEqual([...first8, ...first8, ...first8]);
    for (const w of eq.weights) expect(w).toBeCloseTo(2.5 / 8, 6);
    const eq2 = await gateOn(device, dsk.full([2, 64], -1.5), null, V2_LITE);
    expect(Array.from(eq2.indices)).toEqual([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    for (const w of eq2.weights) expect(w).toBeCloseTo(1 / 64, 8);

    // Every group holds a permutation of the same 32 values: all group scores tie (groups 0..3 are
    // kept), and each value appears once per group, so each rank goes to groups 0, 1, 2, 3 in order.
    const base = (await dsk.randn([32], { seed: 9 }).toArray()) as Float32Array;
    const Tg = 4, l = new Float32Array(Tg * 256);
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let t = 0; t < Tg; t++)
      for (let g = 0; g < 8; g++) {
        const perm = [...Array(32).keys()].sort(() => rnd() - 0.5);
        for (let i = 0; i < 32; i++) l[t * 256 + g * 32 + i] = base[perm[i]];
      }
    const got = await gateOn(device, dsk.tensor(l, { shape: [Tg, 256] }), dsk.zeros([256]), V3);
    const order = [...Array(32).keys()].sort((a, b) => base[b] - base[a]);
    for (let t = 0; t < Tg; t++) {
      const expected: number[] = [];
      for (const v of order.slice(0, 2))
        for (let g = 0; g < 4; g++) expected.push(g * 32 + [...Array(32).keys()].find((i) => l[t * 256 + g * 32 + i] === base[v])!);
      expect(Array.from(got.indices.subarray(t * 8, t * 8 + 8))).toEqual(expected);
      expect(refGateToken(l.subarray(t * 256, (t + 1) * 256), null, 256, V3).indices).toEqual(expected);
    }

    // Quantized softmax logits: many exact ties, resolved like the reference (no near-ties here).
    const q = Float32Array.from((await dsk.randn([50 * 64], { seed: 10 }).toArray()) as Float32Array, (v) => Math.round(v * 4) / 4);
    const gq = await gateOn(device, dsk.tensor(q, { shape: [50, 64] }), null, V2_LITE);
    expect(checkAgainstRef(q, null, 50, 64, V2_LITE, gq)).toBe(0);
  });

  it('routes T = 0 and T = 1', async () => {
    const none = dsk.ops.moeGate(dsk.empty([0, 256]).to(device), { ...V3, bias: dsk.zeros([256]).to(device) });
    expect(none.indices.shape).toEqual([0, 8]);
    expect(none.weights.shape).toEqual([0, 8]);
    expect((await none.indices.toArray()).length).toBe(0);
    const logits = dsk.randn([1, 256], { seed: 3 });
    const bias = dsk.randn([256], { seed: 4, std: 0.05 });
    const one = await gateOn(device, logits, bias, V3);
    checkAgainstRef((await logits.toArray()) as Float32Array, (await bias.toArray()) as Float32Array, 1, 256, V3, one);
  });

  it('gives valid, distinct indices for NaN and infinite logits', async () => {
    const T = 8, E = 64;
    const l = (await dsk.randn([T * E], { seed: 5 }).toArray()) as Float32Array;
    const special = [NaN, Infinity, -Infinity, 1e30, -1e30, -0, 0, 88.8, -104, 3.4e38];
    for (let i = 0; i < l.length; i += 3) l[i] = special[(i / 3) % special.length];
    for (const cfg of [V3, V2_LITE, V2] as GateCfg[]) {
      const E2 = cfg === V3 ? 256 : cfg === V2 ? 160 : E;
      const ll = new Float32Array(T * E2).map((_, i) => l[i % l.length]);
      const got = await gateOn(device, dsk.tensor(ll, { shape: [T, E2] }), cfg === V3 ? dsk.zeros([E2]) : null, cfg);
      for (let t = 0; t < T; t++) {
        const idx = Array.from(got.indices.subarray(t * cfg.topk, (t + 1) * cfg.topk));
        expect(new Set(idx).size).toBe(cfg.topk);
        for (const e of idx) expect(e >= 0 && e < E2).toBe(true);
      }
    }
  });

  it('rejects bad arguments before enqueueing', () => {
    const l = dsk.randn([4, 64], { device });
    const ok: GateCfg = { scoring: 'sigmoid', topk: 4 };
    expect(() => dsk.ops.moeGate(l.cast('bf16'), ok)).toThrow(/moeGate: logits must have dtype f32/);
    expect(() => dsk.ops.moeGate(dsk.randn([64], { device }), ok)).toThrow(/moeGate: logits must have 2 dims/);
    expect(() => dsk.ops.moeGate(l, undefined as unknown as GateCfg)).toThrow(TypeError);
    expect(() => dsk.ops.moeGate(l, { ...ok, scoring: 'relu' as 'sigmoid' })).toThrow(/moeGate: options.scoring must be one of/);
    expect(() => dsk.ops.moeGate(l, { ...ok, topk: 0 })).toThrow(RangeError);
    expect(() => dsk.ops.moeGate(l, { ...ok, topk: 33 })).toThrow(/options.topk/);
    expect(() => dsk.ops.moeGate(l, { ...ok, topk: 2.5 })).toThrow(/options.topk must be an integer/);
    expect(() => dsk.ops.moeGate(dsk.randn([4, 3], { device }), ok)).toThrow(/options.topk must be <= 3/);
    expect(() => dsk.ops.moeGate(l, { ...ok, nGroup: 5 })).toThrow(/nGroup \(5\) must divide/);
    expect(() => dsk.ops.moeGate(l, { ...ok, nGroup: 128 })).toThrow(/options.nGroup must be <= 64/);
    expect(() => dsk.ops.moeGate(l, { ...ok, nGroup: 4, topkGroup: 5 })).toThrow(/options.topkGroup must be <= 4/);
    expect(() => dsk.ops.moeGate(l, { ...ok, nGroup: 64, topkGroup: 8 })).toThrow(/'top2sum' needs at least 2 experts per group/);
    expect(() => dsk.ops.moeGate(l, { ...ok, topk: 8, nGroup: 16, topkGroup: 1 })).toThrow(/options.topk \(8\) must be at most topkGroup/);
    expect(() => dsk.ops.moeGate(l, { ...ok, routedScale: Infinity })).toThrow(/options.routedScale must be finite/);
    expect(() => dsk.ops.moeGate(l, { ...ok, normTopk: 1 as unknown as boolean })).toThrow(/options.normTopk must be a boolean/);
    expect(() => dsk.ops.moeGate(l, { ...ok, bias: dsk.randn([63], { device }) })).toThrow(/options.bias.shape\[0\] must be 64/);
    expect(() => dsk.ops.moeGate(l, { ...ok, bias: dsk.randn([64], { device }).cast('bf16') })).toThrow(/options.bias must have dtype f32/);
    expect(() => dsk.ops.moeGate(dsk.randn([2, 5000], { device }), ok)).toThrow(/experts\) must be in \[1, 4096\]/);
    const gone = dsk.randn([4, 64], { device });
    gone.dispose();
    expect(() => dsk.ops.moeGate(gone, ok)).toThrow(/moeGate: logits has been disposed/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe.each(testDevices)('moeCount and moeBiasUpdate on %s', (device) => {
  it('counts tokens per expert', async () => {
    const E = 256, idx = dsk.randint([1000, 8], 0, E, { seed: 21 });
    const got = (await dsk.ops.moeCount(idx.to(device), E).toArray()) as Int32Array;
    const ref = new Int32Array(E);
    for (const e of (await idx.toArray()) as Int32Array) ref[e]++;
    expect(Array.from(got)).toEqual(Array.from(ref));
    const empty = (await dsk.ops.moeCount(dsk.empty([0, 8], { dtype: 'i32', device }), 5).toArray()) as Int32Array;
    expect(Array.from(empty)).toEqual([0, 0, 0, 0, 0]);
  });

  it('an expert id out of range makes the next read reject', async () => {
    const idx = dsk.tensor([[1, 2], [7, 3]], { dtype: 'i32', device });
    const counts = dsk.ops.moeCount(idx, 4);
    await expect(counts.toArray()).rejects.toThrow(/moe: indices contains 7, outside the valid range \[0, 4\)/);
    expect(Array.from((await counts.toArray()) as Int32Array)).toEqual([0, 1, 1, 1]);
  });

  it('moves the bias against the load (sign of mean - load, 0 at the mean)', async () => {
    const E = 64;
    const bias = dsk.randn([E], { seed: 31, std: 0.01 });
    const loadArr = (await dsk.randint([E], 0, 40, { seed: 32 }).toArray()) as Int32Array;
    loadArr[3] = 0;
    // Loads equal to the mean (exactly 20 after adjusting load[12]) leave the bias unchanged.
    loadArr[10] = 20;
    loadArr[11] = 20;
    const total = loadArr.reduce((a, b) => a + b, 0);
    loadArr[12] += E * 20 - total;
    expect(loadArr[12]).toBeGreaterThanOrEqual(0);
    const load = dsk.tensor(loadArr, { dtype: 'i32' });
    const gamma = 0.001;
    const b = (await bias.toArray()) as Float32Array;
    const mean = loadArr.reduce((a, x) => a + x, 0) / E;
    const expected = Float32Array.from(b, (v, e) => Math.fround(v + Math.fround(gamma) * Math.sign(mean - loadArr[e])));
    const got = (await dsk.ops.moeBiasUpdate(bias.to(device), load.to(device), { gamma }).toArray()) as Float32Array;
    expect(Array.from(f32bits(got))).toEqual(Array.from(f32bits(expected)));
    expect(got[10]).toBe(b[10]);
    expect(got[3]).toBe(Math.fround(b[3] + Math.fround(gamma)));

    const inPlace = bias.to(device).clone();
    const ret = dsk.ops.moeBiasUpdate(inPlace, load.to(device), { gamma, inPlace: true });
    expect(ret).toBe(inPlace);
    expect(Array.from(f32bits((await inPlace.toArray()) as Float32Array))).toEqual(Array.from(f32bits(expected)));
  });

  it('rejects bad arguments before enqueueing', () => {
    const idx = dsk.randint([4, 2], 0, 8, { device });
    expect(() => dsk.ops.moeCount(idx.cast('f32'), 8)).toThrow(/moeCount: indices must have dtype i32/);
    expect(() => dsk.ops.moeCount(idx, 0)).toThrow(/moeCount: numExperts must be >= 1/);
    expect(() => dsk.ops.moeCount(idx, 1.5)).toThrow(/numExperts must be an integer/);
    const bias = dsk.zeros([8], { device }), load = dsk.zeros([8], { dtype: 'i32', device });
    expect(() => dsk.ops.moeBiasUpdate(bias, load, { gamma: NaN })).toThrow(/moeBiasUpdate: options.gamma must be a number/);
    expect(() => dsk.ops.moeBiasUpdate(bias, load, {} as { gamma: number })).toThrow(/options.gamma/);
    expect(() => dsk.ops.moeBiasUpdate(bias, load.cast('f32'), { gamma: 1e-3 })).toThrow(/tokensPerExpert must have dtype i32/);
    expect(() => dsk.ops.moeBiasUpdate(bias, dsk.zeros([7], { dtype: 'i32', device }), { gamma: 1e-3 })).toThrow(/tokensPerExpert.shape\[0\] must be 8/);
    expect(() => dsk.ops.moeBiasUpdate(bias.cast('bf16'), load, { gamma: 1e-3 })).toThrow(/bias must have dtype f32/);
    expect(() => dsk.ops.moeBiasUpdate(dsk.zeros([8, 2], { device }).select(1, 0), load, { gamma: 1e-3, inPlace: true })).toThrow(/contiguous/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Permute: an exact JS reference of the layout (stable counting sort, padded segments).

interface RefLayout {
  rows: number;
  counts: number[];
  offsets: number[];
  map: number[];
  mIndices: number[];
  rowToken: number[];
}

function refLayout(idx: Int32Array, T: number, k: number, E: number, align: number): RefLayout {
  const counts = new Array<number>(E).fill(0);
  for (const e of idx) if (e >= 0 && e < E) counts[e]++;
  const offsets = [0];
  for (let e = 0; e < E; e++) offsets.push(offsets[e] + Math.ceil(counts[e] / align) * align);
  const rows = dsk.ops.moePermuteRows(T, k, E, align);
  const map = new Array<number>(T * k).fill(-1), mIndices = new Array<number>(rows).fill(-1), rowToken = new Array<number>(rows).fill(-1);
  const next = offsets.slice(0, E);
  for (let i = 0; i < T * k; i++) {
    const e = idx[i];
    if (e < 0 || e >= E) continue;
    const r = next[e]++;
    map[i] = r;
    mIndices[r] = e;
    rowToken[r] = Math.floor(i / k);
  }
  return { rows, counts, offsets, map, mIndices, rowToken };
}

async function checkLayout(p: dsk.ops.MoePermuted, x: dsk.Tensor, idx: Int32Array, T: number, k: number, E: number, align: number,
  scale?: dsk.Tensor) {
  const ref = refLayout(idx, T, k, E, align);
  const D = x.shape[1];
  expect(p.x.shape).toEqual([ref.rows, D]);
  expect(p.x.dtype).toBe(x.dtype);
  expect(Array.from((await p.counts.toArray()) as Int32Array)).toEqual(ref.counts);
  const offsets = Array.from((await p.offsets.toArray()) as Int32Array);
  expect(offsets).toEqual(ref.offsets);
  const map = Array.from((await p.map.toArray()) as Int32Array);
  expect(map).toEqual(ref.map);
  const mIndices = Array.from((await p.mIndices.toArray()) as Int32Array);
  expect(mIndices).toEqual(ref.mIndices);

  // Invariants, stated directly: aligned segments, every (t, j) once, the row's expert is the slot's.
  expect(ref.rows % align).toBe(0);
  for (let e = 0; e < E; e++) {
    expect(offsets[e] % align).toBe(0);
    expect(offsets[e + 1] - offsets[e]).toBe(Math.ceil(ref.counts[e] / align) * align);
  }
  expect(offsets[E]).toBeLessThanOrEqual(ref.rows);
  const valid = map.filter((r) => r >= 0);
  expect(new Set(valid).size).toBe(valid.length);
  for (let i = 0; i < T * k; i++) if (map[i] >= 0) expect(mIndices[map[i]]).toBe(idx[i]);
  expect(mIndices.filter((e) => e >= 0).length).toBe(valid.length);

  // Rows in use: the token's row bit for bit (padding rows are unspecified and not checked).
  const xr = await x.toArray({ raw: true });
  const pr = await p.x.toArray({ raw: true });
  let badRows = 0;
  for (let r = 0; r < ref.rows; r++) {
    const t = ref.rowToken[r];
    if (t < 0) continue;
    for (let d = 0; d < D; d++) if (pr[r * D + d] !== xr[t * D + d]) { badRows++; break; }
  }
  expect(badRows).toBe(0);
  if (scale) {
    const S = scale.shape[1];
    const sr = (await scale.toArray()) as Float32Array;
    const ps = (await p.scale!.toArray()) as Float32Array;
    expect(p.scale!.shape).toEqual([ref.rows, S]);
    let badScale = 0;
    for (let r = 0; r < ref.rows; r++)
      for (let c = 0; c < S; c++) if (ref.rowToken[r] >= 0 && ps[r * S + c] !== sr[ref.rowToken[r] * S + c]) badScale++;
    expect(badScale).toBe(0);
  } else {
    expect(p.scale).toBeUndefined();
  }
}

/** Routing where one expert takes most slots and many experts get none. */
function skewedIndices(T: number, k: number, E: number, seed: number): Int32Array {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return Int32Array.from({ length: T * k }, () => (rnd() < 0.7 ? 3 : Math.floor(rnd() * Math.min(E, 12))));
}

describe.each(testDevices)('moePermute and moeUnpermute on %s', (device) => {
  it('builds the grouped layout for gate routing (fp8 rows with scales)', async () => {
    const T = 200, E = 256, D = 512;
    const logits = dsk.randn([T, E], { seed: 41 });
    const { indices } = dsk.ops.moeGate(logits.to(device), { ...V3, bias: dsk.zeros([E], { device }) });
    const x = dsk.randn([T, D], { seed: 42 }).cast('fp8e4m3');
    const scale = dsk.rand([T, D / 128], { seed: 43, low: 0.001, high: 0.01 });
    const p = dsk.ops.moePermute(x.to(device), indices, { numExperts: E, scale: scale.to(device) });
    await checkLayout(p, x, (await indices.toArray()) as Int32Array, T, 8, E, 128, scale);
  });

  it('handles skewed routing, empty experts, repeated experts and other alignments', async () => {
    for (const [dtype, D, align] of [['bf16', 72, 128], ['f32', 13, 1], ['bf16', 256, 16], ['u8', 5, 8]] as const) {
      const T = 150, k = 6, E = 40;
      const idxArr = skewedIndices(T, k, E, 7 + D);
      const x = dsk.randn([T, D], { seed: 44 + D }).cast(dtype);
      const p = dsk.ops.moePermute(x.to(device), dsk.tensor(idxArr, { shape: [T, k], device }), { numExperts: E, align });
      await checkLayout(p, x, idxArr, T, k, E, align);
      const counts = (await p.counts.toArray()) as Int32Array;
      expect(counts[3]).toBeGreaterThan(T * k * 0.6);
      expect(counts.filter((c) => c === 0).length).toBeGreaterThan(20);
    }
  });

  it('handles T = 0 and T = 1', async () => {
    const p0 = dsk.ops.moePermute(dsk.empty([0, 256], { dtype: 'bf16', device }), dsk.empty([0, 8], { dtype: 'i32', device }), { numExperts: 16 });
    expect(p0.x.shape).toEqual([0, 256]);
    expect(p0.mIndices.shape).toEqual([0]);
    expect(p0.map.shape).toEqual([0, 8]);
    expect(Array.from((await p0.counts.toArray()) as Int32Array)).toEqual(new Array(16).fill(0));
    expect(Array.from((await p0.offsets.toArray()) as Int32Array)).toEqual(new Array(17).fill(0));
    const y0 = dsk.ops.moeUnpermute(p0.x, p0.map, dsk.empty([0, 8], { device }));
    expect(y0.shape).toEqual([0, 256]);
    expect((await y0.toArray()).length).toBe(0);

    const x = dsk.randn([1, 256], { seed: 45 }).cast('bf16');
    const idxArr = Int32Array.from([9, 2, 15, 0, 2, 7, 3, 11]);
    const p1 = dsk.ops.moePermute(x.to(device), dsk.tensor(idxArr, { shape: [1, 8], device }), { numExperts: 16 });
    expect(p1.x.shape[0]).toBe(8 * 128);
    await checkLayout(p1, x, idxArr, 1, 8, 16, 128);
  });

  it('permute -> identity -> unpermute gives sum_j w_j x (float64 and exact f32 order)', async () => {
    const T = 120, k = 8, E = 64, N = 96;
    const logits = dsk.randn([T, E], { seed: 51 });
    const { indices, weights } = dsk.ops.moeGate(logits.to(device), { scoring: 'sigmoid', topk: k, nGroup: 8, topkGroup: 4, normTopk: true, routedScale: 2.5, bias: dsk.zeros([E], { device }) });
    for (const xdt of ['f32', 'bf16'] as const) {
      const x = dsk.randn([T, N], { seed: 52 }).cast(xdt);
      const p = dsk.ops.moePermute(x.to(device), indices, { numExperts: E, align: 32 });
      const xs = (await x.toArray()) as Float32Array;
      const w = (await weights.toArray()) as Float32Array;
      for (const odt of ['f32', 'bf16'] as const) {
        const out = dsk.ops.moeUnpermute(p.x, p.map, weights, { outDtype: odt });
        expect(out.shape).toEqual([T, N]);
        expect(out.dtype).toBe(odt);
        const got = (await out.toArray()) as Float32Array;
        let bad = 0;
        for (let t = 0; t < T; t++)
          for (let n = 0; n < N; n++) {
            let ref = 0, mag = 0, f32 = 0;
            for (let j = 0; j < k; j++) {
              const v = w[t * k + j] * xs[t * N + n];
              ref += v;
              mag += Math.abs(v);
              f32 = Math.fround(f32 + Math.fround(v));
            }
            const g = got[t * N + n];
            if (odt === 'f32') {
              if (Math.abs(g - ref) > 1e-6 * mag + 1e-30 || g !== f32) bad++;
            } else if (Math.abs(g - ref) > 2 ** -8 * Math.abs(ref) + 1e-6 * mag) bad++;
          }
        expect(bad).toBe(0);
      }
    }
  });

  it('unpermute skips map entries of -1 and uses the weights of each slot', async () => {
    const M = 40, N = 24, T = 5, k = 3;
    const y = dsk.randn([M, N], { seed: 61 });
    const mapArr = Int32Array.from([0, 5, -1, -1, -1, -1, 7, 7, 8, 39, 2, -1, 10, 11, 12]);
    const w = dsk.rand([T, k], { seed: 62 });
    const got = (await dsk.ops.moeUnpermute(y.to(device), dsk.tensor(mapArr, { shape: [T, k], device }), w.to(device), { outDtype: 'f32' }).toArray()) as Float32Array;
    const ys = (await y.toArray()) as Float32Array, ws = (await w.toArray()) as Float32Array;
    for (let t = 0; t < T; t++)
      for (let n = 0; n < N; n++) {
        let ref = 0;
        for (let j = 0; j < k; j++) if (mapArr[t * k + j] >= 0) ref = Math.fround(ref + Math.fround(ws[t * k + j] * ys[mapArr[t * k + j] * N + n]));
        expect(got[t * N + n]).toBe(ref);
      }
    expect(Array.from(got.subarray(1 * N, 2 * N))).toEqual(new Array(N).fill(0));
  });

  it('expert ids out of range are skipped and make the next read reject', async () => {
    const T = 6, k = 2, E = 8;
    const idxArr = Int32Array.from([1, 9, 3, 1, 9, 0, 7, 7, 2, 9, 5, 4]);
    const x = dsk.randn([T, 128], { seed: 63 }).cast('bf16');
    const p = dsk.ops.moePermute(x.to(device), dsk.tensor(idxArr, { shape: [T, k], device }), { numExperts: E, align: 4 });
    await expect(p.map.toArray()).rejects.toThrow(/moe: indices contains 9, outside the valid range \[0, 8\)/);
    await checkLayout(p, x, idxArr, T, k, E, 4);
    expect(Array.from((await p.map.toArray()) as Int32Array).filter((r) => r === -1).length).toBe(3);
  });

  it('a map entry out of range makes the next read reject', async () => {
    const y = dsk.randn([16, 8], { device });
    const out = dsk.ops.moeUnpermute(y, dsk.tensor([[0, 16]], { dtype: 'i32', device }), dsk.ones([1, 2], { device }), { outDtype: 'f32' });
    await expect(out.toArray()).rejects.toThrow(/moeUnpermute: map contains 16, outside the valid range \[0, 16\)/);
    const ys = (await y.toArray()) as Float32Array;
    expect(Array.from((await out.toArray()) as Float32Array)).toEqual(Array.from(ys.subarray(0, 8)));
  });

  it('rejects bad arguments before enqueueing', () => {
    const x = dsk.randn([4, 256], { device }).cast('bf16');
    const idx = dsk.randint([4, 2], 0, 8, { device });
    expect(() => dsk.ops.moePermute(x, idx.cast('f32'), { numExperts: 8 })).toThrow(/moePermute: indices must have dtype i32/);
    expect(() => dsk.ops.moePermute(x, dsk.randint([5, 2], 0, 8, { device }), { numExperts: 8 })).toThrow(/indices.shape\[0\] must be 4/);
    expect(() => dsk.ops.moePermute(x, dsk.randint([4, 0], 0, 8, { device }), { numExperts: 8 })).toThrow(/topk\) must be at least 1/);
    expect(() => dsk.ops.moePermute(dsk.randn([256], { device }), idx, { numExperts: 8 })).toThrow(/x must have 2 dims/);
    expect(() => dsk.ops.moePermute(x, idx, undefined as unknown as dsk.ops.MoePermuteOptions)).toThrow(TypeError);
    expect(() => dsk.ops.moePermute(x, idx, { numExperts: 0 })).toThrow(/options.numExperts must be >= 1/);
    expect(() => dsk.ops.moePermute(x, idx, { numExperts: 8, align: 0 })).toThrow(/options.align must be >= 1/);
    expect(() => dsk.ops.moePermute(x, idx, { numExperts: 8, scale: dsk.ones([4, 3], { device }) })).toThrow(/options.scale must have shape \[4, 2\]/);
    expect(() => dsk.ops.moePermute(dsk.randn([4, 100], { device }), idx, { numExperts: 8, scale: dsk.ones([4, 1], { device }) })).toThrow(/multiple of 128/);
    expect(() => dsk.ops.moePermute(x, idx, { numExperts: 8, scale: dsk.ones([4, 2], { device }).cast('bf16') })).toThrow(/options.scale must have dtype f32/);

    const y = dsk.randn([16, 8], { device }), map = dsk.zeros([4, 2], { dtype: 'i32', device }), w = dsk.ones([4, 2], { device });
    expect(() => dsk.ops.moeUnpermute(y.cast('fp8e4m3'), map, w)).toThrow(/moeUnpermute: y must have dtype bf16 or f32/);
    expect(() => dsk.ops.moeUnpermute(y, map.cast('f32'), w)).toThrow(/map must have dtype i32/);
    expect(() => dsk.ops.moeUnpermute(y, map, dsk.ones([4, 3], { device }))).toThrow(/weights must have shape \[4, 2\]/);
    expect(() => dsk.ops.moeUnpermute(y, map, w, { outDtype: 'f16' as 'bf16' })).toThrow(/options.outDtype must be one of/);
  });

  it('the addon itself rejects outputs that do not fit (memory safety)', () => {
    const n = getNative();
    const x = dsk.randn([4, 8], { device }), idx = dsk.randint([4, 2], 0, 4, { device });
    const i32 = (shape: number[]) => dsk.empty(shape, { dtype: 'i32', device });
    const rows = dsk.ops.moePermuteRows(4, 2, 4, 128);
    expect(() => n.moePermute(x, idx, null, dsk.empty([rows - 1, 8], { device }), null, i32([rows]), i32([4, 2]), i32([4]), i32([5]), i32([10000]), 128))
      .toThrow(/moePermute: out.shape\[0\] must be/);
    expect(() => n.moePermute(x, idx, null, dsk.empty([rows, 8], { device }), null, i32([rows]), i32([4, 2]), i32([4]), i32([5]), i32([1]), 128))
      .toThrow(/moePermute: workspace is too small/);
    expect(() => n.moeGate(dsk.randn([4, 64], { device }), null, i32([4, 8]), dsk.empty([4, 8], { device }), 0, 8, 4, 0, true, 1))
      .not.toThrow();
    expect(() => n.moeGate(dsk.randn([4, 64], { device }), null, i32([4, 8]), dsk.empty([4, 7], { device }), 0, 8, 4, 0, true, 1))
      .toThrow(/moeGate: weights.shape\[1\] must be 8/);
    expect(() => n.moeUnpermute(dsk.randn([16, 8], { device }), i32([4, 2]), dsk.empty([4, 2], { device }), dsk.empty([4, 9], { device })))
      .toThrow(/moeUnpermute: out.shape\[1\] must be 8/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe.runIf(hasCuda)('MoE ops: CUDA against the CPU, bit for bit', () => {
  const same = async (a: dsk.Tensor, b: dsk.Tensor) => {
    expect(a.shape).toEqual(b.shape);
    expect(a.dtype).toBe(b.dtype);
    const x = await a.toArray({ raw: true }), y = await b.toArray({ raw: true });
    const xa = x instanceof Float32Array ? f32bits(x) : x, ya = y instanceof Float32Array ? f32bits(y) : y;
    let diff = 0;
    for (let i = 0; i < xa.length; i++) if (xa[i] !== ya[i]) diff++;
    expect(diff).toBe(0);
  };

  const gateCases: [string, GateCfg, number, number, boolean][] = [
    ['DeepSeek-V3, T = 4096', V3, 256, 4096, true],
    ['DeepSeek-V3, T = 1', V3, 256, 1, true],
    ['DeepSeek-V2-Lite', V2_LITE, 64, 1000, false],
    ['DeepSeek-V2', V2, 160, 513, false],
    ['odd groups', ODD, 72, 77, true],
    ['E = 20 (fewer experts than lanes)', { scoring: 'softmax', topk: 3, nGroup: 4, topkGroup: 2, normTopk: true }, 20, 65, true],
    ['E = 4096, topk 32, 64 groups', { scoring: 'sigmoid', topk: 32, nGroup: 64, topkGroup: 8, normTopk: true, routedScale: 2.5 }, 4096, 70, true],
  ];
  for (const [name, cfg, E, T, withBias] of gateCases) {
    it(`moeGate routes identically: ${name}`, async () => {
      const logits = dsk.randn([T, E], { seed: 300 + T, std: 2 });
      const bias = withBias ? dsk.randn([E], { seed: 301 + T, std: 0.05 }) : undefined;
      const c = dsk.ops.moeGate(logits, { ...cfg, bias });
      const g = dsk.ops.moeGate(logits.to('cuda:0'), { ...cfg, bias: bias?.to('cuda:0') });
      await same(g.indices.to('cpu'), c.indices);
      await same(g.weights.to('cpu'), c.weights);
    });
  }

  it('moeGate routes identically with NaN, infinite and extreme logits', async () => {
    const T = 64;
    for (const [cfg, E] of [[V3, 256], [V2_LITE, 64], [V2, 160]] as [GateCfg, number][]) {
      const l = (await dsk.randn([T * E], { seed: 310 + E, std: 3 }).toArray()) as Float32Array;
      const special = [NaN, Infinity, -Infinity, 1e30, -1e30, -0, 0, 88.8, -104, 3.4e38, -88.7, 1e-40];
      for (let i = 0; i < l.length; i += 5) l[i] = special[(i / 5) % special.length];
      const logits = dsk.tensor(l, { shape: [T, E] });
      const bias = cfg === V3 ? dsk.randn([E], { seed: 5 }) : undefined;
      const c = dsk.ops.moeGate(logits, { ...cfg, bias });
      const g = dsk.ops.moeGate(logits.to('cuda:0'), { ...cfg, bias: bias?.to('cuda:0') });
      await same(g.indices.to('cpu'), c.indices);
      await same(g.weights.to('cpu'), c.weights);
    }
  });

  it('moeCount and moeBiasUpdate agree', async () => {
    const idx = dsk.randint([4096, 8], 0, 256, { seed: 320 });
    const cc = dsk.ops.moeCount(idx, 256), gc = dsk.ops.moeCount(idx.to('cuda:0'), 256);
    await same(gc.to('cpu'), cc);
    const bias = dsk.randn([256], { seed: 321, std: 0.01 });
    await same(dsk.ops.moeBiasUpdate(bias.to('cuda:0'), gc, { gamma: 1e-3 }).to('cpu'), dsk.ops.moeBiasUpdate(bias, cc, { gamma: 1e-3 }));
    const big = dsk.randint([3000], 0, 100, { seed: 322 });
    const bb = dsk.randn([3000], { seed: 323 });
    await same(dsk.ops.moeBiasUpdate(bb.to('cuda:0'), big.to('cuda:0'), { gamma: 0.5 }).to('cpu'), dsk.ops.moeBiasUpdate(bb, big, { gamma: 0.5 }));
  });

  const permuteCases: [string, number, number, number, number, 'fp8e4m3' | 'bf16' | 'f32' | 'u8', number, boolean][] = [
    ['T = 4096, k = 8, E = 256 (fp8 + scales)', 4096, 8, 256, 512, 'fp8e4m3', 128, true],
    ['D = 7168 fp8 + scales', 64, 8, 32, 7168, 'fp8e4m3', 128, true],
    ['D = 7168 bf16', 33, 8, 16, 7168, 'bf16', 128, false],
    ['skewed, odd width (scalar copy)', 777, 6, 64, 13, 'f32', 8, false],
    ['odd bytes, align 1', 100, 3, 5, 7, 'u8', 1, false],
  ];
  for (const [name, T, k, E, D, dtype, align, withScale] of permuteCases) {
    it(`moePermute lays out identically: ${name}`, async () => {
      const idx = name.startsWith('skewed') ? dsk.tensor(skewedIndices(T, k, E, 9), { shape: [T, k] }) : dsk.randint([T, k], 0, E, { seed: 330 + T });
      const x = dsk.randn([T, D], { seed: 331 + T }).cast(dtype);
      const scale = withScale ? dsk.rand([T, D / 128], { seed: 332 }) : undefined;
      const c = dsk.ops.moePermute(x, idx, { numExperts: E, align, scale });
      const g = dsk.ops.moePermute(x.to('cuda:0'), idx.to('cuda:0'), { numExperts: E, align, scale: scale?.to('cuda:0') });
      for (const key of ['x', 'mIndices', 'map', 'counts', 'offsets', ...(withScale ? ['scale'] : [])] as (keyof dsk.ops.MoePermuted)[])
        await same(g[key]!.to('cpu'), c[key]!);
      if (T <= 100) await checkLayout(g, x, (await idx.toArray()) as Int32Array, T, k, E, align, scale);
    });
  }

  it('moePermute with out-of-range ids agrees after the rejected read', async () => {
    const idxArr = Int32Array.from({ length: 300 * 4 }, (_, i) => (i % 37 === 0 ? 64 + (i % 3) : (i * 7919) % 64));
    const idx = dsk.tensor(idxArr, { shape: [300, 4] });
    const x = dsk.randn([300, 64], { seed: 340 }).cast('bf16');
    const g = dsk.ops.moePermute(x.to('cuda:0'), idx.to('cuda:0'), { numExperts: 64, align: 16 });
    await expect(g.map.toArray()).rejects.toThrow(/moe: indices contains 6[456], outside the valid range \[0, 64\)/);
    const c = dsk.ops.moePermute(x, idx, { numExperts: 64, align: 16 });
    await expect(c.map.toArray()).rejects.toThrow(/moe: indices contains 64/);
    for (const key of ['x', 'mIndices', 'map', 'counts', 'offsets'] as const) await same(g[key].to('cpu'), c[key]);
  });

  for (const [ydt, odt, N] of [['bf16', 'bf16', 7168], ['f32', 'bf16', 2112], ['bf16', 'f32', 512], ['f32', 'f32', 100], ['bf16', 'bf16', 99]] as const) {
    it(`moeUnpermute sums identically: y ${ydt} -> ${odt}, N = ${N}`, async () => {
      const T = 257, k = 8, M = 3000;
      const y = dsk.randn([M, N], { seed: 350 + N }).cast(ydt);
      const mapArr = (await dsk.randint([T, k], -1, M, { seed: 351 }).toArray()) as Int32Array;
      const map = dsk.tensor(mapArr, { shape: [T, k], dtype: 'i32' });
      const w = dsk.rand([T, k], { seed: 352 });
      const c = dsk.ops.moeUnpermute(y, map, w, { outDtype: odt });
      const g = dsk.ops.moeUnpermute(y.to('cuda:0'), map.to('cuda:0'), w.to('cuda:0'), { outDtype: odt });
      await same(g.to('cpu'), c);
    });
  }

  it('gate, permute and unpermute replay correctly inside a CUDA graph', async () => {
    const device = 'cuda:0', T = 64, E = 256, D = 256;
    const logits = dsk.randn([T, E], { seed: 360, device });
    const bias = dsk.randn([E], { seed: 361, std: 0.05, device });
    const x = dsk.randn([T, D], { seed: 362, device }).cast('bf16');
    const run = () => {
      const { indices, weights } = dsk.ops.moeGate(logits, { ...V3, bias });
      const p = dsk.ops.moePermute(x, indices, { numExperts: E, align: 128 });
      return { indices, weights, ...p, y: dsk.ops.moeUnpermute(p.x, p.map, weights) };
    };
    const g = dsk.cuda.graph(device, run);
    for (const seed of [363, 364]) {
      logits.copyFrom(dsk.randn([T, E], { seed, device }));
      g.replay();
      const eager = run();
      for (const key of ['indices', 'weights', 'x', 'mIndices', 'map', 'counts', 'offsets', 'y'] as const)
        await same(g.outputs[key].to('cpu'), eager[key].to('cpu'));
    }
    g.dispose();
  });

  it('rejects tensors on different devices', () => {
    const l = dsk.randn([4, 64]);
    expect(() => dsk.ops.moeGate(l, { scoring: 'sigmoid', topk: 2, bias: dsk.zeros([64], { device: 'cuda:0' }) })).toThrow(/options.bias is on cuda:0 but logits is on cpu/);
    expect(() => dsk.ops.moePermute(dsk.randn([4, 8]), dsk.randint([4, 2], 0, 4, { device: 'cuda:0' }), { numExperts: 4 })).toThrow(/indices is on cuda:0/);
    expect(() => dsk.ops.moeUnpermute(dsk.randn([4, 8], { device: 'cuda:0' }), dsk.zeros([1, 1], { dtype: 'i32' }), dsk.ones([1, 1]))).toThrow(/map is on cpu/);
  });
});
