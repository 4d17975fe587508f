// The model's CPU forward pass against an independent float64 implementation (test/helpers/
// deepseek_reference.ts) on generated checkpoints, layer by layer; decode through the paged cache
// against a full re-prefill; the MTP module against the reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import type { Model } from '../lib/runner/model';
import type { ForwardBatch } from '../lib/model/forward';
import { ReferenceModel, relErr } from './helpers/deepseek_reference';
import { testModel } from './helpers/tiny_model';

const i32 = (a: ArrayLike<number>, shape?: number[]) => dsk.tensor(Int32Array.from(a), { dtype: 'i32', shape });

async function read(t: dsk.Tensor): Promise<Float32Array> {
  const a = (await t.toArray()) as Float32Array;
  t.dispose();
  return a;
}

/** Row r of a [R, C] array. */
const row = (a: ArrayLike<number>, r: number, C: number) => Array.prototype.slice.call(a, r * C, (r + 1) * C) as number[];

function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/** Decode batch for sequences (cache ids) each feeding `toks[i]` (sq tokens) at positions n[i]... */
function decodeBatch(m: Model, seqs: { id: number; n: number; toks: number[] }[]): ForwardBatch {
  const sq = seqs[0].toks.length;
  const maxBlocks = m.engine.maxBlocks;
  const bt = new Int32Array(seqs.length * maxBlocks);
  seqs.forEach((s, i) => bt.set(m.cache.blocks(s.id), i * maxBlocks));
  return {
    mode: 'decode',
    ids: i32(seqs.flatMap((s) => s.toks)),
    positions: i32(seqs.flatMap((s) => s.toks.map((_, j) => s.n + j))),
    slots: i32(seqs.flatMap((s) => s.toks.map((_, j) => m.cache.slot(s.id, s.n + j)))),
    blockTable: dsk.tensor(bt, { dtype: 'i32', shape: [seqs.length, maxBlocks] }),
    seqLens: i32(seqs.map((s) => s.n + sq)),
    batch: seqs.length,
    sq,
  };
}

function prefillBatch(m: Model, seqs: { id: number; toks: number[] }[]): ForwardBatch {
  const cu = [0];
  for (const s of seqs) cu.push(cu[cu.length - 1] + s.toks.length);
  return {
    mode: 'prefill',
    ids: i32(seqs.flatMap((s) => s.toks)),
    positions: i32(seqs.flatMap((s) => s.toks.map((_, j) => j))),
    slots: i32(seqs.flatMap((s) => s.toks.map((_, j) => m.cache.slot(s.id, j)))),
    cuSeqlens: i32(cu),
    maxSeqlen: Math.max(...seqs.map((s) => s.toks.length)),
  };
}

function disposeBatch(b: ForwardBatch): void {
  for (const v of Object.values(b)) if (v instanceof dsk.Tensor) v.dispose();
}

// Tolerances. With bf16 weights the model tracks the float64 reference to about 1% (bf16 rounding of
// hidden states), a little more in MoE layers, whose routed experts the runner keeps in FP8. With FP8 linears every linear's input is quantized to
// e4m3 (3 mantissa bits): the reference quantizes the same way, but bf16-vs-float64 differences flip
// some rounding decisions (each worth ~6% of an element), so the two agree to the FP8 noise level,
// ~5% per layer; a structural error (a wrong rope, scale, route, cache slot) is O(1). A token whose
// expert choice is a near-tie (relative routing margin below `tie`) may route differently and is not compared.
const TOL = {
  bf16: { dense: 1e-2, layer: 4e-2, logits: 2e-2, decode: 8e-2, free: 0.2, tie: 2e-2 },
  fp8: { dense: 0.12, layer: 0.12, logits: 0.12, decode: 0.2, free: 0.3, tie: 0.08 },
};

