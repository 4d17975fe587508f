// The expert-parallel MoE layer (gate -> ep.dispatch -> grouped fp8 GEMMs with SwiGLU -> ep.combine ->
// + shared expert) in a group of one rank on the CPU, against the single-device layer built from the same
// ops (moePermute -> grouped GEMMs -> moeUnpermute), and against float64 math on the dequantized weights.
import { beforeAll, describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { Rng } from '../lib/dist/routing';

const E = 8, K = 2, H = 256, I = 128, Is = 128, T = 40;

interface QW {
  q: dsk.Tensor;
  scale: dsk.Tensor;
  /** Dequantized values, row-major [G, N, K] (float64). */
  deq: Float64Array;
}

/** Random weights [G, N, Kd] quantized per 128x128 block (scale = amax / 448), in JS. */
async function quantWeights(G: number, N: number, Kd: number, seed: number, std: number): Promise<QW> {
  const rng = new Rng(seed);
  const w = Float64Array.from({ length: G * N * Kd }, () => rng.normal() * std);
  const nb = N / 128, kb = Kd / 128;
  const scale = new Float32Array(G * nb * kb);
  for (let g = 0; g < G; g++)
    for (let b = 0; b < nb; b++)
      for (let c = 0; c < kb; c++) {
        let amax = 1e-4;
        for (let n = 0; n < 128; n++) for (let k = 0; k < 128; k++) amax = Math.max(amax, Math.abs(w[(g * N + b * 128 + n) * Kd + c * 128 + k]));
        scale[(g * nb + b) * kb + c] = Math.fround(amax / 448);
      }
  const sOf = (g: number, n: number, k: number) => scale[(g * nb + Math.floor(n / 128)) * kb + Math.floor(k / 128)];
  const scaled = new Float32Array(G * N * Kd);
  for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) for (let k = 0; k < Kd; k++) scaled[(g * N + n) * Kd + k] = w[(g * N + n) * Kd + k] / sOf(g, n, k);
  const shape = G === 1 ? [N, Kd] : [G, N, Kd];
  const q = dsk.tensor(scaled, { shape }).cast('fp8e4m3');
  const qv = (await q.toArray()) as Float32Array;
  const deq = new Float64Array(qv.length);
  for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) for (let k = 0; k < Kd; k++) deq[(g * N + n) * Kd + k] = qv[(g * N + n) * Kd + k] * sOf(g, n, k);
  return { q, scale: dsk.tensor(scale, { shape: G === 1 ? [nb, kb] : [G, nb, kb] }), deq };
}

function singleDeviceLayer(x: dsk.Tensor, gate: dsk.Tensor, w13: QW, w2: QW, s13: QW, s2: QW): dsk.Tensor {
  const o = dsk.ops;
  const logits = o.gemm(x, gate, { outDtype: 'f32' });
  const { indices, weights } = o.moeGate(logits, { scoring: 'sigmoid', topk: K, normTopk: true, routedScale: 1 });
  const xq = o.quantizeActivation(x);
  const p = o.moePermute(xq.q, indices, { numExperts: E, align: 128, scale: xq.scale });
  const h13 = o.fp8GroupedGemmContiguous(p.x, p.scale!, w13.q, w13.scale, p.mIndices);
  const hq = o.swigluQuant(h13.slice(1, 0, I).contiguous(), h13.slice(1, I, 2 * I).contiguous());
  const y = o.fp8GroupedGemmContiguous(hq.q, hq.scale, w2.q, w2.scale, p.mIndices);
  const routed = o.moeUnpermute(y, p.map, weights);
  const sh13 = o.fp8Gemm(xq.q, xq.scale, s13.q, s13.scale);
  const shq = o.swigluQuant(sh13.slice(1, 0, Is).contiguous(), sh13.slice(1, Is, 2 * Is).contiguous());
  return o.add(routed, o.fp8Gemm(shq.q, shq.scale, s2.q, s2.scale));
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe('EpMoeLayer in a group of one rank (cpu)', () => {
  beforeAll(async () => {
    await dsk.dist.init({ device: 'cpu', ep: { numExperts: E } });
  });

  it('equals the single-device layer, and float64 math within fp8 noise', async () => {
    const x = dsk.randn([T, H], { seed: 1 }).cast('bf16');
    const gate = dsk.randn([E, H], { seed: 2, std: 0.1 }).cast('bf16');
    const w13 = await quantWeights(E, 2 * I, H, 3, 0.06);
    const w2 = await quantWeights(E, H, I, 4, 0.06);
    const s13 = await quantWeights(1, 2 * Is, H, 5, 0.06);
    const s2 = await quantWeights(1, H, Is, 6, 0.06);
    const layer = new dsk.EpMoeLayer(
      { numExperts: E, topk: K, interSize: I, scoring: 'sigmoid', normTopk: true },
      { gate, w13: w13.q, w13Scale: w13.scale, w2: w2.q, w2Scale: w2.scale, shared: { w13: s13.q, w13Scale: s13.scale, w2: s2.q, w2Scale: s2.scale } },
    );
    const ep = (await (await layer.forward(x)).toArray()) as Float32Array;
    const single = (await singleDeviceLayer(x, gate, w13, w2, s13, s2).toArray()) as Float32Array;
    expect(relErr(ep, single)).toBeLessThan(1e-2);

    // float64: the routing the device chose, then every expert on un-quantized activations.
    const logits = dsk.ops.gemm(x, gate, { outDtype: 'f32' });
    const r = dsk.ops.moeGate(logits, { scoring: 'sigmoid', topk: K, normTopk: true, routedScale: 1 });
    const idx = (await r.indices.toArray()) as Int32Array, wts = (await r.weights.toArray()) as Float32Array;
    const xv = (await x.toArray()) as Float32Array;
    const silu = (v: number) => v / (1 + Math.exp(-v));
    const mlp = (w1: Float64Array, o1: number, w3: Float64Array, o2: number, inter: number, t: number, out: Float64Array, scale: number) => {
      const h = new Float64Array(inter);
      for (let i = 0; i < inter; i++) {
        let g = 0, u = 0;
        for (let k = 0; k < H; k++) {
          g += w1[o1 + i * H + k] * xv[t * H + k];
          u += w1[o1 + (inter + i) * H + k] * xv[t * H + k];
        }
        h[i] = silu(g) * u;
      }
      for (let n = 0; n < H; n++) {
        let s = 0;
        for (let i = 0; i < inter; i++) s += w3[o2 + n * inter + i] * h[i];
        out[n] += scale * s;
      }
    };
    const ref = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      const row = new Float64Array(H);
      for (let k = 0; k < K; k++) {
        const e = idx[t * K + k];
        mlp(w13.deq, e * 2 * I * H, w2.deq, e * H * I, I, t, row, wts[t * K + k]);
      }
      mlp(s13.deq, 0, s2.deq, 0, Is, t, row, 1);
      ref.set(row, t * H);
    }
    expect(relErr(ep, ref)).toBeLessThan(6e-2);
  });
});
