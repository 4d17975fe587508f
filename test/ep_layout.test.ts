// ep.layout: where each token goes, against a reference written here from the definition; the CUDA
// kernels must give exactly the CPU's integers.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { skewedRouting } from '../lib/dist/routing';
import { testDevices } from './helpers/devices';

function reference(idx: Int32Array, T: number, K: number, E: number, W: number) {
  const Eloc = E / W;
  const tpr = new Int32Array(W), tpe = new Int32Array(E), inRank = new Uint8Array(T * W), tir = new Int32Array(T * W).fill(-1);
  const pos = new Int32Array(T * K).fill(-1), send = new Int32Array(W * T).fill(-1);
  for (let t = 0; t < T; t++) {
    const ranks = new Set<number>();
    for (let k = 0; k < K; k++) {
      const e = idx[t * K + k];
      if (e < 0 || e >= E) continue;
      pos[t * K + k] = tpe[e]++;
      ranks.add(Math.floor(e / Eloc));
    }
    for (const d of [...ranks].sort((a, b) => a - b)) {
      inRank[t * W + d] = 1;
      tir[t * W + d] = tpr[d];
      send[d * T + tpr[d]] = t;
      tpr[d]++;
    }
  }
  return { tpr, tpe, inRank, tir, pos, send };
}

const cases: [number, number, number, number][] = [
  // T, K, E, W
  [0, 8, 16, 2],
  [1, 8, 256, 2],
  [300, 6, 24, 3],
  [700, 8, 256, 8],
  [513, 1, 8, 1],
  [1000, 16, 64, 16],
];

describe.each(testDevices)('ep.layout on %s', (device) => {
  it.each(cases)('T=%i K=%i E=%i W=%i matches the definition exactly', async (T, K, E, W) => {
    const r = skewedRouting({ tokens: T, numExperts: E, topk: K, seed: T * 7 + W, hotExpert: E - 1, dropProb: 0.15 });
    const ref = reference(r.indices, T, K, E, W);
    const idx = dsk.tensor(r.indices, { dtype: 'i32', shape: [T, K], device });
    const l = dsk.ep.layout(idx, E, { worldSize: W });
    expect(Array.from(await l.tokensPerRank.toArray())).toEqual(Array.from(ref.tpr));
    expect(Array.from(await l.tokensPerExpert.toArray())).toEqual(Array.from(ref.tpe));
    expect(Array.from(await l.isTokenInRank.toArray())).toEqual(Array.from(ref.inRank));
    expect(Array.from(await l.tokenIdxInRank.toArray())).toEqual(Array.from(ref.tir));
    expect(Array.from(await l.posInExpert.toArray())).toEqual(Array.from(ref.pos));
    expect(Array.from(await l.sendList.toArray())).toEqual(Array.from(ref.send));
    l.dispose();
  });

  it('an expert index out of range counts as none and makes the next read reject', async () => {
    const idx = dsk.tensor([[1, 300], [2, -1]], { dtype: 'i32', device });
    const l = dsk.ep.layout(idx, 256, { worldSize: 2 });
    await expect(l.tokensPerExpert.toArray()).rejects.toThrow(/ep: indices contains 300, outside the valid range \[0, 256\)/);
    expect(Array.from(await l.posInExpert.toArray())).toEqual([0, -1, 0, -1]);
    expect(Array.from(await l.tokensPerRank.toArray())).toEqual([2, 0]);
  });

  it('rejects bad arguments before enqueueing', () => {
    const idx = dsk.tensor([[1, 2]], { dtype: 'i32', device });
    expect(() => dsk.ep.layout(dsk.tensor([[1, 2]], { device }), 8)).toThrow(/ep.layout: indices must have dtype i32/);
    expect(() => dsk.ep.layout(idx, 9, { worldSize: 2 })).toThrow(/ep.layout: numExperts \(9\) must be a multiple of the world size \(2\)/);
    expect(() => dsk.ep.layout(idx, 8, { worldSize: 0 })).toThrow(RangeError);
    expect(() => dsk.ep.layout(dsk.zeros([2, 17], { dtype: 'i32', device }), 8)).toThrow(/1 to 16 columns/);
    expect(() => dsk.ep.layout(dsk.tensor([1, 2], { dtype: 'i32', device }), 8)).toThrow(/indices must have 2 dims/);
  });
});
