// FP8 quantization as DeepSeek-V3 trains and serves: 1x128 activation tiles, 128x128 weight blocks,
// scale = max(amax, 1e-4) / 448, q = fp8e4m3(x / scale). Bit-identical on every device.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { outDtypeOption, rowMajor, withTemps } from './rows';
import { Check } from './validate';

/** An FP8 tensor with its f32 scales. */
export interface Quantized {
  q: Tensor;
  scale: Tensor;
}

export interface DequantizeOptions {
  /** 'activation': scale [..., K/128], one per 1x128 tile; 'weight': scale [ceil(N/128), ceil(K/128)]. */
  layout: 'activation' | 'weight';
  /** Output dtype (default 'bf16'). */
  outDtype?: 'bf16' | 'f32';
}

/**
 * Per-token-group FP8 quantization of activations: x [..., K] (bf16 or f32, K a multiple of 128) ->
 * `{ q: fp8e4m3 [..., K], scale: f32 [..., K/128] }`, one scale per 1x128 tile:
 * `scale = max(amax, 1e-4) / 448` and `q = fp8(x / scale)` (f32 division, round to nearest even,
 * saturating at ±448; NaN stays NaN and does not count towards amax). CPU and CUDA give the same bits.
 * x may be a column slice of a larger tensor (unit stride in its last dim); it is not copied.
 */
export function quantizeActivation(x: Tensor): Quantized {
  const c = new Check('quantizeActivation');
  c.tensor(x, 'x', { dtypes: ['bf16', 'f32'] });
  if (x.ndim < 1) c.range('x must have at least 1 dim');
  const K = x.shape[x.ndim - 1];
  if (K % 128 !== 0) c.range(`x.shape[-1] must be a multiple of 128, got ${K}`);
  const dev = x.deviceIndex;
  const xr = rowMajor(x);
  return withTemps([xr], () => {
    const q = Tensor.alloc(x.shape, 'fp8e4m3', dev);
    const scale = Tensor.alloc([...x.shape.slice(0, -1), K / 128], 'f32', dev);
    getNative().quantizeActivation(xr, q, scale);
    return { q, scale };
  });
}

/**
 * Per-block FP8 quantization of a weight w [N, K] (bf16 or f32) -> `{ q: fp8e4m3 [N, K], scale: f32
 * [ceil(N/128), ceil(K/128)] }`, one scale per 128x128 block (edge blocks cover what is left), with the
 * formulas of quantizeActivation. `scale` is what checkpoints call `weight_scale_inv`.
 */
export function quantizeWeight(w: Tensor): Quantized {
  const c = new Check('quantizeWeight');
  c.tensor(w, 'w', { dtypes: ['bf16', 'f32'], ndim: 2 });
  const [N, K] = w.shape;
  const dev = w.deviceIndex;
  const wc = w.contiguous();
  return withTemps([wc], () => {
    const q = Tensor.alloc([N, K], 'fp8e4m3', dev);
    const scale = Tensor.alloc([Math.ceil(N / 128), Math.ceil(K / 128)], 'f32', dev);
    getNative().quantizeWeight(wc, q, scale);
    return { q, scale };
  });
}

/**
 * `f32(q) * scale` per tile (activation layout) or per 128x128 block (weight layout), as bf16 (default)
 * or f32. The inverse of quantizeActivation / quantizeWeight up to the FP8 rounding.
 */
export function dequantize(q: Tensor, scale: Tensor, options: DequantizeOptions): Tensor {
  const c = new Check('dequantize');
  c.tensor(q, 'q', { dtypes: ['fp8e4m3'] });
  c.tensor(scale, 'scale', { dtypes: ['f32'] });
  if (options === undefined) c.type("options.layout is required ('activation' or 'weight')");
  const o = c.options<DequantizeOptions>(options);
  const layout = c.oneOf(o.layout, 'options.layout', ['activation', 'weight'] as const);
  const outDtype = outDtypeOption(c, o.outDtype, ['bf16', 'f32'], 'bf16');
  const dev = c.sameDevice([q, 'q'], [scale, 'scale']);
  if (q.ndim < 1) c.range('q must have at least 1 dim');
  const K = q.shape[q.ndim - 1];
  if (layout === 'weight') {
    if (q.ndim !== 2) c.range(`q must have 2 dims for the weight layout, got shape [${q.shape.join(', ')}]`);
    c.shape(scale, 'scale', [Math.ceil(q.shape[0] / 128), Math.ceil(K / 128)], '[ceil(N/128), ceil(K/128)]');
  } else {
    if (K % 128 !== 0) c.range(`q.shape[-1] must be a multiple of 128, got ${K}`);
    c.shape(scale, 'scale', [...q.shape.slice(0, -1), K / 128], '[..., K/128]');
  }
  const qc = q.contiguous(), sc = scale.contiguous();
  return withTemps([qc, sc], () => {
    const out = Tensor.alloc(q.shape, outDtype, dev);
    getNative().dequantize(qc, sc, layout === 'weight', out);
    return out;
  });
}
