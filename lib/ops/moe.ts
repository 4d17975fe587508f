// MoE ops: the DeepSeekMoE router (gate), expert load counts and the aux-loss-free bias update, and the
// permutation between token order and the expert-grouped contiguous layout the grouped GEMMs consume.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { Check } from './validate';

/** Largest number of routed experts the MoE ops accept. */
export const MOE_MAX_EXPERTS = 4096;
/** Largest `topk` of {@link moeGate}. */
export const MOE_MAX_TOPK = 32;
/** Largest `nGroup` of {@link moeGate}. */
export const MOE_MAX_GROUPS = 64;
/** Slots per histogram chunk of the CUDA permute (native/math/moe_routing.h kMoePermuteChunk). */
const PERMUTE_CHUNK = 1024;
const I32_MAX = 2 ** 31 - 1;

export interface MoeGateOptions {
  /** f32 [E] added to the scores for selection only (DeepSeek-V3's `e_score_correction_bias`). */
  bias?: Tensor;
  /** Score function applied to the logits. */
  scoring: 'sigmoid' | 'softmax';
  /** Experts per token, 1..32. */
  topk: number;
  /** Expert groups (must divide E); 1 = no group restriction. Default 1. */
  nGroup?: number;
  /** Groups kept per token when nGroup > 1. Default 1. */
  topkGroup?: number;
  /** A group's score: sum of its two best selection scores, or its best one. Default 'top2sum' for sigmoid, 'max' for softmax. */
  groupScore?: 'top2sum' | 'max';
  /** Divide the chosen weights by their sum. Default false. */
  normTopk?: boolean;
  /** Factor applied to the weights last. Default 1. */
  routedScale?: number;
}

/**
 * DeepSeekMoE routing of T tokens over E experts. logits f32 [T, E] -> `{ indices: i32 [T, topk],
 * weights: f32 [T, topk] }`.
 *
 * Scores s = sigmoid(logits) or softmax(logits) per row; the selection score is s + bias (bias only
 * steers selection). With nGroup > 1 the E experts form nGroup equal groups, each scored by the sum of
 * its two best selection scores ('top2sum', DeepSeek-V3) or its best one ('max', DeepSeek-V2); the
 * topkGroup best groups are kept and the topk best experts are taken from them. The weights are the
 * unbiased s of the chosen experts, divided by their sum (slot 0 first) when normTopk, then times
 * routedScale.
 *
 * Output order: slot j holds the expert with the j-th highest selection score; equal scores go to the
 * lower expert index (groups likewise). A NaN score counts as -inf. CPU and CUDA give the same indices
 * and the same weight bits.
 *
 * DeepSeek-V3: `{ bias, scoring: 'sigmoid', topk: 8, nGroup: 8, topkGroup: 4, normTopk: true, routedScale: 2.5 }`.
 * DeepSeek-V2-Lite: `{ scoring: 'softmax', topk: 6 }`.
 */
