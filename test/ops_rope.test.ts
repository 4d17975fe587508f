// Rotary embedding: the CPU reference against float64 math of the published DeepSeek / HF YaRN formulas,
// CUDA against the CPU reference, and argument checks.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda } from './helpers/devices';

interface Yarn {
  factor: number;
  originalMaxPosition: number;
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
}

// DeepSeek-V3's rope_scaling block (config.json).
const V3_YARN: Yarn = { factor: 40, originalMaxPosition: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 };

/** HF DeepseekV3YarnRotaryEmbedding in float64: freq_extra, freq_inter, the ramp mask, and _mscale. */
function yarnTables(theta: number, dim: number, yarn?: Yarn): { inv: number[]; mscale: number; low?: number; high?: number } {
  const freqExtra: number[] = [];
  for (let j = 0; j < dim; j += 2) freqExtra.push(1 / theta ** (j / dim));
  if (!yarn) return { inv: freqExtra, mscale: 1 };
  const { factor, originalMaxPosition } = yarn;
  const betaFast = yarn.betaFast ?? 32, betaSlow = yarn.betaSlow ?? 1;
  const freqInter = freqExtra.map((f) => 1 / (factor * (1 / f)));
  const findDim = (rot: number) => (dim * Math.log(originalMaxPosition / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  const low = Math.max(Math.floor(findDim(betaFast)), 0);
  let high = Math.min(Math.ceil(findDim(betaSlow)), dim - 1);
  if (low === high) high += 0.001;
  const inv = freqExtra.map((fe, i) => {
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const mask = 1 - ramp; // inv_freq_mask
    return freqInter[i] * (1 - mask) + fe * mask;
  });
  const getMscale = (s: number, m: number) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
  return { inv, mscale: getMscale(factor, yarn.mscale ?? 1) / getMscale(factor, yarn.mscaleAllDim ?? 0), low, high };
}

/** x [T, H, D] rotated in float64: the last ropeDim dims as complex pairs times e^{i pos inv}, times mscale. */
function rope64(x: Float32Array, pos: Int32Array, H: number, D: number, ropeDim: number, theta: number, yarn?: Yarn): Float64Array {
  const { inv, mscale } = yarnTables(theta, ropeDim, yarn);
  const out = Float64Array.from(x);
  const T = pos.length, pass = D - ropeDim;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < ropeDim / 2; i++) {
        const j = (t * H + h) * D + pass + 2 * i;
        const a = pos[t] * inv[i], cs = Math.cos(a) * mscale, sn = Math.sin(a) * mscale;
        out[j] = x[j] * cs - x[j + 1] * sn;
        out[j + 1] = x[j] * sn + x[j + 1] * cs;
      }
  return out;
}

/** Largest |got - want| relative to tol(i), or the first NaN; returns the worst ratio (<= 1 passes). */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number): number {
  expect(got.length).toBe(want.length);
  let w = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]) / tol(i);
    if (!(e <= w)) w = Number.isNaN(e) ? Infinity : e;
  }
  return w;
}

