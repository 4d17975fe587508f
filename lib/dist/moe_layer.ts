// A DeepSeekMoE layer with its routed experts spread over the ranks of the process group:
//
//   gate (router GEMM + moeGate) -> ep.dispatch (fp8 tokens) -> grouped fp8 GEMMs of this rank's experts
//   (w13, SwiGLU, w2) -> ep.combine (weighted sum at the token's home) -> + shared experts
//
// The tensor ops come from dsk.ops (moeGate, quantizeActivation, fp8GroupedGemmContiguous, swigluQuant,
// fp8Gemm, gemm, add); a test can pass its own through `ops`. Every rank runs forward() on its own tokens.
import * as dskOps from '../ops';
import type { Tensor } from '../tensor';
import * as ep from './ep';
import { epState } from './group';

type Fp8 = { q: Tensor; scale: Tensor };

/** The ops the layer uses (dsk.ops signatures). */
export interface MoeOps {
  gemm(a: Tensor, b: Tensor, options?: { outDtype?: 'f32' | 'bf16' }): Tensor;
  moeGate(logits: Tensor, options: Record<string, unknown>): { indices: Tensor; weights: Tensor };
  quantizeActivation(x: Tensor): Fp8;
  fp8GroupedGemmContiguous(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, mIndices: Tensor): Tensor;
  swigluQuant(gate: Tensor, up: Tensor): Fp8;
  fp8Gemm(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
}

export interface EpMoeConfig {
  numExperts: number;
  topk: number;
  /** Expert groups and groups kept per token (DeepSeek-V3: 8 / 4; 1 / 1 for none). */
  nGroup?: number;
  topkGroup?: number;
  scoring?: 'sigmoid' | 'softmax';
  normTopk?: boolean;
  routedScale?: number;
  /** Intermediate size of a routed expert (w13 has 2 * interSize rows). */
  interSize: number;
}

export interface EpMoeWeights {
  /** Router [E, H] (bf16 or f32) and the aux-loss-free bias [E] (f32), if any. */
  gate: Tensor;
  bias?: Tensor;
  /** This rank's experts: w13 fp8 [Eloc, 2I, H] with scales [Eloc, 2I/128, H/128]; w2 fp8 [Eloc, H, I] with scales. */
  w13: Tensor;
  w13Scale: Tensor;
  w2: Tensor;
  w2Scale: Tensor;
  /** Shared experts as one dense SwiGLU MLP: w13 fp8 [2Is, H], w2 fp8 [H, Is], with 128x128 scales. */
  shared?: { w13: Tensor; w13Scale: Tensor; w2: Tensor; w2Scale: Tensor };
}

function resolveOps(given?: Partial<MoeOps>): MoeOps {
  const all = { ...(dskOps as unknown as Partial<MoeOps>), ...given };
  const names: (keyof MoeOps)[] = ['gemm', 'moeGate', 'quantizeActivation', 'fp8GroupedGemmContiguous', 'swigluQuant', 'fp8Gemm', 'add'];
  const missing = names.filter((n) => typeof all[n] !== 'function');
  if (missing.length) throw new TypeError(`EpMoeLayer: dsk.ops lacks ${missing.join(', ')} (needed by the layer; pass them in options.ops)`);
  return all as MoeOps;
}

/** A DeepSeekMoE layer whose routed experts are spread over the process group's ranks. */
export class EpMoeLayer {
  private readonly ops: MoeOps;
  constructor(
    readonly config: EpMoeConfig,
    readonly weights: EpMoeWeights,
    options: { ops?: Partial<MoeOps> } = {},
  ) {
    this.ops = resolveOps(options.ops);
    const s = epState('EpMoeLayer');
    const Eloc = config.numExperts / s.worldSize;
    if (!Number.isInteger(Eloc)) throw new RangeError(`EpMoeLayer: numExperts ${config.numExperts} is not a multiple of the world size ${s.worldSize}`);
    if (weights.w13.shape[0] !== Eloc || weights.w2.shape[0] !== Eloc)
      throw new RangeError(`EpMoeLayer: w13 and w2 must hold this rank's ${Eloc} experts, got [${weights.w13.shape.join(', ')}] and [${weights.w2.shape.join(', ')}]`);
    if (weights.w13.shape[1] !== 2 * config.interSize) throw new RangeError(`EpMoeLayer: w13 must have 2 * interSize = ${2 * config.interSize} rows per expert`);
  }

  /** x bf16 [T, H] (this rank's tokens) -> bf16 [T, H]. Collective: every rank calls it together. */
  async forward(x: Tensor): Promise<Tensor> {
    const o = this.ops, c = this.config, w = this.weights;
    const I = c.interSize;
    // Route.
    const logits = o.gemm(x, w.gate, { outDtype: 'f32' });
    const { indices, weights } = o.moeGate(logits, {
      bias: w.bias,
      scoring: c.scoring ?? 'sigmoid',
      topk: c.topk,
      nGroup: c.nGroup ?? 1,
      topkGroup: c.topkGroup ?? 1,
      normTopk: c.normTopk ?? true,
      routedScale: c.routedScale ?? 1,
    });
    logits.dispose();
    // Send fp8 tokens to the experts' ranks.
    const xq = o.quantizeActivation(x);
    const d = await ep.dispatch(xq, indices, weights, { numExperts: c.numExperts });
    xq.q.dispose();
    xq.scale.dispose();
    indices.dispose();
    weights.dispose();
    // Local experts: [M, 2I] = x w13^T, SwiGLU, [M, H] = h w2^T (padding rows are skipped by the GEMMs).
    const h13 = o.fp8GroupedGemmContiguous(d.x, d.scale!, w.w13, w.w13Scale, d.mIndices);
    const gate = h13.slice(1, 0, I).contiguous(), up = h13.slice(1, I, 2 * I).contiguous();
    h13.dispose();
    const hq = o.swigluQuant(gate, up);
    gate.dispose();
    up.dispose();
    const y = o.fp8GroupedGemmContiguous(hq.q, hq.scale, w.w2, w.w2Scale, d.mIndices);
    hq.q.dispose();
    hq.scale.dispose();
    // Shared experts on the compute stream while the partial sums travel on the comm stream.
    const routed = ep.combine(y, d.handle, { async: true });
    let shared: Tensor | undefined;
    if (w.shared) {
      const sq = o.quantizeActivation(x);
      const s13 = o.fp8Gemm(sq.q, sq.scale, w.shared.w13, w.shared.w13Scale);
      sq.q.dispose();
      sq.scale.dispose();
      const Is = w.shared.w13.shape[0] / 2;
      const sg = s13.slice(1, 0, Is).contiguous(), su = s13.slice(1, Is, 2 * Is).contiguous();
      s13.dispose();
      const sh = o.swigluQuant(sg, su);
      sg.dispose();
      su.dispose();
      shared = o.fp8Gemm(sh.q, sh.scale, w.shared.w2, w.shared.w2Scale);
      sh.q.dispose();
      sh.scale.dispose();
    }
    const out = await routed;
    await ep.wait();
    y.dispose();
    ep.disposeResult(d);
    d.handle.dispose();
    if (!shared) return out;
    const sum = o.add(out, shared);
    out.dispose();
    shared.dispose();
    return sum;
  }
}
