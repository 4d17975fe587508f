// The dsk.ops the model uses, in one place: the forward pass calls these wrappers, so a difference
// between an op's final signature and what the model expects is fixed here and nowhere else.
import * as dskOps from '../ops';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import type { DType } from '../dtype';

/** YaRN options as the rope op takes them. */
export interface RopeYarn {
  factor: number;
  originalMaxPosition: number;
  betaFast: number;
  betaSlow: number;
  mscale: number;
  mscaleAllDim: number;
}

// The signatures of issue 3 (the ops are written in parallel; `need` reports one that is missing).
interface OpsApi {
  quantizeActivation(x: Tensor): { q: Tensor; scale: Tensor };
  quantizeWeight(w: Tensor): { q: Tensor; scale: Tensor };
  fp8Gemm(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor): Tensor;
  fp8GroupedGemmContiguous(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, mIndices: Tensor): Tensor;
  fp8GroupedGemmMasked(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, maskedM: Tensor): Tensor;
  gemm(a: Tensor, b: Tensor, o?: { outDtype?: DType }): Tensor;
  rmsNorm(x: Tensor, w: Tensor, o: { eps?: number; residual?: Tensor }): Tensor | { out: Tensor; residual: Tensor };
  rope(x: Tensor, positions: Tensor, o: { theta: number; yarn?: RopeYarn }): Tensor;
  swiglu(gate: Tensor, up: Tensor): Tensor;
  swigluQuant(gate: Tensor, up: Tensor): { q: Tensor; scale: Tensor };
  embedding(ids: Tensor, table: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  argmax(x: Tensor): Tensor;
  moeGate(logits: Tensor, o: Record<string, unknown>): { indices: Tensor; weights: Tensor };
  moePermute(x: Tensor, indices: Tensor, o: { numExperts: number; align?: number; scale?: Tensor }): {
    x: Tensor; scale?: Tensor; mIndices: Tensor; map: Tensor; counts?: Tensor; offsets?: Tensor;
  };
  moeUnpermute(y: Tensor, map: Tensor, weights: Tensor): Tensor;
  attentionPrefill(q: Tensor, k: Tensor, v: Tensor, o: { cuSeqlens: Tensor; maxSeqlen?: number; causal?: boolean; scale?: number }): Tensor;
  mlaCacheWrite(cache: Tensor, latent: Tensor, slots: Tensor): unknown;
  mlaDecode(q: Tensor, cache: Tensor, blockTable: Tensor, seqLens: Tensor, o: { scale?: number; dv?: number; causal?: boolean }): { out: Tensor; lse: Tensor };
  sample(logits: Tensor, o: { temperature?: number; topK?: number; topP?: number; seed?: number | bigint }): Tensor;
}

const all = dskOps as unknown as Partial<OpsApi>;

function need<K extends keyof OpsApi>(name: K): OpsApi[K] {
  const f = all[name];
  if (typeof f !== 'function') throw new Error(`the model needs dsk.ops.${name}, which this build does not have yet`);
  return f as OpsApi[K];
}

/** Names of the ops the model needs that this build lacks (empty when the forward can run). */
export function missingOps(): string[] {
  const names: (keyof OpsApi)[] = [
    'quantizeActivation', 'quantizeWeight', 'fp8Gemm', 'fp8GroupedGemmContiguous', 'fp8GroupedGemmMasked', 'gemm', 'rmsNorm',
    'rope', 'swiglu', 'swigluQuant', 'embedding', 'add', 'argmax', 'moeGate', 'moePermute', 'moeUnpermute', 'attentionPrefill',
    'mlaCacheWrite', 'mlaDecode', 'sample',
  ];
  return names.filter((n) => typeof all[n] !== 'function');
}

export const K = {
  quantizeActivation: (x: Tensor) => need('quantizeActivation')(x),
  quantizeWeight: (w: Tensor) => need('quantizeWeight')(w),
  fp8Gemm: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor) => need('fp8Gemm')(a, as, b, bs),
  fp8GroupedGemmContiguous: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor, mIndices: Tensor) => need('fp8GroupedGemmContiguous')(a, as, b, bs, mIndices),
  fp8GroupedGemmMasked: (a: Tensor, as: Tensor, b: Tensor, bs: Tensor, maskedM: Tensor) => need('fp8GroupedGemmMasked')(a, as, b, bs, maskedM),
  gemm: (a: Tensor, b: Tensor, outDtype: DType) => need('gemm')(a, b, { outDtype }),
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const r = need('rmsNorm')(x, w, { eps });
    return r instanceof Tensor ? r : (r.residual.dispose(), r.out);
  },
  /** Fused h = x + residual; returns normalized h and h. */
  addRmsNorm(x: Tensor, residual: Tensor, w: Tensor, eps: number): { out: Tensor; residual: Tensor } {
    const r = need('rmsNorm')(x, w, { eps, residual });
    if (r instanceof Tensor) throw new Error('dsk.ops.rmsNorm with {residual} must return {out, residual}');
    return r;
  },
  rope: (x: Tensor, positions: Tensor, theta: number, yarn: RopeYarn | null) => need('rope')(x, positions, yarn ? { theta, yarn } : { theta }),
  swiglu: (g: Tensor, u: Tensor) => need('swiglu')(g, u),
  swigluQuant: (g: Tensor, u: Tensor) => need('swigluQuant')(g, u),
  embedding: (ids: Tensor, table: Tensor) => need('embedding')(ids, table),
  add: (a: Tensor, b: Tensor) => need('add')(a, b),
  argmax: (x: Tensor) => need('argmax')(x),
  moeGate: (logits: Tensor, o: Record<string, unknown>) => need('moeGate')(logits, o),
  moePermute: (x: Tensor, indices: Tensor, numExperts: number, scale: Tensor) => need('moePermute')(x, indices, { numExperts, align: 128, scale }),
  moeUnpermute: (y: Tensor, map: Tensor, weights: Tensor) => need('moeUnpermute')(y, map, weights),
  attentionPrefill: (q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, maxSeqlen: number, scale: number) =>
    need('attentionPrefill')(q, k, v, { cuSeqlens, maxSeqlen, causal: true, scale }),
  mlaCacheWrite: (cache: Tensor, latent: Tensor, slots: Tensor): void => {
    need('mlaCacheWrite')(cache, latent, slots);
  },
  mlaDecode: (q: Tensor, cache: Tensor, blockTable: Tensor, seqLens: Tensor, scale: number) =>
    need('mlaDecode')(q, cache, blockTable, seqLens, { scale, dv: 512, causal: true }),
  sample: (logits: Tensor, o: { temperature: number; topK?: number; topP?: number; seed: bigint }) => need('sample')(logits, o),
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
  keepAll<T extends Record<string, unknown>>(o: T): T {
    for (const v of Object.values(o)) if (v instanceof Tensor) this.items.push(v);
    return o;
  }
  dispose(): void {
    for (const t of this.items) t.dispose();
    this.items = [];
  }
}