export function moeGate(logits: Tensor, options: MoeGateOptions): { indices: Tensor; weights: Tensor } {
  const c = new Check('moeGate');
  c.tensor(logits, 'logits', { dtypes: ['f32'], ndim: 2 });
  if (options === undefined) c.type('options must be an object with scoring and topk');
  const o = c.options<MoeGateOptions>(options);
  const [T, E] = logits.shape;
  if (E < 1 || E > MOE_MAX_EXPERTS) c.range(`logits.shape[1] (experts) must be in [1, ${MOE_MAX_EXPERTS}], got ${E}`);
  const scoring = c.oneOf(o.scoring, 'options.scoring', ['sigmoid', 'softmax'] as const);
  const topk = c.number(o.topk, 'options.topk', { integer: true, min: 1, max: Math.min(MOE_MAX_TOPK, E) });
  const nGroup = c.number(o.nGroup ?? 1, 'options.nGroup', { integer: true, min: 1, max: MOE_MAX_GROUPS });
  if (E % nGroup !== 0) c.range(`options.nGroup (${nGroup}) must divide the number of experts (${E})`);
  const topkGroup = c.number(o.topkGroup ?? 1, 'options.topkGroup', { integer: true, min: 1, max: nGroup });
  const groupScore = c.oneOf(o.groupScore ?? (scoring === 'sigmoid' ? 'top2sum' : 'max'), 'options.groupScore', ['top2sum', 'max'] as const);
  const normTopk = c.boolean(o.normTopk ?? false, 'options.normTopk');
  const routedScale = c.number(o.routedScale ?? 1, 'options.routedScale');
  const perGroup = E / nGroup;
  if (nGroup > 1 && groupScore === 'top2sum' && perGroup < 2) c.range(`options.groupScore 'top2sum' needs at least 2 experts per group, got ${perGroup}`);
  if (topk > topkGroup * perGroup) c.range(`options.topk (${topk}) must be at most topkGroup * experts per group (${topkGroup * perGroup})`);
  const bias = c.optionalTensor(o.bias, 'options.bias', { dtypes: ['f32'], ndim: 1 });
  if (bias) c.dim(bias, 'options.bias', 0, E, 'experts');
  const dev = c.sameDevice([logits, 'logits'], [bias, 'options.bias']);

  const l = logits.contiguous();
  const b = bias?.contiguous();
  const indices = Tensor.alloc([T, topk], 'i32', dev);
  const weights = Tensor.alloc([T, topk], 'f32', dev);
  try {
    getNative().moeGate(l, b ?? null, indices, weights, scoring === 'sigmoid' ? 0 : 1, nGroup, topkGroup, groupScore === 'top2sum' ? 0 : 1, normTopk, routedScale);
  } catch (e) {
    indices.dispose();
    weights.dispose();
    throw e;
  } finally {
    l.dispose();
    b?.dispose();
  }
  return { indices, weights };
}

/**
 * Tokens routed to each expert: indices i32 (any shape, e.g. [T, k]) -> i32 [numExperts]. An index
 * outside [0, numExperts) is skipped and makes the next read on the device reject with a RangeError.
 */
export function moeCount(indices: Tensor, numExperts: number): Tensor {
  const c = new Check('moeCount');
  c.tensor(indices, 'indices', { dtypes: ['i32'] });
  const E = c.number(numExperts, 'numExperts', { integer: true, min: 1, max: MOE_MAX_EXPERTS });
  const dev = c.sameDevice([indices, 'indices']);
  const idx = indices.contiguous();
  const counts = Tensor.alloc([E], 'i32', dev);
  try {
    getNative().moeCount(idx, counts);
  } catch (e) {
    counts.dispose();
    throw e;
  } finally {
    idx.dispose();
  }
  return counts;
}

/**
 * The aux-loss-free balancing step of DeepSeek-V3: `bias[e] + gamma * sign(mean - load[e])` for bias
 * f32 [E] and tokensPerExpert i32 [E] (from {@link moeCount}), where mean is the average load; sign(0) = 0
 * leaves the bias unchanged. The sign is decided in exact integer arithmetic. Returns a new tensor, or
 * with `inPlace: true` updates `bias` (which must be contiguous) and returns it.
 */
export function moeBiasUpdate(bias: Tensor, tokensPerExpert: Tensor, options: { gamma: number; inPlace?: boolean }): Tensor {
  const c = new Check('moeBiasUpdate');
  c.tensor(bias, 'bias', { dtypes: ['f32'], ndim: 1 });
  c.tensor(tokensPerExpert, 'tokensPerExpert', { dtypes: ['i32'], ndim: 1 });
  if (options === undefined) c.type('options must be an object with gamma');
  const o = c.options<{ gamma: number; inPlace?: boolean }>(options);
  const E = bias.shape[0];
  if (E < 1 || E > MOE_MAX_EXPERTS) c.range(`bias.shape[0] (experts) must be in [1, ${MOE_MAX_EXPERTS}], got ${E}`);
  c.dim(tokensPerExpert, 'tokensPerExpert', 0, E, 'experts of bias');
  const gamma = c.number(o.gamma, 'options.gamma');
  const inPlace = c.boolean(o.inPlace ?? false, 'options.inPlace');
  if (inPlace && !bias.isContiguous()) c.range('bias must be contiguous to be updated in place');
  const dev = c.sameDevice([bias, 'bias'], [tokensPerExpert, 'tokensPerExpert']);
  const b = bias.contiguous();
  const load = tokensPerExpert.contiguous();
  const out = inPlace ? bias : Tensor.alloc([E], 'f32', dev);
  try {
    getNative().moeBiasUpdate(b, load, out, gamma);
  } catch (e) {
    if (!inPlace) out.dispose();
    throw e;
  } finally {
    b.dispose();
    load.dispose();
  }
  return out;
}

