// Dense NT GEMM: the CPU reference against float64 dot products written here, every GPU against float64
// and against the CPU, over ragged shapes and every kernel path (skinny, tensor-core, f32 tiles).
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda } from './helpers/devices';
import { f64, gpuDevices, on, relErr } from './helpers/ops';

/** float64 out[m, n] = Σ_k a[m, k] b[n, k], and Σ_k |a b| (the scale of the rounding error). */
function ref64(a: Float64Array, b: Float64Array, M: number, N: number, K: number): { out: Float64Array; mag: Float64Array } {
  const out = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0, t = 0;
      const ao = m * K, bo = n * K;
      for (let k = 0; k < K; k++) {
        const p = a[ao + k] * b[bo + k];
        s += p;
        t += Math.abs(p);
      }
      out[m * N + n] = s;
      mag[m * N + n] = t;
    }
  return { out, mag };
}

/** Checks out against float64: f32 out within 1e-5 (norm) and 1e-5 Σ|ab| per element; bf16 out within half
 *  a bf16 ulp (2^-8 relative) plus that. */
function checkAgainst64(got: Float64Array, r: { out: Float64Array; mag: Float64Array }, outDtype: 'f32' | 'bf16', label: string): void {
  const e = relErr(got, r.out);
  expect(e, `${label}: relative error ${e}`).toBeLessThan(outDtype === 'f32' ? 1e-5 : 4e-3);
  for (let i = 0; i < got.length; i++) {
    const tol = (outDtype === 'f32' ? 0 : 2 ** -8 * Math.abs(r.out[i])) + 1e-5 * r.mag[i] + 1e-30;
    if (!(Math.abs(got[i] - r.out[i]) <= tol)) throw new Error(`${label}: out[${i}] = ${got[i]}, float64 ${r.out[i]} (tolerance ${tol})`);
  }
}

const shapes: [number, number, number][] = [
  [1, 2112, 7168], // decode: router-like / projection with one token
  [5, 300, 1000], // skinny, K not a multiple of 8
  [37, 2112, 384], // M not a multiple of 64
  [64, 129, 512], // one full tensor-core tile in M, ragged N
  [130, 96, 200], // several M tiles, ragged everything
];

describe('gemm: CPU reference against float64', () => {
  for (const dtype of ['f32', 'bf16'] as const)
    for (const [M, N, K] of shapes)
      it(`${dtype} [${M}, ${K}] x [${N}, ${K}]^T`, async () => {
        const a = dsk.randn([M, K], { seed: M + 1, dtype }), b = dsk.randn([N, K], { seed: N + 2, dtype });
        const r = ref64(await f64(a), await f64(b), M, N, K);
        const out = dsk.ops.gemm(a, b);
        expect(out.shape).toEqual([M, N]);
        expect(out.dtype).toBe(dtype);
        checkAgainst64(await f64(out), r, dtype, `${dtype} default out`);
        const other = dtype === 'f32' ? 'bf16' : 'f32';
        checkAgainst64(await f64(dsk.ops.gemm(a, b, { outDtype: other })), r, other, `${dtype} -> ${other}`);
      });

  it('strided operands: a column slice of a, a row slice of b, a transposed a (copied)', async () => {
    const big = dsk.randn([9, 7296], { seed: 3 }), b = dsk.randn([70, 7168], { seed: 4 });
    const a = big.slice(1, 64, 64 + 7168), bs = b.slice(0, 3, 60);
    const r = ref64(await f64(a), await f64(bs), 9, 57, 7168);
    checkAgainst64(await f64(dsk.ops.gemm(a, bs)), r, 'f32', 'sliced');
    const at = dsk.randn([7168, 9], { seed: 5 }).transpose();
    checkAgainst64(await f64(dsk.ops.gemm(at, bs)), ref64(await f64(at), await f64(bs), 9, 57, 7168), 'f32', 'transposed a');
  });

  it('empty M and K = 0', async () => {
    const out = dsk.ops.gemm(dsk.randn([0, 64]), dsk.randn([10, 64]));
    expect(out.shape).toEqual([0, 10]);
    const z = dsk.ops.gemm(dsk.randn([3, 0]), dsk.randn([4, 0]));
    expect(Array.from((await z.toArray()) as Float32Array)).toEqual(new Array(12).fill(0));
  });
});

