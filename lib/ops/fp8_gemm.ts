// FP8 block-scaled GEMMs (NT: D = A · Bᵀ), as DeepSeek-V3 runs its linear layers and experts.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { Check } from './validate';

/** Options of the FP8 GEMMs. */
export interface Fp8GemmOptions {
  /**
   * Write the result into this bf16 tensor (of the output's shape, contiguous, on the operands' device)
   * instead of a fresh one. Rows the op leaves untouched (padding rows of the contiguous layout, rows past
   * `maskedM` in the masked one) keep its previous contents.
   */
  out?: Tensor;
}

function checkCommon(c: Check, a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, aDims: number, bDims: number): { n: number; k: number } {
  c.tensor(a, 'a', { dtypes: ['fp8e4m3'], ndim: aDims });
  c.tensor(aScale, 'aScale', { dtypes: ['f32'], ndim: aDims });
  c.tensor(b, 'b', { dtypes: ['fp8e4m3'], ndim: bDims });
  c.tensor(bScale, 'bScale', { dtypes: ['f32'], ndim: bDims });
  const k = a.shape[aDims - 1];
  if (k % 128 !== 0) c.range(`a.shape[${aDims - 1}] (K) must be a multiple of 128, got ${k}`);
  const n = b.shape[bDims - 2];
  c.dim(b, 'b', bDims - 1, k, 'K of a');
  const aLead = a.shape.slice(0, aDims - 1);
  c.shape(aScale, 'aScale', [...aLead, k / 128], 'one scale per 1x128 tile of a');
  const bLead = b.shape.slice(0, bDims - 2);
  c.shape(bScale, 'bScale', [...bLead, Math.ceil(n / 128), k / 128], 'one scale per 128x128 block of b');
  return { n, k };
}

function output(c: Check, shape: number[], dev: number, opts: Fp8GemmOptions | undefined): Tensor {
  const o = c.options<Fp8GemmOptions>(opts);
  if (o.out === undefined) return Tensor.alloc(shape, 'bf16', dev);
  const out = c.tensor(o.out, 'options.out', { dtypes: ['bf16'] });
  c.shape(out, 'options.out', shape, 'the output shape');
  if (out.deviceIndex !== dev) c.type(`options.out is on ${out.device}, not on the operands' device`);
  if (!out.isContiguous()) c.range('options.out must be contiguous');
  return out.viewAs(out.shape, out.strides, out.offset);
}

function contiguousArgs(ts: Tensor[], fn: (cs: Tensor[]) => void): void {
  const cs = ts.map((t) => t.contiguous());
  try {
    fn(cs);
  } finally {
    cs.forEach((t) => t.dispose());
  }
}

/**
 * FP8 GEMM with DeepSeek-V3's fine-grained scaling: `D[m, n] = Σ_kb (Σ_{k∈kb} a[m,k]·b[n,k]) · aScale[m,kb] · bScale[n/128,kb]`
 * in fp32 over 128-wide K blocks, stored as bf16.
 *
 * @param a fp8e4m3 `[M, K]` activations, K a multiple of 128.
 * @param aScale f32 `[M, K/128]`, one scale per 1x128 tile of `a` (dequantized = fp8 · scale).
 * @param b fp8e4m3 `[N, K]` weights (the GEMM is NT: D = A·Bᵀ).
 * @param bScale f32 `[ceil(N/128), K/128]`, one scale per 128x128 block of `b` (a checkpoint's `weight_scale_inv`).
 * @returns bf16 `[M, N]`. On Hopper GPUs this runs the TMA/WGMMA kernels; elsewhere a portable one.
 */
