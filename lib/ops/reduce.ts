// Reductions over the last dim: softmax, logSoftmax, argmax, topk.
import type { DType } from '../dtype';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { outDtypeOption, rowMajor, withTemps } from './rows';
import { Check } from './validate';

const FLOATS: readonly DType[] = ['f32', 'bf16', 'f16'];

/** The largest k that topk accepts. */
export const TOPK_MAX = 4096;

export interface SoftmaxOptions {
  /** Output dtype (f32, bf16 or f16); default: x's dtype. */
  outDtype?: 'f32' | 'bf16' | 'f16';
}

function checkRows(c: Check, x: Tensor): void {
  c.tensor(x, 'x', { dtypes: FLOATS });
  if (x.ndim < 1) c.range('x must have at least 1 dim');
}

function softmaxLike(name: 'softmax' | 'logSoftmax', x: Tensor, options?: SoftmaxOptions): Tensor {
  const c = new Check(name);
  checkRows(c, x);
  const o = c.options<SoftmaxOptions>(options);
  const outDtype = outDtypeOption(c, o.outDtype, FLOATS, x.dtype);
  const xr = rowMajor(x);
  return withTemps([xr], () => {
    const out = Tensor.alloc(x.shape, outDtype, x.deviceIndex);
    getNative().softmax(xr, name === 'logSoftmax', out);
    return out;
  });
}

/**
 * Softmax over the last dim in f32 (max-subtracted, so large logits do not overflow), rounded once to
 * x's dtype unless `outDtype`. The denominator is summed in one fixed order, so every device gives the
 * same bits. A row holding NaN or +inf, or only -inf, gives NaN.
 */
export function softmax(x: Tensor, options?: SoftmaxOptions): Tensor {
  return softmaxLike('softmax', x, options);
}

/** log(softmax(x)) over the last dim, computed stably as (x - max) - log(sum exp(x - max)). */
export function logSoftmax(x: Tensor, options?: SoftmaxOptions): Tensor {
  return softmaxLike('logSoftmax', x, options);
}

/**
 * Index (i32) of the largest element along the last dim -> shape x.shape[:-1]. Ties go to the lower index;
 * NaN counts as larger than every number (the first NaN wins); -0 and +0 are equal.
 */
export function argmax(x: Tensor): Tensor {
  const c = new Check('argmax');
  checkRows(c, x);
  if (x.shape[x.ndim - 1] < 1) c.range('x.shape[-1] must be at least 1');
  const xr = rowMajor(x);
  return withTemps([xr], () => {
    const out = Tensor.alloc(x.shape.slice(0, -1), 'i32', x.deviceIndex);
    getNative().argmax(xr, out);
    return out;
  });
}

/**
 * The k largest elements along the last dim, sorted descending: `{ values (x's dtype, bit-exact copies),
 * indices i32 }`, each of shape [..., k]. Same order as argmax (ties to the lower index, NaN largest).
 * 1 <= k <= min(x.shape[-1], 4096).
 */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const c = new Check('topk');
  checkRows(c, x);
  const n = x.shape[x.ndim - 1];
  c.number(k, 'k', { integer: true, min: 1, max: Math.min(n, TOPK_MAX) });
  const xr = rowMajor(x);
  return withTemps([xr], () => {
    const shape = [...x.shape.slice(0, -1), k];
    const values = Tensor.alloc(shape, x.dtype, x.deviceIndex);
    const indices = Tensor.alloc(shape, 'i32', x.deviceIndex);
    getNative().topk(xr, k, values, indices);
    return { values, indices };
  });
}