/**
 * Rows of the grouped layout {@link moePermute} returns for `tokens` tokens with `topk` experts each:
 * the most the padded segments can need, T*k + min(E, T*k) * (align - 1), rounded down to a multiple of
 * align (a static bound: it depends on the shapes only, not on the routing).
 */
export function moePermuteRows(tokens: number, topk: number, numExperts: number, align = 128): number {
  const slots = tokens * topk;
  return Math.floor((slots + Math.min(numExperts, slots) * (align - 1)) / align) * align;
}

export interface MoePermuteOptions {
  /** Number of experts E; indices outside [0, E) are skipped and make the next read reject. */
  numExperts: number;
  /** Each expert's segment is padded to a multiple of this many rows. Default 128. */
  align?: number;
  /** f32 [T, D/128], the 1x128 activation scales of an fp8 x, permuted alongside. */
  scale?: Tensor;
}

export interface MoePermuted {
  /** [rows, D], dtype of x: the rows of x grouped by expert (see {@link moePermute}). */
  x: Tensor;
  /** f32 [rows, D/128] when a scale was given. */
  scale?: Tensor;
  /** i32 [rows]: the expert of each row, -1 for padding and unused rows. */
  mIndices: Tensor;
  /** i32 [T, k]: the row holding (token t, slot j), -1 where the expert id was out of range. */
  map: Tensor;
  /** i32 [E]: tokens routed to each expert. */
  counts: Tensor;
  /** i32 [E + 1]: first row of each expert's segment; offsets[E] = rows in use. */
  offsets: Tensor;
}

/**
 * Token rows x [T, D] (any dtype: bf16, f32, fp8e4m3, ...) -> the contiguous grouped layout that
 * `fp8GroupedGemmContiguous` consumes, for routing indices i32 [T, k].
 *
 * Rows are sorted by expert; within an expert by token, then slot (deterministic on every device). Each
 * expert's segment starts at offsets[e] and is padded to a multiple of `align` (an expert with no tokens
 * gets no rows). The output has the static row count {@link moePermuteRows}(T, k, E, align), because
 * the rows in use depend on the routing, which lives on the device. Padding rows and the unused tail
 * have mIndices -1 and are NOT written (their contents are unspecified): the grouped GEMM skips them and
 * nothing reads them, and writing them would cost far more than the data itself at small T (decode with
 * 256 experts pads to ~32k rows). `map[t, j]` is the row of (t, j), for
 * {@link moeUnpermute}. Expert ids outside [0, E) are skipped (their map entry is -1) and make the next
 * read on the device reject with a RangeError.
 */
