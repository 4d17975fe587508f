// FP8 quantization and SwiGLU: the CPU reference against float64 math written here, every GPU against the
// CPU bit for bit, and bad input rejected before anything is enqueued.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { BF16, FP8, decode, encode } from './helpers/formats';
import { hasCuda } from './helpers/devices';
import { expectSameBits, expectTensorsBitEqual, f64, gpuDevices, on } from './helpers/ops';

const FLOOR = Math.fround(1e-4);

/** x [M, K] of `dtype` from randn, with rows of very different magnitudes, a tile under the amax floor,
 *  and (when `specials`) a NaN and an inf in their own tiles. */
async function activation(M: number, K: number, seed: number, dtype: 'bf16' | 'f32', specials = true): Promise<dsk.Tensor> {
  const v = (await dsk.randn([M, K], { seed }).toArray()) as Float32Array;
  for (let r = 0; r < M; r++) {
    const f = r % 5 === 1 ? 1e3 : r % 5 === 3 ? 1e-2 : 1;
    for (let k = 0; k < K; k++) v[r * K + k] *= f;
  }
  if (M > 2 && K >= 256) for (let k = 128; k < 256; k++) v[2 * K + k] *= 1e-7;
  if (specials && M > 4) {
    v[3 * K + 5] = NaN;
    v[4 * K + (K >= 256 ? 130 : 7)] = Infinity;
  }
  return dsk.tensor(v, { shape: [M, K], dtype });
}

/** float64 reference of one group: scale and the e4m3 codes. */
function refGroup(x: ArrayLike<number>, idx: number[]): { scale: number; q: number[] } {
  let amax = 0;
  for (const i of idx) if (!Number.isNaN(x[i])) amax = Math.max(amax, Math.abs(x[i]));
  const scale = Math.fround(Math.max(amax, FLOOR) / 448);
  return { scale, q: idx.map((i) => encode(FP8, Math.fround(x[i] / scale))) };
}

async function checkActivation(x: dsk.Tensor, label: string): Promise<void> {
  const K = x.shape[x.ndim - 1], M = x.numel / K;
  const { q, scale } = dsk.ops.quantizeActivation(x);
  expect(q.shape).toEqual(x.shape);
  expect(scale.shape).toEqual([...x.shape.slice(0, -1), K / 128]);
  const xs = await f64(x), qs = await bits(q), ss = await f64(scale);
  for (let r = 0; r < M; r++)
    for (let t = 0; t < K / 128; t++) {
      const idx = Array.from({ length: 128 }, (_, i) => r * K + t * 128 + i);
      const ref = refGroup(xs, idx);
      if (ss[r * (K / 128) + t] !== ref.scale) throw new Error(`${label}: scale[${r}, ${t}] = ${ss[r * (K / 128) + t]}, expected ${ref.scale}`);
      idx.forEach((i, j) => {
        if (qs[i] !== ref.q[j]) throw new Error(`${label}: q at (${r}, ${t * 128 + j}) = 0x${Number(qs[i]).toString(16)}, expected 0x${ref.q[j].toString(16)} (x = ${xs[i]})`);
      });
    }
}

async function bits(t: dsk.Tensor): Promise<ArrayLike<number>> {
  return (await t.toArray({ raw: true })) as ArrayLike<number>;
}

const sigmoid64 = (g: number) => 1 / (1 + Math.exp(-g));