describe.each([
  { preset: 'tiny' as const, dtype: 'fp8' as const, quantize: undefined },
  { preset: 'tiny' as const, dtype: 'bf16' as const, quantize: undefined },
  { preset: 'tiny-v2' as const, dtype: 'bf16' as const, quantize: undefined },
  { preset: 'tiny-v2' as const, dtype: 'bf16' as const, quantize: 'fp8' as const },
])('forward of $preset ($dtype weights, quantize: $quantize) on cpu', ({ preset, dtype, quantize }) => {
  const tol = dtype === 'bf16' && !quantize ? TOL.bf16 : TOL.fp8;
  let model: Model;
  let ref: ReferenceModel;
  let ids: number[];
  beforeAll(async () => {
    const dir = await testModel({ preset, seed: 5, dtype });
    model = await dsk.loadModel(dir, { device: 'cpu', quantize, maxSeqLen: 256, kvCacheTokens: 1024 });
    ref = new ReferenceModel(dir, quantize === 'fp8' ? 'all' : 'experts');
    ids = model.tokenizer.encode('The quick brown fox jumps over the lazy dog, 12345! Pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump.');
  });
  afterAll(() => model?.dispose());

  it('matches the float64 reference layer by layer, and in its logits', async () => {
    const hs: dsk.Tensor[] = [];
    const logits = model.logits(ids, { onLayer: (_, h) => hs.push(h) });
    const T = ids.length, D = model.config.hiddenSize, V = model.config.vocabSize;
    expect(hs.length).toBe(model.config.numLayers);
    const got: Float64Array[] = [];
    for (const h of hs) got.push(Float64Array.from(await read(h)));
    // Each layer on the model's own input (the previous layer's output): errors do not compound, and a
    // token whose expert choice is a near-tie (margin below what bf16 inputs can move) may route differently.
    for (let i = 0; i < got.length; i++) {
      expect(got[i].every(Number.isFinite)).toBe(true);
      const input = i === 0 ? ref.embed(ids) : got[i - 1];
      const want = ref.layer(input, T, i);
      const margin = ref.lastMargin;
      const errs: number[] = [];
      for (let t = 0; t < T; t++) {
        const e = relErr(got[i].subarray(t * D, (t + 1) * D), want.subarray(t * D, (t + 1) * D));
        if (margin[t] >= tol.tie) errs.push(e);
      }
      expect(errs.length, `layer ${i}: tokens without a near-tie`).toBeGreaterThanOrEqual(T / 3);
      expect(Math.max(...errs), `layer ${i}`).toBeLessThan(ref.isMoe(i) ? tol.layer : tol.dense);
    }
    // Final norm and lm_head on the model's last hidden state.
    // (logits of the last R positions: the float64 lm_head over 129280 rows is the slow part)
    const R = 6, t0 = T - R;
    const gl = (await read(logits)).subarray(t0 * V);
    const wl = ref.logits(ref.rmsNorm(got[got.length - 1].subarray(t0 * D), R, 'model.norm.weight'), R);
    expect(relErr(gl, wl)).toBeLessThan(tol.logits);
    // End to end, free running: the whole reference forward from the ids alone (routing near-ties can
    // make single tokens differ, so the bound is looser).
    const free = ref.forward(ids);
    expect(relErr(got[got.length - 1], free.layers[free.layers.length - 1])).toBeLessThan(tol.free);
  });

  it('decodes through the paged cache like a full re-prefill (one token, two tokens, a batch)', async () => {
    const V = model.config.vocabSize, D = model.config.hiddenSize;
    // Layer 0 is dense in both presets: its output compares strictly (no routing in between); the logits
    // pass through MoE layers, where a near-tie can route one token differently, so most steps must match.
    let l0full!: Float32Array;
    const fullT = model.logits(ids, { onLayer: (i, h) => (i === 0 ? read(h).then((a) => (l0full = a)) : h.dispose()) });
    const full = await read(fullT);
    const P = 5;
    const A = 901, B = 902;
    model.cache.reserve(A, ids.length);
    model.cache.reserve(B, ids.length);
    const logitErrs: number[] = [];
    const step = async (b: ForwardBatch, positions: number[]): Promise<Float32Array> => {
      let l0!: Promise<Float32Array>;
      const h = model.network.forward(b, model.cache.caches, { onLayer: (i, x) => (i === 0 ? (l0 = read(x)) : x.dispose()) });
      const l = await read(model.network.logits(h));
      h.dispose();
      disposeBatch(b);
      const got0 = await l0;
      positions.forEach((p, j) => {
        expect(relErr(got0.subarray(j * D, (j + 1) * D), l0full.subarray(p * D, (p + 1) * D)), `layer 0 at ${p}`).toBeLessThan(tol.decode);
        const e = relErr(row(l, j, V), row(full, p, V));
        expect(Number.isFinite(e)).toBe(true);
        logitErrs.push(e);
      });
      return l;
    };
    try {
      // Two sequences prefilled together: the same values as the single-sequence prefill.
      const pb = prefillBatch(model, [{ id: A, toks: ids.slice(0, P) }, { id: B, toks: ids.slice(0, 3) }]);
      const h = model.network.forward(pb, model.cache.caches);
      const pl = await read(model.network.logits(h));
      h.dispose();
      disposeBatch(pb);
      expect(relErr(row(pl, P - 1, V), row(full, P - 1, V))).toBeLessThan(1e-6);
      expect(relErr(row(pl, P + 2, V), row(full, 2, V))).toBeLessThan(1e-6);
      // A decodes one token per step, B two (Sq = 2, as MTP verification does).
      let nA = P, nB = 3, lastA!: Float32Array;
      while (nA < ids.length) {
        lastA = await step(decodeBatch(model, [{ id: A, n: nA, toks: [ids[nA]] }]), [nA]);
        nA++;
        if (nB + 2 <= ids.length) {
          await step(decodeBatch(model, [{ id: B, n: nB, toks: [ids[nB], ids[nB + 1]] }]), [nB, nB + 1]);
          nB += 2;
        }
      }
      const sorted = [...logitErrs].sort((x, y) => x - y);
      expect(sorted[Math.floor(sorted.length * 0.75)]).toBeLessThan(tol.decode);
      // Both sequences in one decode call give what each gives alone, bit for bit on the CPU.
      const last = ids.length - 1;
      const alone = await step(decodeBatch(model, [{ id: B, n: 2, toks: [ids[2]] }]), [2]);
      const both = await step(decodeBatch(model, [{ id: A, n: last, toks: [ids[last]] }, { id: B, n: 2, toks: [ids[2]] }]), [last, 2]);
      expect(relErr(row(both, 0, V), lastA)).toBeLessThan(1e-6);
      expect(relErr(row(both, 1, V), alone)).toBeLessThan(1e-6);
    } finally {
      model.cache.free(A);
      model.cache.free(B);
    }
  });

  // The MTP module exists on the V3-style preset only (V2 has none), so the check is declared there.
  if (preset === 'tiny') it('runs the MTP module like the reference', async () => {
    const T = ids.length;
    const S = 903;
    model.cache.reserve(S, T);
    try {
      const pb = prefillBatch(model, [{ id: S, toks: ids }]);
      const h = model.network.forward(pb, model.cache.caches);
      const next = [...ids.slice(1), 7];
      const nb = { ...pb, ids: i32(next) };
      const mh = model.network.mtpForward(0, h, nb, model.cache.caches[model.config.numLayers]);
      const got = await read(mh);
      const hostH = await read(h);
      disposeBatch(pb);
      nb.ids.dispose();
      // The reference MTP on the model's own main hidden states (so only the MTP module is compared).
      const want = ref.mtp(Float64Array.from(hostH), next);
      const D = model.config.hiddenSize;
      const errs: number[] = [];
      for (let t = 0; t < T; t++) if (ref.lastMargin[t] >= tol.tie) errs.push(relErr(got.subarray(t * D, (t + 1) * D), want.subarray(t * D, (t + 1) * D)));
      expect(errs.length).toBeGreaterThanOrEqual(T / 3);
      expect(Math.max(...errs)).toBeLessThan(tol.layer);
    } finally {
      model.cache.free(S);
    }
  });
});
