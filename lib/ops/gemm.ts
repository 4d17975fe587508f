// Dense GEMM for bf16/f32 (the MoE router gate, lm_head). The FP8 block-scaled GEMMs have their own file.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { outDtypeOption, rowMajor, withTemps } from './rows';
import { Check } from './validate';

export interface GemmOptions {
  /** Output dtype; default: the inputs' dtype. */
  outDtype?: 'bf16' | 'f32';
}

/**
 * NT product `out[M, N] = a[M, K] · b[N, K]ᵀ` (b is laid out like a PyTorch Linear weight), for bf16 or f32
 * inputs of one dtype, accumulated in f32 and rounded once to `outDtype` (default: the input dtype).
 * a and b may be row slices or column slices (unit stride in the last dim) without a copy.
 */
export function gemm(a: Tensor, b: Tensor, options?: GemmOptions): Tensor {
  const c = new Check('gemm');
  c.tensor(a, 'a', { dtypes: ['bf16', 'f32'], ndim: 2 });
  c.tensor(b, 'b', { ndim: 2 });
  if (b.dtype !== a.dtype) c.type(`b must have the dtype of a (${a.dtype}), got ${b.dtype}`);
  c.dim(b, 'b', 1, a.shape[1], 'K of a');
  const o = c.options<GemmOptions>(options);
  const outDtype = outDtypeOption(c, o.outDtype, ['bf16', 'f32'], a.dtype);
  const dev = c.sameDevice([a, 'a'], [b, 'b']);
  const ar = rowMajor(a), br = rowMajor(b);
  return withTemps([ar, br], () => {
    const out = Tensor.alloc([a.shape[0], b.shape[0]], outDtype, dev);
    getNative().gemm(ar, br, out);
    return out;
  });
}