describe('quantization: CPU reference against float64 math', () => {
  it('quantizeActivation: amax, scale = max(amax, 1e-4)/448 and q = fp8(x/scale), for bf16 and f32', async () => {
    for (const dtype of ['bf16', 'f32'] as const) {
      await checkActivation(await activation(37, 384, 1, dtype), `[37, 384] ${dtype}`);
      await checkActivation(await activation(1, 7168, 2, dtype, false), `[1, 7168] ${dtype}`);
    }
    // A 3-D activation: the leading dims are rows.
    const x3 = (await activation(12, 256, 3, 'bf16')).view([3, 4, 256]);
    await checkActivation(x3, '[3, 4, 256]');
  });

  it('quantizeWeight: one scale per 128x128 block, edge blocks included', async () => {
    for (const [N, K, dtype] of [[300, 200, 'f32'], [2112, 384, 'bf16'], [129, 129, 'bf16']] as const) {
      const w = dsk.randn([N, K], { seed: N + K, dtype });
      const { q, scale } = dsk.ops.quantizeWeight(w);
      const nb = Math.ceil(N / 128), kb = Math.ceil(K / 128);
      expect(scale.shape).toEqual([nb, kb]);
      const ws = await f64(w), qs = await bits(q), ss = await f64(scale);
      for (let bn = 0; bn < nb; bn++)
        for (let bk = 0; bk < kb; bk++) {
          const idx: number[] = [];
          for (let n = bn * 128; n < Math.min(N, bn * 128 + 128); n++)
            for (let k = bk * 128; k < Math.min(K, bk * 128 + 128); k++) idx.push(n * K + k);
          const ref = refGroup(ws, idx);
          expect(ss[bn * kb + bk], `scale[${bn}, ${bk}] of [${N}, ${K}]`).toBe(ref.scale);
          idx.forEach((i, j) => {
            if (qs[i] !== ref.q[j]) throw new Error(`[${N}, ${K}] q[${i}] = ${qs[i]}, expected ${ref.q[j]}`);
          });
        }
    }
  });

  it('dequantize: f32(q) * scale in both layouts, as bf16 (default) or f32', async () => {
    const x = await activation(9, 384, 4, 'bf16', false);
    const a = dsk.ops.quantizeActivation(x);
    const w = dsk.randn([200, 300], { seed: 5 });
    const b = dsk.ops.quantizeWeight(w);
    const cases = [
      { qq: a, layout: 'activation' as const, scaleOf: (i: number) => Math.floor(i / 384) * 3 + Math.floor((i % 384) / 128) },
      { qq: b, layout: 'weight' as const, scaleOf: (i: number) => Math.floor(Math.floor(i / 300) / 128) * 3 + Math.floor((i % 300) / 128) },
    ];
    for (const { qq, layout, scaleOf } of cases) {
      const qs = await bits(qq.q), ss = await f64(qq.scale);
      const ref = Array.from(qs, (c, i) => Math.fround(decode(FP8, c) * ss[scaleOf(i)]));
      const out32 = dsk.ops.dequantize(qq.q, qq.scale, { layout, outDtype: 'f32' });
      expect(out32.dtype).toBe('f32');
      expectSameBits(await f64(out32), ref, `dequantize ${layout} f32`);
      const out16 = dsk.ops.dequantize(qq.q, qq.scale, { layout });
      expect(out16.dtype).toBe('bf16');
      expectSameBits(await bits(out16), ref.map((v) => encode(BF16, v)), `dequantize ${layout} bf16`);
    }
  });

  it('swiglu = silu(gate) * up within f32 rounding; bf16 within half an ulp plus that', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const g = dsk.randn([37, 1000], { seed: 6, dtype, std: 3 }), u = dsk.randn([37, 1000], { seed: 7, dtype });
      const out = dsk.ops.swiglu(g, u);
      expect(out.dtype).toBe(dtype);
      const gs = await f64(g), us = await f64(u), os = await f64(out);
      for (let i = 0; i < gs.length; i++) {
        const ref = gs[i] * sigmoid64(gs[i]) * us[i];
        const tol = (dtype === 'f32' ? 2e-6 : 2 ** -8) * Math.abs(ref) + 1e-30;
        if (!(Math.abs(os[i] - ref) <= tol)) throw new Error(`swiglu ${dtype} [${i}]: ${os[i]} vs ${ref}`);
      }
    }
  });

  it('swigluQuant equals quantizeActivation of the f32 swiglu, bit for bit (no bf16 rounding in between)', async () => {
    for (const dtype of ['bf16', 'f32'] as const) {
      const g = dsk.randn([21, 1536], { seed: 8, dtype, std: 2 }), u = dsk.randn([21, 1536], { seed: 9, dtype });
      const fused = dsk.ops.swigluQuant(g, u);
      const ref = dsk.ops.quantizeActivation(dsk.ops.swiglu(g.cast('f32'), u.cast('f32')));
      await expectTensorsBitEqual(fused.q, ref.q, `swigluQuant q ${dtype}`);
      await expectTensorsBitEqual(fused.scale, ref.scale, `swigluQuant scale ${dtype}`);
      await checkActivation(dsk.ops.swiglu(g.cast('f32'), u.cast('f32')), `swiglu f32 then quantize ${dtype}`);
    }
  });

  it('reads column slices in place (x[:, :512] of a [T, 576] tensor; gate/up halves of a fused projection)', async () => {
    const kv = dsk.randn([7, 576], { seed: 10, dtype: 'bf16' });
    const lat = kv.slice(1, 0, 512);
    const a = dsk.ops.quantizeActivation(lat), b = dsk.ops.quantizeActivation(lat.contiguous());
    await expectTensorsBitEqual(a.q, b.q, 'sliced q');
    await expectTensorsBitEqual(a.scale, b.scale, 'sliced scale');
    const gu = dsk.randn([5, 2 * 256], { seed: 11, dtype: 'bf16' });
    const g = gu.slice(1, 0, 256), u = gu.slice(1, 256);
    await expectTensorsBitEqual(dsk.ops.swiglu(g, u), dsk.ops.swiglu(g.contiguous(), u.contiguous()), 'sliced swiglu');
    const f = dsk.ops.swigluQuant(g, u), fc = dsk.ops.swigluQuant(g.contiguous(), u.contiguous());
    await expectTensorsBitEqual(f.q, fc.q, 'sliced swigluQuant');
    // A transposed (non-row-major) input is copied, with the same result.
    const t = dsk.randn([256, 6], { seed: 12 }).transpose();
    await expectTensorsBitEqual(dsk.ops.quantizeActivation(t).q, dsk.ops.quantizeActivation(t.contiguous()).q, 'transposed');
  });

  it('swigluQuant with mIndices computes exactly the rows whose entry is not negative', async () => {
    const R = 9, D = 256;
    const g = dsk.randn([R, D], { seed: 21, dtype: 'bf16' }), u = dsk.randn([R, D], { seed: 22, dtype: 'bf16' });
    const m = dsk.tensor([3, -1, 0, -1, -1, 7, 2, -1, 0], { dtype: 'i32' });
    const all = dsk.ops.swigluQuant(g, u), some = dsk.ops.swigluQuant(g, u, { mIndices: m });
    const qa = (await all.q.toArray({ raw: true })) as Uint8Array, qs = (await some.q.toArray({ raw: true })) as Uint8Array;
    const sa = (await all.scale.toArray()) as Float32Array, ss = (await some.scale.toArray()) as Float32Array;
    for (const r of [0, 2, 5, 6, 8]) {
      expect(Array.from(qs.subarray(r * D, (r + 1) * D)), `row ${r}`).toEqual(Array.from(qa.subarray(r * D, (r + 1) * D)));
      expect(Array.from(ss.subarray(r * 2, r * 2 + 2))).toEqual(Array.from(sa.subarray(r * 2, r * 2 + 2)));
    }
    // Skipped rows are not written: fresh outputs are NaN-poisoned in the test run (vitest.config.ts sets
    // DSK_POISON=1), and with every row skipped every scale is still the poison.
    const none = dsk.ops.swigluQuant(g, u, { mIndices: dsk.full([R], -1, { dtype: 'i32' }) });
    expect(Array.from((await none.scale.toArray()) as Float32Array).every(Number.isNaN)).toBe(true);
    for (const r of [1, 3, 4, 7]) expect(Number.isNaN(ss[r * 2]), `scale of skipped row ${r}`).toBe(true);
  });

  it('empty batches give empty outputs', async () => {
    const { q, scale } = dsk.ops.quantizeActivation(dsk.randn([0, 256], { dtype: 'bf16' }));
    expect(q.shape).toEqual([0, 256]);
    expect(scale.shape).toEqual([0, 2]);
    expect((await scale.toArray()).length).toBe(0);
    expect(dsk.ops.swigluQuant(dsk.randn([0, 128]), dsk.randn([0, 128])).q.shape).toEqual([0, 128]);
    expect(dsk.ops.quantizeWeight(dsk.randn([0, 64])).scale.shape).toEqual([0, 1]);
  });
});

