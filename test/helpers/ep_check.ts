// Shared checks of the expert-parallel tests: one rank's dispatch result against the CPU simulation.
import type { SimDispatchRank } from '../../lib/dist/simulate';

/** Mismatch counts of a received layout against the simulation (all zero when exact). */
export function compareReceived(
  got: { mIndices: Int32Array; x: Uint8Array | Uint16Array; scale?: Float32Array; weights: Float32Array; tokensPerExpert: readonly number[] },
  sim: SimDispatchRank,
  src: { x: (s: number) => Uint8Array | Uint16Array; scale?: (s: number) => Float32Array; weights: (s: number) => Float32Array },
  H: number,
  K: number,
): { rows: number; mIndices: number; payload: number; scale: number; weights: number; counts: number } {
  const bad = { rows: 0, mIndices: 0, payload: 0, scale: 0, weights: 0, counts: 0 };
  if (got.mIndices.length !== sim.numRows) bad.rows = Math.abs(got.mIndices.length - sim.numRows) || 1;
  if (got.tokensPerExpert.join() !== sim.tokensPerExpert.join()) bad.counts = 1;
  const n = Math.min(got.mIndices.length, sim.numRows);
  const S = H / 128;
  for (let row = 0; row < n; row++) {
    if (got.mIndices[row] !== sim.mIndices[row]) bad.mIndices++;
    const s = sim.rowSource[row * 3], t = sim.rowSource[row * 3 + 1], k = sim.rowSource[row * 3 + 2];
    if (s < 0) continue;
    const xs = src.x(s);
    for (let h = 0; h < H; h++) if (got.x[row * H + h] !== xs[t * H + h]) { bad.payload++; break; }
    if (got.scale && src.scale) {
      const ss = src.scale(s);
      for (let q = 0; q < S; q++) if (got.scale[row * S + q] !== ss[t * S + q]) { bad.scale++; break; }
    }
    if (got.weights[row] !== src.weights(s)[t * K + k]) bad.weights++;
  }
  return bad;
}
