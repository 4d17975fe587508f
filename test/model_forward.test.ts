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

describe.each([
  { preset: 'tiny' as const, quantize: undefined },
  { preset: 'tiny-v2' as const, quantize: undefined },
  { preset: 'tiny-v2' as const, quantize: 'fp8' as const },
])('forward of $preset (quantize: $quantize) on cpu', ({ preset, quantize }) => {
  let model: Model;
  let ref: ReferenceModel;
  let ids: number[];
  beforeAll(async () => {
    const dir = await testModel({ preset, seed: 5 });
    model = await dsk.loadModel(dir, { device: 'cpu', quantize, maxSeqLen: 256, kvCacheTokens: 1024 });
    ref = new ReferenceModel(dir, quantize === 'fp8' ? 'all' : 'experts');
    ids = model.tokenizer.encode('The quick brown fox jumps over the lazy dog, 12345!');
  });
  afterAll(() => model?.dispose());

  it('matches the float64 reference layer by layer, and in its logits', async () => {
    const layers: dsk.Tensor[] = [];
    const logits = model.logits(ids, { onLayer: (_, h) => layers.push(h) });
    const want = ref.forward(ids);
    const T = ids.length, D = model.config.hiddenSize, V = model.config.vocabSize;
    expect(layers.length).toBe(model.config.numLayers);
    for (let i = 0; i < layers.length; i++) {
      const got = await read(layers[i]);
      expect(got.every(Number.isFinite)).toBe(true);
      const e = relErr(got, want.layers[i]);
      expect(e, `layer ${i}`).toBeLessThan(2e-2);
    }
    const gl = await read(logits);
    const wl = ref.logits(want.hidden, T);
    expect(relErr(gl, wl)).toBeLessThan(3e-2);
    // The reference's top token is (nearly) the model's top token at every position.
    for (let t = 0; t < T; t++) {
      const w = row(wl, t, V);
      const top = argmax(row(gl, t, V));
      const best = Math.max(...w);
      expect(best - w[top], `position ${t}`).toBeLessThan(0.05 * Math.max(1, Math.abs(best)));
    }
    void D;
  });

  it('decodes through the paged cache like a full re-prefill (one token, two tokens, a batch)', async () => {
    const V = model.config.vocabSize;
    const full = await read(model.logits(ids));
    const P = 5;
    // Sequence A: prefill P tokens, then decode one token at a time; sequence B: prefill 3, decode 2 at a time.
    const A = 901, B = 902;
    model.cache.reserve(A, ids.length);
    model.cache.reserve(B, ids.length);
    try {
      const pb = prefillBatch(model, [{ id: A, toks: ids.slice(0, P) }, { id: B, toks: ids.slice(0, 3) }]);
      const h = model.network.forward(pb, model.cache.caches);
      const pl = await read(model.network.logits(h));
      h.dispose();
      disposeBatch(pb);
      expect(relErr(row(pl, P - 1, V), row(full, P - 1, V))).toBeLessThan(1e-6);
      let nA = P, nB = 3;
      while (nA < ids.length) {
        const twoB = nB + 2 <= ids.length;
        // A and B in separate calls (sq differs); A alone and, when B has room, B with sq = 2.
        const da = decodeBatch(model, [{ id: A, n: nA, toks: [ids[nA]] }]);
        const ha = model.network.forward(da, model.cache.caches);
        const la = await read(model.network.logits(ha));
        ha.dispose();
        disposeBatch(da);
        expect(relErr(la, row(full, nA, V)), `A at ${nA}`).toBeLessThan(3e-2);
        expect(argmax(la)).toBe(argmax(row(full, nA, V)));
        nA++;
        if (twoB) {
          const db = decodeBatch(model, [{ id: B, n: nB, toks: [ids[nB], ids[nB + 1]] }]);
          const hb = model.network.forward(db, model.cache.caches);
          const lb = await read(model.network.logits(hb));
          hb.dispose();
          disposeBatch(db);
          for (let j = 0; j < 2; j++) expect(relErr(row(lb, j, V), row(full, nB + j, V)), `B at ${nB + j}`).toBeLessThan(3e-2);
          nB += 2;
        }
      }
      // Both sequences in one decode call (B = 2): the same values as decoding them alone.
      const last = ids.length - 1;
      const both = decodeBatch(model, [
        { id: A, n: last, toks: [ids[last]] },
        { id: B, n: 2, toks: [ids[2]] },
      ]);
      const hh = model.network.forward(both, model.cache.caches);
      const lb = await read(model.network.logits(hh));
      hh.dispose();
      disposeBatch(both);
      expect(relErr(row(lb, 0, V), row(full, last, V))).toBeLessThan(3e-2);
      expect(relErr(row(lb, 1, V), row(full, 2, V))).toBeLessThan(3e-2);
    } finally {
      model.cache.free(A);
      model.cache.free(B);
    }
  });

  it.runIf(preset === 'tiny')('runs the MTP module like the reference', async () => {
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
      expect(relErr(got, want)).toBeLessThan(2e-2);
    } finally {
      model.cache.free(S);
    }
  });
});