describe('rope: CPU reference against float64 formulas', () => {
  it('the float64 YaRN tables are DeepSeek-V3 (correction range [10, 23], mscale ratio 1)', () => {
    const y = yarnTables(10000, 64, V3_YARN);
    expect([y.low, y.high]).toEqual([10, 23]);
    expect(y.mscale).toBe(1);
    const base = yarnTables(10000, 64).inv;
    for (let i = 0; i <= 10; i++) expect(y.inv[i]).toBeCloseTo(base[i], 15); // extrapolated: unchanged
    for (let i = 23; i < 32; i++) expect(y.inv[i] / base[i]).toBeCloseTo(1 / 40, 12); // interpolated: / factor
    expect(y.inv[16] / base[16]).toBeCloseTo(1 - (6 / 13) * (1 - 1 / 40), 12); // on the ramp
  });

  for (const [name, yarn] of [
    ['no yarn', undefined],
    ['DeepSeek-V3 yarn', V3_YARN],
    ['yarn with mscale != mscaleAllDim', { factor: 40, originalMaxPosition: 4096, mscale: 0.707, mscaleAllDim: 0 }],
    ['yarn with equal correction bounds', { factor: 8, originalMaxPosition: 4096, betaFast: 4, betaSlow: 4 }],
  ] as [string, Yarn | undefined][]) {
    it(`f32 [T, H, 192] (rope on the last 64), positions up to 160k: ${name}`, async () => {
      const T = 53, H = 5, D = 192;
      const x = dsk.randn([T, H, D], { seed: 101 });
      const positions = dsk.randint([T], 0, 163840, { seed: 102 });
      const got = (await dsk.ops.rope(x, positions, { theta: 10000, yarn }).toArray()) as Float32Array;
      const xs = (await x.toArray()) as Float32Array;
      const want = rope64(xs, (await positions.toArray()) as Int32Array, H, D, 64, 10000, yarn);
      const ms = yarnTables(10000, 64, yarn).mscale;
      // Not-rotated dims are copied exactly; rotated ones carry f32 rounding of cos/sin and two products.
      for (let i = 0; i < T * H; i++) for (let d = 0; d < D - 64; d++) expect(got[i * D + d]).toBe(xs[i * D + d]);
      expect(worst(got, want, (i) => 4e-7 * ms * (Math.abs(xs[i]) + Math.abs(xs[i ^ 1]) + 1e-3))).toBeLessThanOrEqual(1);
    });
  }

  it('bf16 [T, 64] (k_pe), theta 10000, V3 yarn: one rounding to bf16', async () => {
    const T = 300, D = 64;
    const x = dsk.randn([T, D], { seed: 7 }).cast('bf16');
    const positions = dsk.randint([T], 0, 163840, { seed: 8 });
    const out = dsk.ops.rope(x, positions, { yarn: V3_YARN });
    expect(out.dtype).toBe('bf16');
    expect(out.shape).toEqual([T, D]);
    const got = (await out.toArray()) as Float32Array;
    const xs = (await x.toArray()) as Float32Array;
    const want = rope64(xs, (await positions.toArray()) as Int32Array, 1, D, 64, 10000, V3_YARN);
    expect(worst(got, want, (i) => 2 ** -8 * Math.abs(want[i]) + 1e-6 * (Math.abs(xs[i]) + Math.abs(xs[i ^ 1])))).toBeLessThanOrEqual(1);
  });

  it('ropeDim and theta are honoured; positions may be [B, S] with x [B, S, H, D]', async () => {
    const x = dsk.randn([2, 3, 4, 40], { seed: 5 });
    const positions = dsk.tensor([[0, 1, 2], [70000, -5, 9]], { dtype: 'i32' });
    const out = dsk.ops.rope(x, positions, { theta: 50000, ropeDim: 16 });
    expect(out.shape).toEqual([2, 3, 4, 40]);
    const got = (await out.toArray()) as Float32Array;
    const xs = (await x.toArray()) as Float32Array;
    const want = rope64(xs, Int32Array.from([0, 1, 2, 70000, -5, 9]), 4, 40, 16, 50000);
    expect(worst(got, want, (i) => 4e-7 * (Math.abs(xs[i]) + Math.abs(xs[i ^ 1]) + 1e-3))).toBeLessThanOrEqual(1);
    // Position 0 is the identity.
    for (let d = 0; d < 4 * 40; d++) expect(got[d]).toBe(xs[d]);
  });

  it('T = 0 gives an empty result', async () => {
    const out = dsk.ops.rope(dsk.empty([0, 8, 64]), dsk.empty([0], { dtype: 'i32' }));
    expect(out.shape).toEqual([0, 8, 64]);
    expect((await out.toArray()).length).toBe(0);
  });
});

describe('yarnSoftmaxScale', () => {
  it('is head_dim^-0.5 times mscale(factor, mscaleAllDim)^2', () => {
    const m = 0.1 * Math.log(40) + 1;
    expect(dsk.ops.yarnSoftmaxScale(192, V3_YARN)).toBeCloseTo((1 / Math.sqrt(192)) * m * m, 15);
    expect(dsk.ops.yarnSoftmaxScale(192, V3_YARN)).toBeCloseTo(0.135234, 5);
    expect(dsk.ops.yarnSoftmaxScale(192)).toBe(1 / Math.sqrt(192));
    expect(dsk.ops.yarnSoftmaxScale(192, { factor: 40, originalMaxPosition: 4096 })).toBe(1 / Math.sqrt(192)); // mscaleAllDim 0
    expect(dsk.ops.yarnSoftmaxScale(128, { factor: 1, originalMaxPosition: 4096, mscaleAllDim: 1 })).toBe(1 / Math.sqrt(128));
    const m2 = 0.1 * 0.707 * Math.log(16) + 1;
    expect(dsk.ops.yarnSoftmaxScale(64, { factor: 16, originalMaxPosition: 2048, mscaleAllDim: 0.707 })).toBeCloseTo(m2 * m2 / 8, 15);
  });

  it('rejects bad arguments', () => {
    expect(() => dsk.ops.yarnSoftmaxScale(0)).toThrow(/yarnSoftmaxScale: headDim must be > 0/);
    expect(() => dsk.ops.yarnSoftmaxScale(192, { factor: -1, originalMaxPosition: 4096 })).toThrow(RangeError);
    expect(() => dsk.ops.yarnSoftmaxScale(192, { originalMaxPosition: 4096 } as unknown as Yarn)).toThrow(/yarn.factor must be a number/);
  });
});