describe.each(gpuDevices)('quantization on %s: bit-identical to the CPU reference', (device) => {
  it('quantizeActivation, swiglu, swigluQuant over ragged shapes (NaN and inf included)', async () => {
    for (const [M, K] of [[1, 7168], [37, 7168], [130, 1536], [1, 128], [65, 384]] as const)
      for (const dtype of ['bf16', 'f32'] as const) {
        const x = await activation(M, K, M * 7 + K, dtype);
        const c = dsk.ops.quantizeActivation(x), d = dsk.ops.quantizeActivation(on(x, device));
        await expectTensorsBitEqual(d.q.to('cpu'), c.q, `q [${M}, ${K}] ${dtype}`);
        await expectTensorsBitEqual(d.scale.to('cpu'), c.scale, `scale [${M}, ${K}] ${dtype}`);
        const u = dsk.randn([M, K], { seed: M + K, dtype });
        await expectTensorsBitEqual(dsk.ops.swiglu(on(x, device), on(u, device)).to('cpu'), dsk.ops.swiglu(x, u), `swiglu [${M}, ${K}] ${dtype}`);
        const fc = dsk.ops.swigluQuant(x, u), fd = dsk.ops.swigluQuant(on(x, device), on(u, device));
        await expectTensorsBitEqual(fd.q.to('cpu'), fc.q, `swigluQuant q [${M}, ${K}] ${dtype}`);
        await expectTensorsBitEqual(fd.scale.to('cpu'), fc.scale, `swigluQuant scale [${M}, ${K}] ${dtype}`);
      }
  });

  it('swigluQuant with mIndices: the computed rows equal the CPU\'s, bit for bit', async () => {
    const R = 300, D = 512;
    const g = dsk.randn([R, D], { seed: 31, dtype: 'bf16' }), u = dsk.randn([R, D], { seed: 32, dtype: 'bf16' });
    const mi = Int32Array.from({ length: R }, (_, r) => (r % 3 === 1 ? -1 : r % 5));
    const m = dsk.tensor(mi, { dtype: 'i32' });
    const c = dsk.ops.swigluQuant(g, u, { mIndices: m }), d = dsk.ops.swigluQuant(on(g, device), on(u, device), { mIndices: on(m, device) });
    const qc = (await c.q.toArray({ raw: true })) as Uint8Array, qd = (await d.q.to('cpu').toArray({ raw: true })) as Uint8Array;
    const sc = (await c.scale.toArray()) as Float32Array, sd = (await d.scale.to('cpu').toArray()) as Float32Array;
    for (let r = 0; r < R; r++) {
      if (mi[r] < 0) continue;
      expect(Array.from(qd.subarray(r * D, (r + 1) * D)), `q row ${r}`).toEqual(Array.from(qc.subarray(r * D, (r + 1) * D)));
      expect(Array.from(sd.subarray(r * 4, r * 4 + 4)), `scale row ${r}`).toEqual(Array.from(sc.subarray(r * 4, r * 4 + 4)));
    }
  });

  it('column slices and odd widths on the device (unaligned rows, scalar paths)', async () => {
    const kv = dsk.randn([9, 576], { seed: 13, dtype: 'bf16' });
    const c = dsk.ops.quantizeActivation(kv.slice(1, 64, 576 - 0).slice(1, 0, 384));
    const d = dsk.ops.quantizeActivation(on(kv, device).slice(1, 64, 576).slice(1, 0, 384));
    await expectTensorsBitEqual(d.q.to('cpu'), c.q, 'offset slice q');
    const gu = dsk.randn([11, 203 * 2], { seed: 14 });
    const gd = on(gu, device);
    await expectTensorsBitEqual(dsk.ops.swiglu(gd.slice(1, 0, 203), gd.slice(1, 203)).to('cpu'), dsk.ops.swiglu(gu.slice(1, 0, 203), gu.slice(1, 203)), 'odd swiglu');
  });

  it('quantizeWeight and dequantize over ragged blocks', async () => {
    for (const [N, K, dtype] of [[2112, 7168, 'bf16'], [300, 200, 'f32'], [129, 7168, 'bf16'], [7168, 130, 'bf16']] as const) {
      const w = dsk.randn([N, K], { seed: N * 3 + K, dtype, std: 0.05 });
      const c = dsk.ops.quantizeWeight(w), d = dsk.ops.quantizeWeight(on(w, device));
      await expectTensorsBitEqual(d.q.to('cpu'), c.q, `weight q [${N}, ${K}]`);
      await expectTensorsBitEqual(d.scale.to('cpu'), c.scale, `weight scale [${N}, ${K}]`);
      for (const outDtype of ['bf16', 'f32'] as const)
        await expectTensorsBitEqual(dsk.ops.dequantize(d.q, d.scale, { layout: 'weight', outDtype }).to('cpu'),
          dsk.ops.dequantize(c.q, c.scale, { layout: 'weight', outDtype }), `dequantize weight [${N}, ${K}] ${outDtype}`);
    }
    const x = await activation(37, 7168, 15, 'bf16');
    const a = dsk.ops.quantizeActivation(x);
    for (const outDtype of ['bf16', 'f32'] as const)
      await expectTensorsBitEqual(dsk.ops.dequantize(on(a.q, device), on(a.scale, device), { layout: 'activation', outDtype }).to('cpu'),
        dsk.ops.dequantize(a.q, a.scale, { layout: 'activation', outDtype }), `dequantize activation ${outDtype}`);
  });
});

