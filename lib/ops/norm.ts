// RMSNorm, alone or fused with the residual add (as vLLM and SGLang do).
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { rowMajor, withTemps } from './rows';
import { Check } from './validate';

export interface RmsNormOptions {
  /** Added to the mean square before the square root (default 1e-6). */
  eps?: number;
  /** Fused add-norm: normalize h = x + residual and return h too. */
  residual?: Tensor;
}

/**
 * RMSNorm over the last dim: `out = x / sqrt(mean(x²) + eps) * weight`, f32 internally, rounded once to
 * x's dtype (bf16 or f32); weight [D] is bf16 or f32. With `residual` (x's shape and dtype), first
 * `h = x + residual` (rounded to x's dtype), then returns `{ out: rmsNorm(h), residual: h }` (fused
 * add-norm). The sum of squares follows one fixed order, so every device gives the same bits.
 */
export function rmsNorm(x: Tensor, weight: Tensor, options?: { eps?: number; residual?: undefined }): Tensor;
export function rmsNorm(x: Tensor, weight: Tensor, options: { eps?: number; residual: Tensor }): { out: Tensor; residual: Tensor };
export function rmsNorm(x: Tensor, weight: Tensor, options?: RmsNormOptions): Tensor | { out: Tensor; residual: Tensor };
export function rmsNorm(x: Tensor, weight: Tensor, options?: RmsNormOptions): Tensor | { out: Tensor; residual: Tensor } {
  const c = new Check('rmsNorm');
  c.tensor(x, 'x', { dtypes: ['bf16', 'f32'] });
  c.tensor(weight, 'weight', { dtypes: ['bf16', 'f32'], ndim: 1 });
  if (x.ndim < 1) c.range('x must have at least 1 dim');
  c.dim(weight, 'weight', 0, x.shape[x.ndim - 1], 'the last dim of x');
  const o = c.options<RmsNormOptions>(options);
  const eps = o.eps === undefined ? 1e-6 : c.number(o.eps, 'options.eps', { min: 0 });
  const residual = c.optionalTensor(o.residual, 'options.residual');
  if (residual) {
    if (residual.dtype !== x.dtype) c.type(`options.residual must have the dtype of x (${x.dtype}), got ${residual.dtype}`);
    c.shape(residual, 'options.residual', x.shape, 'the shape of x');
  }
  const dev = c.sameDevice([x, 'x'], [weight, 'weight'], [residual, 'options.residual']);
  const xr = rowMajor(x), w = weight.contiguous(), rr = residual ? rowMajor(residual) : undefined;
  return withTemps(rr ? [xr, w, rr] : [xr, w], () => {
    const out = Tensor.alloc(x.shape, x.dtype, dev);
    if (!rr) {
      getNative().rmsNorm(xr, w, null, eps, out, null);
      return out;
    }
    const h = Tensor.alloc(x.shape, x.dtype, dev);
    getNative().rmsNorm(xr, w, rr, eps, out, h);
    return { out, residual: h };
  });
}