export function fp8Gemm(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, options?: Fp8GemmOptions): Tensor {
  const c = new Check('fp8Gemm');
  const { n } = checkCommon(c, a, aScale, b, bScale, 2, 2);
  const dev = c.sameDevice([a, 'a'], [aScale, 'aScale'], [b, 'b'], [bScale, 'bScale']);
  const out = output(c, [a.shape[0], n], dev, options);
  try {
    contiguousArgs([a, aScale, b, bScale], ([a2, s2, b2, t2]) => getNative().fp8Gemm(a2, s2, b2, t2, out));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Grouped FP8 GEMM over the contiguous MoE layout: row `i` of `a` is multiplied by expert `mIndices[i]`'s
 * weights. Each expert's rows are contiguous and padded to 128 rows (as `moePermute` lays them out); rows
 * with `mIndices[i] = -1` are padding and left untouched. An index outside [-1, G) is skipped and makes the
 * next read on the device reject with a RangeError.
 *
 * @param a fp8e4m3 `[Mtot, K]`; @param aScale f32 `[Mtot, K/128]`.
 * @param b fp8e4m3 `[G, N, K]` expert weights; @param bScale f32 `[G, ceil(N/128), K/128]`.
 * @param mIndices i32 `[Mtot]`, the expert of each row (-1 = padding).
 * @returns bf16 `[Mtot, N]` (or `options.out`).
 */
export function fp8GroupedGemmContiguous(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, mIndices: Tensor, options?: Fp8GemmOptions): Tensor {
  const c = new Check('fp8GroupedGemmContiguous');
  const { n } = checkCommon(c, a, aScale, b, bScale, 2, 3);
  c.tensor(mIndices, 'mIndices', { dtypes: ['i32'], ndim: 1 });
  c.dim(mIndices, 'mIndices', 0, a.shape[0], 'rows of a');
  const dev = c.sameDevice([a, 'a'], [aScale, 'aScale'], [b, 'b'], [bScale, 'bScale'], [mIndices, 'mIndices']);
  const out = output(c, [a.shape[0], n], dev, options);
  try {
    contiguousArgs([a, aScale, b, bScale, mIndices], ([a2, s2, b2, t2, i2]) => getNative().fp8GroupedGemmContiguous(a2, s2, b2, t2, i2, out));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Grouped FP8 GEMM over the masked layout (DeepSeek's low-latency decode MoE): group `g` multiplies its
 * first `maskedM[g]` rows of `a[g]` by `b[g]`; the other rows of the output are left untouched. A count
 * outside [0, Mmax] skips the group and makes the next read on the device reject with a RangeError.
 *
 * @param a fp8e4m3 `[G, Mmax, K]`; @param aScale f32 `[G, Mmax, K/128]`.
 * @param b fp8e4m3 `[G, N, K]`; @param bScale f32 `[G, ceil(N/128), K/128]`.
 * @param maskedM i32 `[G]`, valid rows per group.
 * @returns bf16 `[G, Mmax, N]` (or `options.out`).
 */
export function fp8GroupedGemmMasked(a: Tensor, aScale: Tensor, b: Tensor, bScale: Tensor, maskedM: Tensor, options?: Fp8GemmOptions): Tensor {
  const c = new Check('fp8GroupedGemmMasked');
  const { n } = checkCommon(c, a, aScale, b, bScale, 3, 3);
  c.dim(b, 'b', 0, a.shape[0], 'groups of a');
  c.tensor(maskedM, 'maskedM', { dtypes: ['i32'], ndim: 1 });
  c.dim(maskedM, 'maskedM', 0, a.shape[0], 'groups of a');
  const dev = c.sameDevice([a, 'a'], [aScale, 'aScale'], [b, 'b'], [bScale, 'bScale'], [maskedM, 'maskedM']);
  const out = output(c, [a.shape[0], a.shape[1], n], dev, options);
  try {
    contiguousArgs([a, aScale, b, bScale, maskedM], ([a2, s2, b2, t2, m2]) => getNative().fp8GroupedGemmMasked(a2, s2, b2, t2, m2, out));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** @internal Test hooks of the FP8 GEMM dispatcher: configuration names, forcing one, the current choice. */
export const fp8GemmTesting = {
  /** Names of the kernel configurations the CUDA dispatcher can pick ('portable' and the Hopper ones). */
  configs(): string[] {
    return getNative().fp8GemmConfigs();
  },
  /** Forces a configuration by name ('' restores the heuristic). */
  force(name: string): void {
    getNative().fp8GemmForceConfig(name);
  },
  /** What the dispatcher runs for a problem on `device` (-1 = cpu): 'portable', a Hopper config, or 'cpu'. */
  choice(device: number, kind: 'normal' | 'contiguous' | 'masked', m: number, n: number, k: number, groups = 1): string {
    return getNative().fp8GemmChoice(device, kind === 'normal' ? 0 : kind === 'contiguous' ? 1 : 2, m, n, k, groups);
  },
};