describe.each(gpuDevices)('gemm on %s', (device) => {
  const all: [number, number, number][] = [...shapes, [8, 2112, 7168], [9, 7168, 2048], [32, 256, 7168], [33, 256, 7168], [64, 2112, 7168], [200, 7168, 512]];
  for (const dtype of ['bf16', 'f32'] as const)
    it(`${dtype}: every kernel path against float64 and the CPU`, async () => {
      for (const [M, N, K] of all) {
        const a = dsk.randn([M, K], { seed: M * 31 + K, dtype }), b = dsk.randn([N, K], { seed: N * 17 + K, dtype });
        const r = ref64(await f64(a), await f64(b), M, N, K);
        for (const outDtype of ['f32', 'bf16'] as const) {
          const got = await f64(dsk.ops.gemm(on(a, device), on(b, device), { outDtype }).to('cpu'));
          checkAgainst64(got, r, outDtype, `${dtype} [${M}, ${N}, ${K}] -> ${outDtype}`);
          const cpu = await f64(dsk.ops.gemm(a, b, { outDtype }));
          const e = relErr(got, cpu);
          expect(e, `${dtype} [${M}, ${N}, ${K}] -> ${outDtype} vs CPU`).toBeLessThan(outDtype === 'f32' ? 1e-5 : 4e-3);
        }
      }
    });

  it('bf16 with strided rows (cp.async with a row stride) and unaligned K (element loads)', async () => {
    const big = dsk.randn([100, 7296], { seed: 7, dtype: 'bf16' }), b = dsk.randn([300, 7168], { seed: 8, dtype: 'bf16' });
    const a = big.slice(1, 128, 128 + 7168);
    const r = ref64(await f64(a), await f64(b), 100, 300, 7168);
    checkAgainst64(await f64(dsk.ops.gemm(on(big, device).slice(1, 128, 128 + 7168), on(b, device), { outDtype: 'f32' }).to('cpu')), r, 'f32', 'strided a');
    const odd = dsk.randn([70, 1001], { seed: 9, dtype: 'bf16' }), ob = dsk.randn([65, 1001], { seed: 10, dtype: 'bf16' });
    checkAgainst64(await f64(dsk.ops.gemm(on(odd, device), on(ob, device), { outDtype: 'f32' }).to('cpu')),
      ref64(await f64(odd), await f64(ob), 70, 65, 1001), 'f32', 'K = 1001');
  });

  it('lm_head shape: [4, 7168] x [129280, 7168]^T bf16, against the CPU', async () => {
    const a = dsk.randn([4, 7168], { seed: 11, dtype: 'bf16', device }), b = dsk.randn([129280, 7168], { seed: 12, dtype: 'bf16', device, std: 0.02 });
    const got = await f64(dsk.ops.gemm(a, b, { outDtype: 'f32' }).to('cpu'));
    const cpu = await f64(dsk.ops.gemm(a.to('cpu'), b.to('cpu'), { outDtype: 'f32' }));
    expect(relErr(got, cpu)).toBeLessThan(1e-5);
    b.dispose();
  });
});

describe('gemm: bad input', () => {
  it('rejects wrong dtypes, shapes and options', () => {
    const a = dsk.randn([4, 8]);
    expect(() => dsk.ops.gemm(a, dsk.randn([3, 8], { dtype: 'bf16' }))).toThrow(/^gemm: b must have the dtype of a \(f32\), got bf16/);
    expect(() => dsk.ops.gemm(a, dsk.randn([3, 7]))).toThrow(/^gemm: b.shape\[1\] must be 8 \(K of a\)/);
    expect(() => dsk.ops.gemm(dsk.randn([4, 8], { dtype: 'f16' }), dsk.randn([3, 8], { dtype: 'f16' }))).toThrow(TypeError);
    expect(() => dsk.ops.gemm(dsk.randn([8]), dsk.randn([3, 8]))).toThrow(/^gemm: a must have 2 dims/);
    expect(() => dsk.ops.gemm(a, dsk.randn([3, 8]), { outDtype: 'i32' as 'f32' })).toThrow(/^gemm: options.outDtype must be one of/);
    expect(() => dsk.ops.gemm(a, dsk.randn([3, 8]), 5 as unknown as dsk.ops.GemmOptions)).toThrow(/^gemm: options must be an object/);
    const gone = dsk.randn([3, 8]);
    gone.dispose();
    expect(() => dsk.ops.gemm(a, gone)).toThrow(/^gemm: b has been disposed/);
  });
  it.runIf(hasCuda)('rejects operands on different devices', () => {
    expect(() => dsk.ops.gemm(dsk.randn([4, 8]), dsk.randn([3, 8], { device: 'cuda:0' }))).toThrow(/^gemm: b is on cuda:0 but a is on cpu/);
  });
});
