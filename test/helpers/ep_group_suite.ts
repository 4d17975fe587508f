// The exchange in a group of one rank, on one device: dispatch against the simulation bit for bit,
// combine against the simulation and float64 math, edge cases, argument checks.
import { beforeAll, describe, expect, it } from 'vitest';
import * as dsk from '../../lib/index';
import { simulateCombine, simulateDispatch, bf16Round } from '../../lib/dist/simulate';
import { deepepRouting } from '../../lib/dist/routing';
import { compareReceived } from './ep_check';

export function groupSuite(device: 'cpu' | 'cuda:0'): void {
describe(`a group of one rank on ${device}`, () => {
  beforeAll(async () => {
    await dsk.dist.init({ device, ep: { numExperts: 32 } });
  });

  for (const fp8 of [false, true]) {
    it(`dispatch (${fp8 ? 'fp8' : 'bf16'}) matches the simulation and combine is sum(w * x)`, async () => {
      const T = 300, H = 256, K = 8, E = 32;
      const r = deepepRouting({ tokens: T, numExperts: E, topk: K, numGroups: 8, topkGroups: 4, seed: 3 });
      const idx = dsk.tensor(r.indices, { dtype: 'i32', shape: [T, K], device });
      const w = dsk.tensor(r.weights, { dtype: 'f32', shape: [T, K], device });
      const xf = dsk.randn([T, H], { seed: 5, device });
      const xb = xf.cast('bf16');
      let xin: dsk.Tensor | { q: dsk.Tensor; scale: dsk.Tensor } = xb;
      let scale: dsk.Tensor | undefined;
      if (fp8) {
        scale = dsk.rand([T, H / 128], { seed: 6, low: 0.01, high: 0.02, device });
        xin = { q: xf.cast('fp8e4m3'), scale };
      }
      const d = await dsk.ep.dispatch(xin, idx, w);
      const sim = simulateDispatch([r.indices], { numExperts: E, topk: K })[0];
      const srcX = (await (fp8 ? (xin as { q: dsk.Tensor }).q : xb).toArray({ raw: true })) as Uint8Array | Uint16Array;
      const srcScale = scale ? ((await scale.toArray()) as Float32Array) : undefined;
      const got = {
        mIndices: (await d.mIndices.toArray()) as Int32Array,
        x: (await d.x.toArray({ raw: true })) as Uint8Array | Uint16Array,
        scale: d.scale ? ((await d.scale.toArray()) as Float32Array) : undefined,
        weights: (await d.weights.toArray()) as Float32Array,
        tokensPerExpert: d.tokensPerExpert,
      };
      const bad = compareReceived(got, sim, { x: () => srcX, scale: () => srcScale!, weights: () => r.weights }, H, K);
      expect(bad).toEqual({ rows: 0, mIndices: 0, payload: 0, scale: 0, weights: 0, counts: 0 });
      // Identity experts: y = x as bf16 (dequantized for fp8).
      let y = d.x;
      if (fp8) {
        const q = (await d.x.toArray()) as Float32Array, sc = got.scale!;
        const yv = new Float32Array(q.length);
        for (let i = 0; i < q.length; i++) yv[i] = bf16Round(q[i] * sc[Math.floor(i / 128)]);
        y = dsk.tensor(yv, { shape: d.x.shape, device }).cast('bf16');
      }
      const out = await dsk.ep.combine(y, d.handle);
      const ys = (await y.toArray()) as Float32Array;
      const expected = simulateCombine([ys], [sim], [r.indices], [r.weights], { numExperts: E, topk: K, hidden: H })[0];
      const o = (await out.toArray()) as Float32Array;
      let exact = 0;
      for (let i = 0; i < o.length; i++) exact += o[i] === expected[i] || (Number.isNaN(o[i]) && Number.isNaN(expected[i])) ? 1 : 0;
      expect(exact).toBe(o.length);
      // ... and within bf16 rounding of float64 sum_k w_k * x[t] (identity experts).
      const xs = fp8 ? null : ((await xb.toArray()) as Float32Array);
      const qd = fp8 ? ((await (xin as { q: dsk.Tensor }).q.toArray()) as Float32Array) : null;
      let worst = 0;
      for (let t = 0; t < T; t++) {
        let wsum = 0;
        for (let k = 0; k < K; k++) wsum += r.weights[t * K + k];
        for (let h = 0; h < H; h++) {
          const xv = fp8 ? bf16Round(qd![t * H + h] * srcScale![t * (H / 128) + Math.floor(h / 128)]) : xs![t * H + h];
          const ref = wsum * xv;
          worst = Math.max(worst, Math.abs(o[t * H + h] - ref) / (Math.abs(ref) + 1e-2));
        }
      }
      expect(worst).toBeLessThan(1.6e-2);
      // Asynchronous dispatch and combine (the layout is written at ep.wait()): the same bits.
      const da = await dsk.ep.dispatch(xin, d.handle, { async: true });
      const oa = await dsk.ep.combine(y, d.handle, { async: true });
      await dsk.ep.wait();
      const xa = (await da.x.toArray({ raw: true })) as Uint8Array | Uint16Array;
      const sa = da.scale ? ((await da.scale.toArray()) as Float32Array) : undefined;
      let asyncBad = 0;
      for (let i = 0; i < xa.length; i++) if (got.mIndices[Math.floor(i / H)] >= 0 && xa[i] !== got.x[i]) asyncBad++;
      if (sa) for (let i = 0; i < sa.length; i++) if (got.mIndices[Math.floor(i / (H / 128))] >= 0 && sa[i] !== got.scale![i]) asyncBad++;
      expect(asyncBad).toBe(0);
      expect(Array.from((await oa.toArray()) as Float32Array)).toEqual(Array.from(o));
      // A cached dispatch of new data along the same routing lands in the same rows.
      const x2 = dsk.randn([T, H], { seed: 9, device }).cast('bf16');
      if (!fp8) {
        const d2 = await dsk.ep.dispatch(x2, d.handle);
        const rows2 = (await d2.x.toArray({ raw: true })) as Uint16Array;
        const src2 = (await x2.toArray({ raw: true })) as Uint16Array;
        const bad2 = compareReceived({ ...got, x: rows2 }, sim, { x: () => src2, weights: () => r.weights }, H, K);
        expect(bad2.payload).toBe(0);
      }
    });
  }

  it("the default buffer carries DeepSeek-V3's tokens (hidden 7168, top-8) in bf16 and fp8", async () => {
    const T = 3, H = 7168, K = 8;
    const idx = dsk.tensor([[0, 1, 2, 3, 4, 5, 6, 7], [31, 30, 29, 28, 27, 26, 25, 24], [8, 9, 10, 11, 12, 13, 14, 15]], { dtype: 'i32', device });
    const w = dsk.rand([T, K], { seed: 4, device });
    const xf = dsk.randn([T, H], { seed: 8, device });
    const d = await dsk.ep.dispatch(xf.cast('bf16'), idx, w);
    expect(d.x.shape).toEqual([24 * 128, H]);  // experts 0-15 and 24-31 used
    const q = await dsk.ep.dispatch({ q: xf.cast('fp8e4m3'), scale: dsk.rand([T, H / 128], { seed: 3, device }) }, idx, w);
    expect(q.scale!.shape).toEqual([24 * 128, H / 128]);
    const x0 = (await xf.cast('bf16').toArray({ raw: true })) as Uint16Array;
    const r0 = (await d.x.toArray({ raw: true })) as Uint16Array;
    expect(Array.from(r0.subarray(128 * H, 128 * H + H))).toEqual(Array.from(x0.subarray(0, H)));  // expert 1's first row: token 0
  });

  it('handles 0 and 1 tokens, and tokens routed nowhere get zeros', async () => {
    for (const T of [0, 1]) {
      const idx = dsk.tensor(T ? [[3, -1, 7, 31]] : [], { dtype: 'i32', shape: [T, 4], device });
      const w = dsk.tensor(T ? [[0.5, 9, 0.25, 2]] : [], { dtype: 'f32', shape: [T, 4], device });
      const x = dsk.randn([T, 128], { seed: 2, device }).cast('bf16');
      const d = await dsk.ep.dispatch(x, idx, w);
      expect(d.x.shape).toEqual([T ? 3 * 128 : 0, 128]);
      const out = await dsk.ep.combine(d.x, d.handle);
      expect(out.shape).toEqual([T, 128]);
      if (T) {
        const o = (await out.toArray()) as Float32Array, xv = (await x.toArray()) as Float32Array;
        for (let h = 0; h < 128; h++) expect(o[h]).toBe(bf16Round(Math.fround(Math.fround(Math.fround(0.5 * xv[h]) + Math.fround(0.25 * xv[h])) + Math.fround(2 * xv[h]))));
      }
    }
    const none = await dsk.ep.dispatch(dsk.randn([2, 64], { seed: 1, device }).cast('bf16'), dsk.tensor([[-1], [-1]], { dtype: 'i32', device }), dsk.tensor([[1], [1]], { dtype: 'f32', device }));
    expect(none.x.shape).toEqual([0, 64]);
    const z = (await (await dsk.ep.combine(none.x, none.handle)).toArray()) as Float32Array;
    expect(Array.from(z)).toEqual(new Array(128).fill(0));
  });

  it('rejects bad arguments before anything is queued', async () => {
    const idx = dsk.tensor([[1, 2]], { dtype: 'i32', device });
    const w = dsk.tensor([[1, 1]], { dtype: 'f32', device });
    const x = dsk.randn([1, 64], { seed: 1, device }).cast('bf16');
    expect(() => dsk.ep.dispatch(dsk.randn([1, 64], { device }), idx, w)).toThrow(/ep.dispatch: x must have dtype bf16/);
    expect(() => dsk.ep.dispatch(x, idx, dsk.tensor([[1, 1, 1]], { dtype: 'f32', device }))).toThrow(/ep.dispatch: weights must have shape \[1, 2\]/);
    expect(() => dsk.ep.dispatch(x, dsk.tensor([[1, 2], [3, 4]], { dtype: 'i32', device }), w)).toThrow(/indices must have shape \[1, 2\]/);
    expect(() => dsk.ep.dispatch(dsk.randn([1, 60], { seed: 1, device }).cast('bf16'), idx, w)).toThrow(/multiple of 8/);
    expect(() => dsk.ep.dispatch({ q: dsk.randn([1, 100], { device }).cast('fp8e4m3'), scale: dsk.ones([1, 1], { device }) }, idx, w)).toThrow(/multiple of 128/);
    if (typeof (dsk.ops as Record<string, unknown>).quantizeActivation !== 'function')
      expect(() => dsk.ep.dispatch(x, idx, w, { fp8: true })).toThrow(/ep.dispatch: fp8: true needs x as \{ q, scale \}/);
    const d = await dsk.ep.dispatch(x, idx, w);
    expect(() => dsk.ep.combine(dsk.randn([3, 64], { device }).cast('bf16'), d.handle)).toThrow(/ep.combine: y must have shape \[256, 64\]/);
    expect(() => dsk.ep.combine(d.x, {} as dsk.ep.EpHandle)).toThrow(/handle must be the handle/);
    expect(() => dsk.ep.setNumSMs(3)).toThrow(/even integer/);
  });
});
}
