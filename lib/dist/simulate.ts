// A CPU simulation of the expert-parallel exchange, written from the definition (not from the kernels),
// to check what every rank receives exactly and what combine returns bit for bit.
//
// Definition. Rank d holds experts [d*E/W, (d+1)*E/W). On rank d, local expert le gets one row per
// routing entry (s, t, k) with indices_s[t, k] == d*E/W + le, ordered by source rank s, then token t,
// then k; each expert's segment is padded to `align` rows (mIndices -1), segments follow each other
// in expert order. Rank d receives each token of rank s once if any of its experts is on d: tokens in
// order of s, then t; recvTokenRows[j][k] is the row of entry k of received token j on d, or -1.
// Combine, for token t of rank s: f32 acc = 0; for rank s first, then each other rank d ascending, if t
// has rows on it: acc += bf16(sum over k ascending of w_k * y_d[row]); out = bf16(acc). Every product and
// sum rounds to f32.

export interface SimDispatchRank {
  /** Rows received (padded). */
  numRows: number;
  /** Tokens received. */
  numRecvTokens: number;
  /** i32 [numRows]: local expert or -1. */
  mIndices: Int32Array;
  /** [numRows * 3]: source rank, token and k of each row; -1 for padding. */
  rowSource: Int32Array;
  /** i32 [numRecvTokens * K]. */
  recvTokenRows: Int32Array;
  /** Real rows per local expert. */
  tokensPerExpert: number[];
}

/** What every rank receives, given every rank's indices (i32 [T_s * K]). */
export function simulateDispatch(indices: readonly Int32Array[], o: { numExperts: number; topk: number; align?: number }): SimDispatchRank[] {
  const W = indices.length, E = o.numExperts, K = o.topk, align = o.align ?? 128;
  if (E % W) throw new RangeError('simulateDispatch: numExperts must be a multiple of the world size');
  const Eloc = E / W;
  const valid = (e: number) => (e >= 0 && e < E ? e : -1);
  const out: SimDispatchRank[] = [];
  for (let d = 0; d < W; d++) {
    const lists: number[][] = Array.from({ length: Eloc }, () => []);  // entries (s, t, k) flattened by 3
    indices.forEach((idx, s) => {
      const T = idx.length / K;
      for (let t = 0; t < T; t++)
        for (let k = 0; k < K; k++) {
          const e = valid(idx[t * K + k]);
          if (e >= 0 && Math.floor(e / Eloc) === d) lists[e - d * Eloc].push(s, t, k);
        }
    });
    const segStart: number[] = [];
    let M = 0;
    for (let le = 0; le < Eloc; le++) {
      segStart.push(M);
      M += Math.ceil(lists[le].length / 3 / align) * align;
    }
    const mIndices = new Int32Array(M).fill(-1), rowSource = new Int32Array(M * 3).fill(-1);
    const rowOf = new Map<string, number>();
    for (let le = 0; le < Eloc; le++) {
      const l = lists[le];
      for (let i = 0; i < l.length / 3; i++) {
        const row = segStart[le] + i;
        mIndices[row] = le;
        rowSource.set([l[3 * i], l[3 * i + 1], l[3 * i + 2]], row * 3);
        rowOf.set(`${l[3 * i]}:${l[3 * i + 1]}:${l[3 * i + 2]}`, row);
      }
    }
    const recv: number[] = [];
    indices.forEach((idx, s) => {
      const T = idx.length / K;
      for (let t = 0; t < T; t++) {
        let any = false;
        for (let k = 0; k < K; k++) { const e = valid(idx[t * K + k]); if (e >= 0 && Math.floor(e / Eloc) === d) any = true; }
        if (!any) continue;
        for (let k = 0; k < K; k++) recv.push(rowOf.get(`${s}:${t}:${k}`) ?? -1);
      }
    });
    out.push({
      numRows: M,
      numRecvTokens: recv.length / K,
      mIndices,
      rowSource,
      recvTokenRows: Int32Array.from(recv),
      tokensPerExpert: lists.map((l) => l.length / 3),
    });
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Round to bf16 (nearest even), returned as the f32 value. */
export function bf16Round(x: number): number {
  f32[0] = x;
  let u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  u32[0] = u & 0xffff0000;
  return f32[0];
}

/**
 * Combine, per rank: out_s [T_s * H] (values already rounded to bf16), from every rank's expert
 * outputs y_d [M_d * H] (bf16 values), the dispatch simulation, and every rank's indices and weights.
 */
export function simulateCombine(
  y: readonly Float32Array[],
  sim: readonly SimDispatchRank[],
  indices: readonly Int32Array[],
  weights: readonly Float32Array[],
  o: { numExperts: number; topk: number; hidden: number },
): Float32Array[] {
  const W = indices.length, E = o.numExperts, K = o.topk, H = o.hidden, Eloc = E / W;
  // row of (s, t, k) on its expert's rank
  const rowOf: Map<string, number>[] = sim.map((r) => {
    const m = new Map<string, number>();
    for (let row = 0; row < r.numRows; row++) if (r.rowSource[row * 3] >= 0) m.set(`${r.rowSource[row * 3]}:${r.rowSource[row * 3 + 1]}:${r.rowSource[row * 3 + 2]}`, row);
    return m;
  });
  return indices.map((idx, s) => {
    const T = idx.length / K;
    const out = new Float32Array(T * H);
    const acc = new Float32Array(H), part = new Float32Array(H);
    for (let t = 0; t < T; t++) {
      acc.fill(0);
      const order = [s, ...Array.from({ length: W }, (_, d) => d).filter((d) => d !== s)];
      for (const d of order) {
        part.fill(0);
        let any = false;
        for (let k = 0; k < K; k++) {
          const e = idx[t * K + k];
          if (e < 0 || e >= E || Math.floor(e / Eloc) !== d) continue;
          any = true;
          const row = rowOf[d].get(`${s}:${t}:${k}`)!;
          const w = weights[s][t * K + k];
          for (let h = 0; h < H; h++) part[h] = Math.fround(part[h] + Math.fround(w * y[d][row * H + h]));
        }
        if (!any) continue;
        for (let h = 0; h < H; h++) acc[h] = Math.fround(acc[h] + bf16Round(part[h]));
      }
      for (let h = 0; h < H; h++) out[t * H + h] = bf16Round(acc[h]);
    }
    return out;
  });
}
