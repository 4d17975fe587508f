// Helpers shared by the ops: row-major views and output dtypes.
import type { DType } from '../dtype';
import { Tensor } from '../tensor';
import type { Check } from './validate';

/**
 * `t` as the kernels take it: a view of t itself when its last dim has unit stride and its leading dims
 * collapse into one row stride (contiguous tensors, column slices such as x.slice(-1, 0, 512)), else a
 * contiguous copy. The caller disposes the result.
 */
export function rowMajor(t: Tensor): Tensor {
  const nd = t.ndim;
  let ok = nd >= 1 && (t.shape[nd - 1] <= 1 || t.strides[nd - 1] === 1);
  let stride = -1, expect = 0;
  for (let d = nd - 2; ok && d >= 0; d--) {
    if (t.shape[d] === 1) continue;
    if (stride < 0) {
      stride = t.strides[d];
      expect = stride * t.shape[d];
      if (stride < t.shape[nd - 1]) ok = false;
    } else if (t.strides[d] !== expect) ok = false;
    else expect *= t.shape[d];
  }
  return ok ? t.viewAs(t.shape, t.strides, t.offset) : t.contiguous();
}

/** Optional output dtype among `allowed`, defaulting to `dflt`. */
export function outDtypeOption(c: Check, v: unknown, allowed: readonly DType[], dflt: DType, name = 'options.outDtype'): DType {
  return v === undefined ? dflt : c.oneOf(v as string, name, allowed as DType[]);
}

/** Runs fn with the given temporaries and disposes them afterwards. */
export function withTemps<T>(temps: Tensor[], fn: () => T): T {
  try {
    return fn();
  } finally {
    for (const t of temps) t.dispose();
  }
}