describe('rope: argument checks', () => {
  const x = dsk.randn([4, 2, 64], { seed: 1 });
  const pos = dsk.tensor([0, 1, 2, 3], { dtype: 'i32' });
  it('rejects bad arguments before enqueueing, naming them', () => {
    expect(() => dsk.ops.rope(x, dsk.tensor([0, 1, 2, 3]))).toThrow(/rope: positions must have dtype i32/);
    expect(() => dsk.ops.rope(x.cast('i32'), pos)).toThrow(TypeError);
    expect(() => dsk.ops.rope(x, pos, { ropeDim: 63 })).toThrow(/rope: ropeDim must be even/);
    expect(() => dsk.ops.rope(x, pos, { ropeDim: 128 })).toThrow(/rope: ropeDim \(128\) must not exceed the last dim of x \(64\)/);
    expect(() => dsk.ops.rope(x, pos, { ropeDim: 258 })).toThrow(RangeError);
    expect(() => dsk.ops.rope(x, pos, { ropeDim: 2.5 })).toThrow(/rope: ropeDim must be an integer/);
    expect(() => dsk.ops.rope(x, dsk.tensor([0, 1, 2], { dtype: 'i32' }))).toThrow(/rope: positions must match the leading dims of x/);
    expect(() => dsk.ops.rope(x, dsk.tensor([[0, 1]], { dtype: 'i32' }))).toThrow(RangeError);
    expect(() => dsk.ops.rope(dsk.randn([4, 65]), pos, { ropeDim: 64 })).toThrow(/rope: the last dim of x must be even/);
    expect(() => dsk.ops.rope(x, pos, { theta: 1 })).toThrow(/rope: theta must be > 1/);
    expect(() => dsk.ops.rope(x, pos, { yarn: { factor: 0, originalMaxPosition: 4096 } })).toThrow(/rope: yarn.factor must be > 0/);
    expect(() => dsk.ops.rope(x, pos, { yarn: { factor: 4, originalMaxPosition: 0 } })).toThrow(/rope: yarn.originalMaxPosition must be >= 1/);
    expect(() => dsk.ops.rope(x, pos, { yarn: { factor: 4, originalMaxPosition: 4096, betaSlow: 0 } })).toThrow(/rope: yarn.betaSlow must be > 0/);
    expect(() => dsk.ops.rope(x, pos, { yarn: 5 as unknown as Yarn })).toThrow(/rope: yarn must be an object/);
    expect(() => dsk.ops.rope('x' as unknown as dsk.Tensor, pos)).toThrow(/rope: x must be a Tensor/);
    const gone = dsk.randn([4, 64]);
    gone.dispose();
    expect(() => dsk.ops.rope(gone, pos)).toThrow(/rope: x has been disposed/);
  });
});

describe.skipIf(!hasCuda)('rope on cuda:0 against the CPU reference', () => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    it(`${dtype}: q [T, 128, 192], k_pe [T, 64] and [T, 3, 40] with ropeDim 16, positions up to 160k`, async () => {
      for (const [shape, ropeDim, yarn] of [
        [[37, 128, 192], 64, V3_YARN],
        [[301, 64], 64, V3_YARN],
        [[5, 3, 40], 16, undefined],
      ] as [number[], number, Yarn | undefined][]) {
        const x = dsk.randn(shape, { seed: 21 }).cast(dtype);
        const positions = dsk.randint([shape[0]], 0, 163840, { seed: 22 });
        const want = (await dsk.ops.rope(x, positions, { ropeDim, yarn }).toArray()) as Float32Array;
        const out = dsk.ops.rope(x.to('cuda:0'), positions.to('cuda:0'), { ropeDim, yarn });
        expect(out.device).toBe('cuda:0');
        const got = (await out.toArray()) as Float32Array;
        const xs = (await x.toArray()) as Float32Array;
        // Same double-precision angles and the same uncontracted f32 rotation: at most an ulp of the output
        // apart (plus an f32 ulp of the inputs where cos/sin of the two libraries differ in the last bit).
        const ulp = dtype === 'f32' ? 2 ** -23 : dtype === 'bf16' ? 2 ** -7 : 2 ** -10;
        expect(worst(got, want, (i) => ulp * Math.abs(want[i]) + 2 ** -23 * (Math.abs(xs[i]) + Math.abs(xs[i ^ 1])))).toBeLessThanOrEqual(1);
      }
    });
  }
});
