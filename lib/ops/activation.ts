// SwiGLU, alone or fused with FP8 activation quantization.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import type { Quantized } from './quant';
import { rowMajor, withTemps } from './rows';
import { Check } from './validate';

function checkGateUp(c: Check, gate: Tensor, up: Tensor): number {
  c.tensor(gate, 'gate', { dtypes: ['bf16', 'f32'] });
  c.tensor(up, 'up');
  if (up.dtype !== gate.dtype) c.type(`up must have the dtype of gate (${gate.dtype}), got ${up.dtype}`);
  c.shape(up, 'up', gate.shape, 'the shape of gate');
  if (gate.ndim < 1) c.range('gate must have at least 1 dim');
  return c.sameDevice([gate, 'gate'], [up, 'up']);
}

/**
 * `silu(gate) * up` elementwise (bf16 or f32, same shape and dtype), computed in f32 as
 * `(gate * sigmoid(gate)) * up` and rounded once to the input dtype. Same bits on every device.
 * gate and up may be column slices of one fused [..., 2I] projection; they are not copied.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const c = new Check('swiglu');
  const dev = checkGateUp(c, gate, up);
  const g = rowMajor(gate), u = rowMajor(up);
  return withTemps([g, u], () => {
    const out = Tensor.alloc(gate.shape, gate.dtype, dev);
    getNative().swiglu(g, u, out);
    return out;
  });
}

/** Options of swigluQuant. */
export interface SwigluQuantOptions {
  /**
   * i32 [rows] (rows = the product of gate's leading dims), e.g. moePermute's `mIndices`: rows whose entry is
   * negative (the contiguous layout's padding) are skipped and their `q` and `scale` rows are left unwritten
   * (unspecified contents), as moePermute leaves them. Saves the work on padding rows, which a static row
   * bound (CUDA-graph friendly) makes the majority at decode batch sizes.
   */
  mIndices?: Tensor;
}

/**
 * swiglu fused with quantizeActivation: `{ q: fp8e4m3 [..., D], scale: f32 [..., D/128] }` (D a multiple
 * of 128). The f32 SwiGLU values are quantized directly, with no rounding to bf16 in between, so the result
 * equals quantizeActivation of `swiglu(gate.cast('f32'), up.cast('f32'))` bit for bit (not necessarily of
 * a bf16 swiglu).
 */
export function swigluQuant(gate: Tensor, up: Tensor, options: SwigluQuantOptions = {}): Quantized {
  const c = new Check('swigluQuant');
  const dev = checkGateUp(c, gate, up);
  const D = gate.shape[gate.ndim - 1];
  if (D % 128 !== 0) c.range(`gate.shape[-1] must be a multiple of 128, got ${D}`);
  const rows = gate.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const m = options.mIndices;
  if (m !== undefined) {
    c.tensor(m, 'mIndices', { dtypes: ['i32'], ndim: 1 });
    if (m.shape[0] !== rows) c.range(`mIndices must have one entry per row (${rows}), got ${m.shape[0]}`);
    c.sameDevice([gate, 'gate'], [m, 'mIndices']);
  }
  const g = rowMajor(gate), u = rowMajor(up);
  const mi = m && !m.isContiguous() ? m.contiguous() : m;
  const temps = mi && mi !== m ? [g, u, mi] : [g, u];
  return withTemps(temps, () => {
    const q = Tensor.alloc(gate.shape, 'fp8e4m3', dev);
    const scale = Tensor.alloc([...gate.shape.slice(0, -1), D / 128], 'f32', dev);
    getNative().swigluQuant(g, u, q, scale, mi ?? null);
    return { q, scale };
  });
}
