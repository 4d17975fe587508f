// The exchange on the CPU: the simulation against a worked example and its defining properties, and a
// group of one rank (the CPU device) against the simulation bit for bit and against float64 math.
import { describe, expect, it } from 'vitest';
import { simulateDispatch } from '../lib/dist/simulate';
import { skewedRouting } from '../lib/dist/routing';
import { groupSuite } from './helpers/ep_group_suite';

describe('simulateDispatch', () => {
  it('lays out a worked example exactly', () => {
    // 2 ranks, 4 experts (rank 0: 0-1, rank 1: 2-3), top-2; align 4 to keep it small.
    const r0 = Int32Array.from([1, 2, /* t1 */ 0, 1, /* t2 */ 3, -1]);
    const r1 = Int32Array.from([2, 3, /* t1 */ 1, -1]);
    const [a, b] = simulateDispatch([r0, r1], { numExperts: 4, topk: 2, align: 4 });
    // Rank 0, expert 0: (0,1,0); expert 1: (0,0,0), (0,1,1), (1,1,0).
    expect(Array.from(a.mIndices)).toEqual([0, -1, -1, -1, 1, 1, 1, -1]);
    expect(Array.from(a.rowSource.subarray(0, 3))).toEqual([0, 1, 0]);
    expect(Array.from(a.rowSource.subarray(12, 21))).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 0]);
    expect(a.numRecvTokens).toBe(3);  // r0 t0, r0 t1, r1 t1
    expect(Array.from(a.recvTokenRows)).toEqual([4, -1, 0, 5, 6, -1]);
    expect(a.tokensPerExpert).toEqual([1, 3]);
    // Rank 1, expert 2: (0,0,1), (1,0,0); expert 3: (0,2,0), (1,0,1).
    expect(Array.from(b.mIndices)).toEqual([0, 0, -1, -1, 1, 1, -1, -1]);
    expect(b.numRecvTokens).toBe(3);  // r0 t0, r0 t2, r1 t0
    expect(Array.from(b.recvTokenRows)).toEqual([-1, 0, 4, -1, 1, 5]);
  });

  it('places every routed entry exactly once, in (rank, token, k) order inside its expert', () => {
    const W = 4, E = 32, K = 8;
    const idx = [0, 1, 2, 3].map((s) => skewedRouting({ tokens: 50 + 37 * s, numExperts: E, topk: K, seed: s, hotExpert: 5, dropProb: 0.2 }).indices);
    const sim = simulateDispatch(idx, { numExperts: E, topk: K });
    let entries = 0;
    idx.forEach((a) => a.forEach((e) => (entries += e >= 0 ? 1 : 0)));
    let rows = 0;
    sim.forEach((r, d) => {
      expect(r.numRows % 128).toBe(0);
      let prev = [-1, -1, -1, -1];
      for (let row = 0; row < r.numRows; row++) {
        const le = r.mIndices[row];
        if (le < 0) continue;
        rows++;
        const [s, t, k] = r.rowSource.subarray(row * 3, row * 3 + 3);
        expect(idx[s][t * K + k]).toBe(d * (E / W) + le);
        const cur = [le, s, t, k];
        expect(cur[0] > prev[0] || (cur[0] === prev[0] && (s * 1e6 + t * 100 + k > prev[1] * 1e6 + prev[2] * 100 + prev[3]))).toBe(true);
        prev = cur;
      }
    });
    expect(rows).toBe(entries);
  });
});

groupSuite('cpu');
