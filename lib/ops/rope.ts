// Rotary position embedding as DeepSeek checkpoints expect it: interleaved pairs, YaRN-corrected frequencies.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { Check } from './validate';

/**
 * YaRN context extension, as in the `rope_scaling` block of a DeepSeek-V3 / V2 Hugging Face config
 * (`factor`, `original_max_position_embeddings`, `beta_fast`, `beta_slow`, `mscale`, `mscale_all_dim`).
 */
export interface YarnOptions {
  /** Context extension factor (DeepSeek-V3: 40). */
  factor: number;
  /** Context length the model was pre-trained with (DeepSeek-V3: 4096). */
  originalMaxPosition: number;
  /** Rotations above which frequencies are kept (default 32). */
  betaFast?: number;
  /** Rotations below which frequencies are fully interpolated (default 1). */
  betaSlow?: number;
  /** Default 1. cos/sin are scaled by mscale(factor, mscale) / mscale(factor, mscaleAllDim). */
  mscale?: number;
  /** Default 0. DeepSeek-V3 sets 1, which folds the whole magnitude correction into the softmax scale. */
  mscaleAllDim?: number;
}

export interface RopeOptions {
  /** Base of the frequencies, `rope_theta` (default 10000). */
  theta?: number;
  /** How many of the last dims of x rotate (default 64, DeepSeek's qk_rope_head_dim); even, at most 256. */
  ropeDim?: number;
  /** YaRN correction; plain rotary when omitted. */
  yarn?: YarnOptions;
}

/** YaRN options with every default filled in. */
export type YarnParams = Required<YarnOptions>;

/** yarn_get_mscale of the reference implementations: 0.1 * m * ln(s) + 1 for s > 1, else 1. */
function yarnMscale(scale: number, m: number): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

function checkYarn(c: Check, yarn: unknown): YarnParams {
  const y = c.options<YarnOptions>(yarn, 'yarn');
  const factor = c.number(y.factor, 'yarn.factor', { min: 0, exclusiveMin: true });
  const originalMaxPosition = c.number(y.originalMaxPosition, 'yarn.originalMaxPosition', { min: 1 });
  const betaFast = c.number(y.betaFast ?? 32, 'yarn.betaFast', { min: 0, exclusiveMin: true });
  const betaSlow = c.number(y.betaSlow ?? 1, 'yarn.betaSlow', { min: 0, exclusiveMin: true });
  const mscale = c.number(y.mscale ?? 1, 'yarn.mscale');
  const mscaleAllDim = c.number(y.mscaleAllDim ?? 0, 'yarn.mscaleAllDim');
  return { factor, originalMaxPosition, betaFast, betaSlow, mscale, mscaleAllDim };
}

/**
 * The attention softmax scale DeepSeek uses with YaRN: `headDim^-0.5`, times `mscale(factor, mscaleAllDim)^2`
 * when `mscaleAllDim` is set (non-zero), as Hugging Face DeepseekV3Attention computes it. For DeepSeek-V3
 * (headDim = qk_nope 128 + qk_rope 64 = 192, factor 40, mscaleAllDim 1) that is 192^-0.5 * 1.3689^2.
 * Without `yarn` it is `headDim^-0.5`.
 */
export function yarnSoftmaxScale(headDim: number, yarn?: YarnOptions): number {
  const c = new Check('yarnSoftmaxScale');
  c.number(headDim, 'headDim', { min: 0, exclusiveMin: true });
  const base = 1 / Math.sqrt(headDim);
  if (yarn === undefined) return base;
  const y = checkYarn(c, yarn);
  if (!y.mscaleAllDim) return base;
  const m = yarnMscale(y.factor, y.mscaleAllDim);
  return base * m * m;
}

/**
 * Rotary position embedding on the last `ropeDim` dims of `x`, taken as interleaved pairs (x[2i], x[2i+1])
 * rotated by the angle `position * inv_freq[i]` (DeepSeek's view_as_complex layout, kept interleaved in the
 * output); the dims before them are copied unchanged. `inv_freq[i] = theta^(-2i/ropeDim)`, YaRN-corrected
 * when `yarn` is given (correction range from betaFast/betaSlow, linear ramp between interpolated and
 * extrapolated frequencies, cos/sin scaled by mscale(factor, mscale) / mscale(factor, mscaleAllDim)).
 *
 * `positions` (i32) has the leading shape of `x`: x [T, D] or [T, H, D] with positions [T] (the heads share
 * their token's position), or more leading dims alike ([B, S, H, D] with [B, S]). Angles are computed in
 * double precision, so positions far beyond 2^24 / inv_freq stay exact; the pair is rotated in f32.
 * x: f32, bf16 or f16; the result is a new tensor of x's dtype and shape.
 */
export function rope(x: Tensor, positions: Tensor, options?: RopeOptions): Tensor {
  const c = new Check('rope');
  c.tensor(x, 'x', { dtypes: ['f32', 'bf16', 'f16'] });
  c.tensor(positions, 'positions', { dtypes: ['i32'] });
  const o = c.options<RopeOptions>(options);
  const theta = c.number(o.theta ?? 10000, 'theta', { min: 1, exclusiveMin: true });
  const ropeDim = c.number(o.ropeDim ?? 64, 'ropeDim', { integer: true, min: 2, max: 256 });
  if (ropeDim % 2) c.range(`ropeDim must be even, got ${ropeDim}`);
  const y = o.yarn === undefined ? undefined : checkYarn(c, o.yarn);
  const pn = positions.ndim;
  if (pn < 1 || (x.ndim !== pn + 1 && x.ndim !== pn + 2))
    c.range(`x must have the shape of positions plus [D] or [H, D], got x [${x.shape.join(', ')}] and positions [${positions.shape.join(', ')}]`);
  for (let d = 0; d < pn; d++)
    if (x.shape[d] !== positions.shape[d])
      c.range(`positions must match the leading dims of x, got x [${x.shape.join(', ')}] and positions [${positions.shape.join(', ')}]`);
  const D = x.shape[x.ndim - 1];
  if (ropeDim > D) c.range(`ropeDim (${ropeDim}) must not exceed the last dim of x (${D})`);
  if (D % 2) c.range(`the last dim of x must be even, got ${D}`);
  const dev = c.sameDevice([x, 'x'], [positions, 'positions']);
  const T = positions.numel;
  const H = x.ndim === pn + 2 ? x.shape[x.ndim - 2] : 1;
  const xs = x.reshape([T, H, D]);
  const ps = positions.reshape([T]);
  const out = Tensor.alloc([T, H, D], x.dtype, dev);
  try {
    getNative().rope(xs, ps, out, theta, ropeDim, y?.factor ?? 0, y?.originalMaxPosition ?? 0, y?.betaFast ?? 0, y?.betaSlow ?? 0, y?.mscale ?? 0, y?.mscaleAllDim ?? 0);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    xs.dispose();
    ps.dispose();
  }
  const shaped = out.view(x.shape);
  out.dispose();
  return shaped;
}
