// RMSNorm (plain and fused add-norm): the CPU reference against float64 math written here, every GPU against
// the CPU bit for bit (one summation order everywhere).
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { BF16, encode } from './helpers/formats';
import { hasCuda } from './helpers/devices';
import { expectSameBits, expectTensorsBitEqual, f64, gpuDevices, on } from './helpers/ops';

/** float64 RMSNorm of h [rows, D] with weight w. */
function ref64(h: Float64Array, w: Float64Array, D: number, eps: number): Float64Array {
  const out = new Float64Array(h.length);
  for (let r = 0; r < h.length / D; r++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += h[r * D + d] ** 2;
    const inv = 1 / Math.sqrt(ss / D + Math.fround(eps));
    for (let d = 0; d < D; d++) out[r * D + d] = h[r * D + d] * inv * w[d];
  }
  return out;
}

function checkClose(got: Float64Array, ref: Float64Array, dtype: 'f32' | 'bf16', label: string): void {
  for (let i = 0; i < ref.length; i++) {
    const tol = (dtype === 'f32' ? 1e-5 : 2 ** -8 + 1e-5) * Math.abs(ref[i]) + 1e-30;
    if (!(Math.abs(got[i] - ref[i]) <= tol)) throw new Error(`${label}: out[${i}] = ${got[i]}, float64 ${ref[i]}`);
  }
}

const cases: [number, number][] = [[1, 7168], [37, 1536], [130, 512], [3, 20000], [2, 7]];

describe('rmsNorm: CPU reference against float64', () => {
  for (const dtype of ['f32', 'bf16'] as const)
    it(`${dtype}: x / sqrt(mean(x^2) + eps) * w, weight bf16 or f32, several widths`, async () => {
      for (const [T, D] of cases)
        for (const wdt of ['f32', 'bf16'] as const) {
          const x = dsk.randn([T, D], { seed: T + D, dtype, std: 3 }), w = dsk.randn([D], { seed: D, dtype: wdt, mean: 1, std: 0.2 });
          const out = dsk.ops.rmsNorm(x, w);
          expect(out.dtype).toBe(dtype);
          checkClose(await f64(out), ref64(await f64(x), await f64(w), D, 1e-6), dtype, `[${T}, ${D}] ${dtype} w ${wdt}`);
        }
      const x = dsk.randn([4, 64], { seed: 1, dtype, std: 1e-3 }), w = dsk.randn([64], { seed: 2 });
      checkClose(await f64(dsk.ops.rmsNorm(x, w, { eps: 1e-2 })), ref64(await f64(x), await f64(w), 64, 1e-2), dtype, 'eps 1e-2');
    });

  for (const dtype of ['f32', 'bf16'] as const)
    it(`${dtype}: fused add-norm returns h = x + residual (rounded to ${dtype}) and rmsNorm(h)`, async () => {
      for (const [T, D] of cases) {
        const x = dsk.randn([T, D], { seed: 3 * T + D, dtype }), res = dsk.randn([T, D], { seed: 5 * T + D, dtype, std: 4 });
        const w = dsk.randn([D], { seed: 7, dtype: 'bf16', mean: 1, std: 0.1 });
        const r = dsk.ops.rmsNorm(x, w, { residual: res });
        expect(r.residual.shape).toEqual([T, D]);
        const xs = await f64(x), rs = await f64(res);
        const hWant = Array.from(xs, (v, i) => Math.fround(v + rs[i]));
        if (dtype === 'f32') expectSameBits(await f64(r.residual), hWant, `h [${T}, ${D}]`);
        else expectSameBits((await r.residual.toArray({ raw: true })) as Uint16Array, hWant.map((v) => encode(BF16, v)), `h [${T}, ${D}]`);
        checkClose(await f64(r.out), ref64(await f64(r.residual), await f64(w), D, 1e-6), dtype, `add-norm [${T}, ${D}] ${dtype}`);
      }
    });

  it('reads a column slice in place (the 512 latent dims of a [T, 576] projection) and 3-D inputs', async () => {
    const kv = dsk.randn([6, 576], { seed: 9, dtype: 'bf16' }), w = dsk.randn([512], { seed: 10, dtype: 'bf16' });
    await expectTensorsBitEqual(dsk.ops.rmsNorm(kv.slice(1, 0, 512), w), dsk.ops.rmsNorm(kv.slice(1, 0, 512).contiguous(), w), 'slice');
    const x3 = dsk.randn([2, 3, 128], { seed: 11 }), w3 = dsk.randn([128], { seed: 12 });
    const o3 = dsk.ops.rmsNorm(x3, w3);
    expect(o3.shape).toEqual([2, 3, 128]);
    checkClose(await f64(o3), ref64(await f64(x3), await f64(w3), 128, 1e-6), 'f32', '3-D');
  });

  it('T = 0', async () => {
    const r = dsk.ops.rmsNorm(dsk.randn([0, 64]), dsk.randn([64]), { residual: dsk.randn([0, 64]) });
    expect(r.out.shape).toEqual([0, 64]);
    expect((await r.residual.toArray()).length).toBe(0);
  });
});

