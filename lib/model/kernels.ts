// The dsk.ops the model uses, in one place: the forward pass calls these wrappers, so a difference
// between an op's final signature and what the model expects is fixed here and nowhere else.
import * as dskOps from '../ops';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import type { DType } from '../dtype';
import type { YarnParams } from '../ops/rope';


// Thin adapters over dsk.ops with the fixed options the model always uses.
export const K = {
  quantizeActivation: (x: Tensor) => dskOps.quantizeActivation(x),
  quantizeWeight: (w: Tensor) => dskOps.quantizeWeight(w),
  fp8Gemm: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor) => dskOps.fp8Gemm(a, as, b, bs),
  fp8GroupedGemmContiguous: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor, mIndices: Tensor) => dskOps.fp8GroupedGemmContiguous(a, as, b, bs, mIndices),
  fp8GroupedGemmMasked: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor, maskedM: Tensor) => dskOps.fp8GroupedGemmMasked(a, as, b, bs, maskedM),
  gemm: (a: Tensor, b: Tensor, outDtype: DType) => dskOps.gemm(a, b, { outDtype: outDtype as 'bf16' | 'f32' }),
  rmsNorm: (x: Tensor, w: Tensor, eps: number): Tensor => dskOps.rmsNorm(x, w, { eps }),
  /** Fused h = x + residual; returns normalized h and h. */
  addRmsNorm: (x: Tensor, residual: Tensor, w: Tensor, eps: number): { out: Tensor; residual: Tensor } => dskOps.rmsNorm(x, w, { eps, residual }),
  rope: (x: Tensor, positions: Tensor, theta: number, yarn: YarnParams | null) => dskOps.rope(x, positions, yarn ? { theta, yarn } : { theta }),
  swiglu: (g: Tensor, u: Tensor) => dskOps.swiglu(g, u),
  swigluQuant: (g: Tensor, u: Tensor, mIndices?: Tensor) => dskOps.swigluQuant(g, u, { mIndices }),
  embedding: (ids: Tensor, table: Tensor) => dskOps.embedding(ids, table),
  add: (a: Tensor, b: Tensor) => dskOps.add(a, b),
  argmax: (x: Tensor) => dskOps.argmax(x),
  moeGate: (logits: Tensor, o: dskOps.MoeGateOptions) => dskOps.moeGate(logits, o),
  moePermute: (x: Tensor, indices: Tensor, numExperts: number, scale: Tensor) => dskOps.moePermute(x, indices, { numExperts, align: 128, scale }),
  moeUnpermute: (y: Tensor, map: Tensor, weights: Tensor) => dskOps.moeUnpermute(y, map, weights),
  attentionPrefill: (q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, maxSeqlen: number, scale: number) =>
    dskOps.attentionPrefill(q, k, v, { cuSeqlens, maxSeqlen, causal: true, scale }),
  mlaCacheWrite: (cache: Tensor, latent: Tensor, slots: Tensor): void => dskOps.mlaCacheWrite(cache, latent, slots),
  mlaDecode: (q: Tensor, cache: Tensor, blockTable: Tensor, seqLens: Tensor, scale: number) =>
    dskOps.mlaDecode(q, cache, blockTable, seqLens, { scale, dv: 512, causal: true }),
  sample: (logits: Tensor, o: { temperature: number; topK?: number; topP?: number; seed: bigint }) => dskOps.sample(logits, o),
};

/** dst[...] = src (same shape, any strides; dst may be a view into a larger tensor). Enqueued. */
export function assign(dst: Tensor, src: Tensor): void {
  if (dst.shape.length !== src.shape.length || dst.shape.some((s, i) => s !== src.shape[i]))
    throw new RangeError(`assign: shapes [${dst.shape.join(', ')}] and [${src.shape.join(', ')}] differ`);
  if (dst.numel) getNative().copy(dst, src);
}

/** A view of `t` broadcast along a new dimension `dim` of size `n` (stride 0), for copies. */
export function broadcastDim(t: Tensor, dim: number, n: number): Tensor {
  const shape = t.shape.slice();
  const strides = t.strides.slice();
  shape.splice(dim, 0, n);
  strides.splice(dim, 0, 0);
  return t.viewAs(shape, strides, t.offset);
}

/** Collects tensors to dispose together (the intermediates of one step). */
export class Arena {
  private items: Tensor[] = [];
  keep<T extends Tensor>(t: T): T {
    this.items.push(t);
    return t;
  }
  keepAll<T extends object>(o: T): T {
    for (const v of Object.values(o)) if (v instanceof Tensor) this.items.push(v);
    return o;
  }
  dispose(): void {
    for (const t of this.items) t.dispose();
    this.items = [];
  }
}