export function moePermute(x: Tensor, indices: Tensor, options: MoePermuteOptions): MoePermuted {
  const c = new Check('moePermute');
  c.tensor(x, 'x', { ndim: 2 });
  c.tensor(indices, 'indices', { dtypes: ['i32'], ndim: 2 });
  if (options === undefined) c.type('options must be an object with numExperts');
  const o = c.options<MoePermuteOptions>(options);
  const E = c.number(o.numExperts, 'options.numExperts', { integer: true, min: 1, max: MOE_MAX_EXPERTS });
  const align = c.number(o.align ?? 128, 'options.align', { integer: true, min: 1, max: 4096 });
  const [T, D] = x.shape;
  c.dim(indices, 'indices', 0, T, 'tokens of x');
  const k = indices.shape[1];
  if (k < 1) c.range(`indices.shape[1] (topk) must be at least 1, got shape [${indices.shape.join(', ')}]`);
  if (T * k > I32_MAX) c.range(`tokens * topk (${T * k}) must fit in i32`);
  const rows = moePermuteRows(T, k, E, align);
  if (rows > I32_MAX) c.range(`the grouped layout needs ${rows} rows, more than i32 indexes`);
  const scale = c.optionalTensor(o.scale, 'options.scale', { dtypes: ['f32'], ndim: 2 });
  if (scale) {
    if (D % 128 !== 0) c.range(`options.scale needs x's width to be a multiple of 128, got ${D}`);
    c.shape(scale, 'options.scale', [T, D / 128], 'one per 1x128 tile of x');
  }
  const dev = c.sameDevice([x, 'x'], [indices, 'indices'], [scale, 'options.scale']);

  const xs = x.contiguous();
  const idx = indices.contiguous();
  const sc = scale?.contiguous();
  const out: MoePermuted = {
    x: Tensor.alloc([rows, D], x.dtype, dev),
    scale: sc ? Tensor.alloc([rows, D / 128], 'f32', dev) : undefined,
    mIndices: Tensor.alloc([rows], 'i32', dev),
    map: Tensor.alloc([T, k], 'i32', dev),
    counts: Tensor.alloc([E], 'i32', dev),
    offsets: Tensor.alloc([E + 1], 'i32', dev),
  };
  const workspace = Tensor.alloc([Math.max(1, Math.ceil((T * k) / PERMUTE_CHUNK) * E + rows)], 'i32', dev);
  try {
    getNative().moePermute(xs, idx, sc ?? null, out.x, out.scale ?? null, out.mIndices, out.map, out.counts, out.offsets, workspace, align);
  } catch (e) {
    for (const t of Object.values(out)) (t as Tensor | undefined)?.dispose();
    throw e;
  } finally {
    xs.dispose();
    idx.dispose();
    sc?.dispose();
    workspace.dispose();
  }
  if (!out.scale) delete out.scale;
  return out;
}

/**
 * Expert outputs back to token order: y [rows, N] (bf16 or f32, rows of the grouped layout) ->
 * [T, N] with `out[t] = sum over j of weights[t, j] * y[map[t, j]]`, accumulated in f32 in slot order
 * j = 0..k-1 (so CPU and CUDA agree), for map i32 [T, k] and weights f32 [T, k] (from {@link moePermute}
 * and {@link moeGate}). A map entry of -1 contributes nothing (e.g. an expert held by another rank);
 * any other entry outside [0, rows) is skipped and makes the next read reject. Output bf16 by default.
 */
export function moeUnpermute(y: Tensor, map: Tensor, weights: Tensor, options?: { outDtype?: 'bf16' | 'f32' }): Tensor {
  const c = new Check('moeUnpermute');
  c.tensor(y, 'y', { dtypes: ['bf16', 'f32'], ndim: 2 });
  c.tensor(map, 'map', { dtypes: ['i32'], ndim: 2 });
  c.tensor(weights, 'weights', { dtypes: ['f32'], ndim: 2 });
  const o = c.options<{ outDtype?: 'bf16' | 'f32' }>(options);
  const outDtype = c.oneOf(o.outDtype ?? 'bf16', 'options.outDtype', ['bf16', 'f32'] as const);
  c.shape(weights, 'weights', map.shape, 'as map');
  const dev = c.sameDevice([y, 'y'], [map, 'map'], [weights, 'weights']);
  const [T] = map.shape;
  const N = y.shape[1];
  const ys = y.contiguous();
  const m = map.contiguous();
  const w = weights.contiguous();
  const out = Tensor.alloc([T, N], outDtype, dev);
  try {
    getNative().moeUnpermute(ys, m, w, out);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    ys.dispose();
    m.dispose();
    w.dispose();
  }
  return out;
}