describe.each(gpuDevices)('rmsNorm on %s: bit-identical to the CPU', (device) => {
  it('plain and fused, bf16 and f32, warp-per-row and block-per-row widths and row counts, sliced input', async () => {
    for (const [T, D] of [...cases, [64, 7168], [1100, 2048], [1, 16384], [2, 16385], [5, 576]] as [number, number][])
      for (const dtype of ['bf16', 'f32'] as const) {
        const x = dsk.randn([T, D], { seed: T * 13 + D, dtype, std: 2 }), res = dsk.randn([T, D], { seed: T * 19 + D, dtype });
        const w = dsk.randn([D], { seed: D, dtype: dtype === 'f32' ? 'bf16' : 'f32', mean: 1 });
        await expectTensorsBitEqual(dsk.ops.rmsNorm(on(x, device), on(w, device)).to('cpu'), dsk.ops.rmsNorm(x, w), `[${T}, ${D}] ${dtype}`);
        const c = dsk.ops.rmsNorm(x, w, { residual: res, eps: 1e-5 });
        const d = dsk.ops.rmsNorm(on(x, device), on(w, device), { residual: on(res, device), eps: 1e-5 });
        await expectTensorsBitEqual(d.out.to('cpu'), c.out, `add-norm out [${T}, ${D}] ${dtype}`);
        await expectTensorsBitEqual(d.residual.to('cpu'), c.residual, `add-norm h [${T}, ${D}] ${dtype}`);
      }
    const kv = dsk.randn([33, 576], { seed: 14, dtype: 'bf16' }), w = dsk.randn([512], { seed: 15, dtype: 'bf16' });
    await expectTensorsBitEqual(dsk.ops.rmsNorm(on(kv, device).slice(1, 0, 512), on(w, device)).to('cpu'), dsk.ops.rmsNorm(kv.slice(1, 0, 512), w), 'slice');
    await expectTensorsBitEqual(dsk.ops.rmsNorm(on(kv, device).slice(1, 3, 515), on(w, device)).to('cpu'), dsk.ops.rmsNorm(kv.slice(1, 3, 515), w), 'unaligned slice');
  });
});

describe('rmsNorm: bad input', () => {
  it('rejects wrong dtypes, shapes and options', () => {
    const x = dsk.randn([4, 64]), w = dsk.randn([64]);
    expect(() => dsk.ops.rmsNorm(x, dsk.randn([32]))).toThrow(/^rmsNorm: weight.shape\[0\] must be 64 \(the last dim of x\)/);
    expect(() => dsk.ops.rmsNorm(x, dsk.randn([64, 1]))).toThrow(/^rmsNorm: weight must have 1 dims/);
    expect(() => dsk.ops.rmsNorm(dsk.randn([4, 64], { dtype: 'f16' }), w)).toThrow(/^rmsNorm: x must have dtype bf16 or f32/);
    expect(() => dsk.ops.rmsNorm(x, w, { eps: -1 })).toThrow(/^rmsNorm: options.eps must be >= 0/);
    expect(() => dsk.ops.rmsNorm(x, w, { eps: 'a' as unknown as number })).toThrow(TypeError);
    expect(() => dsk.ops.rmsNorm(x, w, { residual: dsk.randn([4, 64], { dtype: 'bf16' }) })).toThrow(/^rmsNorm: options.residual must have the dtype of x/);
    expect(() => dsk.ops.rmsNorm(x, w, { residual: dsk.randn([3, 64]) })).toThrow(/^rmsNorm: options.residual must have shape \[4, 64\]/);
    const gone = dsk.randn([64]);
    gone.dispose();
    expect(() => dsk.ops.rmsNorm(x, gone)).toThrow(/^rmsNorm: weight has been disposed/);
  });
  it.runIf(hasCuda)('rejects tensors on different devices', () => {
    expect(() => dsk.ops.rmsNorm(dsk.randn([4, 64]), dsk.randn([64], { device: 'cuda:0' }))).toThrow(/^rmsNorm: weight is on cuda:0 but x is on cpu/);
  });
});
