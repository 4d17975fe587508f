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

/**
 * swiglu fused with quantizeActivation: `{ q: fp8e4m3 [..., D], scale: f32 [..., D/128] }` (D a multiple
 * of 128). The f32 SwiGLU values are quantized directly, with no rounding to bf16 in between, so the result
 * equals quantizeActivation of `swiglu(gate.cast('f32'), up.cast('f32'))` bit for bit (not necessarily of
 * a bf16 swiglu).
 */
export function swigluQuant(gate: Tensor, up: Tensor): Quantized {
  const c = new Check('swigluQuant');
  const dev = checkGateUp(c, gate, up);
  const D = gate.shape[gate.ndim - 1];
  if (D % 128 !== 0) c.range(`gate.shape[-1] must be a multiple of 128, got ${D}`);
  const g = rowMajor(gate), u = rowMajor(up);
  return withTemps([g, u], () => {
    const q = Tensor.alloc(gate.shape, 'fp8e4m3', dev);
    const scale = Tensor.alloc([...gate.shape.slice(0, -1), D / 128], 'f32', dev);
    getNative().swigluQuant(g, u, q, scale);
    return { q, scale };
  });
}