describe('quantization: bad input is rejected before anything is enqueued', () => {
  it('quantizeActivation / quantizeWeight', () => {
    expect(() => dsk.ops.quantizeActivation(dsk.randint([2, 128], 0, 5))).toThrow(/^quantizeActivation: x must have dtype bf16 or f32, got i32/);
    expect(() => dsk.ops.quantizeActivation(dsk.randn([2, 100]))).toThrow(RangeError);
    expect(() => dsk.ops.quantizeActivation(dsk.randn([2, 100]))).toThrow(/quantizeActivation: x.shape\[-1\] must be a multiple of 128, got 100/);
    const gone = dsk.randn([2, 128]);
    gone.dispose();
    expect(() => dsk.ops.quantizeActivation(gone)).toThrow(/quantizeActivation: x has been disposed/);
    expect(() => dsk.ops.quantizeActivation([1, 2] as unknown as dsk.Tensor)).toThrow(TypeError);
    expect(() => dsk.ops.quantizeWeight(dsk.randn([256]))).toThrow(/quantizeWeight: w must have 2 dims/);
    expect(() => dsk.ops.quantizeWeight(dsk.randn([4, 4], { dtype: 'f16' }))).toThrow(TypeError);
  });

  it('dequantize', () => {
    const { q, scale } = dsk.ops.quantizeActivation(dsk.randn([4, 256]));
    expect(() => dsk.ops.dequantize(q, scale, undefined as unknown as dsk.ops.DequantizeOptions)).toThrow(/dequantize: options.layout is required/);
    expect(() => dsk.ops.dequantize(q, scale, { layout: 'rows' as 'weight' })).toThrow(/dequantize: options.layout must be one of/);
    expect(() => dsk.ops.dequantize(q, scale, { layout: 'activation', outDtype: 'f16' as 'f32' })).toThrow(/dequantize: options.outDtype/);
    expect(() => dsk.ops.dequantize(q, scale, { layout: 'weight' })).toThrow(/dequantize: scale must have shape \[1, 2\]/);
    expect(() => dsk.ops.dequantize(scale, scale, { layout: 'activation' })).toThrow(/dequantize: q must have dtype fp8e4m3/);
    expect(() => dsk.ops.dequantize(q, q, { layout: 'activation' })).toThrow(/dequantize: scale must have dtype f32/);
  });

  it('swiglu / swigluQuant', () => {
    const g = dsk.randn([2, 128], { dtype: 'bf16' });
    expect(() => dsk.ops.swiglu(g, dsk.randn([2, 128]))).toThrow(/^swiglu: up must have the dtype of gate/);
    expect(() => dsk.ops.swiglu(g, dsk.randn([2, 64], { dtype: 'bf16' }))).toThrow(/^swiglu: up must have shape \[2, 128\]/);
    expect(() => dsk.ops.swigluQuant(dsk.randn([2, 64]), dsk.randn([2, 64]))).toThrow(/^swigluQuant: gate.shape\[-1\] must be a multiple of 128/);
    expect(() => dsk.ops.swiglu(g, null as unknown as dsk.Tensor)).toThrow(/swiglu: up must be a Tensor/);
    expect(() => dsk.ops.swigluQuant(g, g, { mIndices: dsk.tensor([0, 1]) })).toThrow(/^swigluQuant: mIndices must have dtype i32/);
    expect(() => dsk.ops.swigluQuant(g, g, { mIndices: dsk.tensor([0, 1, 2], { dtype: 'i32' }) })).toThrow(/^swigluQuant: mIndices must have one entry per row \(2\), got 3/);
  });

  it.runIf(hasCuda)('tensors on different devices', () => {
    const g = dsk.randn([2, 128]), u = dsk.randn([2, 128], { device: 'cuda:0' });
    expect(() => dsk.ops.swiglu(g, u)).toThrow(/^swiglu: up is on cuda:0 but gate is on cpu/);
    const { q, scale } = dsk.ops.quantizeActivation(g);
    expect(() => dsk.ops.dequantize(q, scale.to('cuda:0'), { layout: 'activation' })).toThrow(TypeError);
  });
});
