// Elementwise ops with NumPy broadcasting; f32 math, rounded once to the output dtype.
import type { DType } from '../dtype';
import { checkDType } from '../dtype';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { outDtypeOption, withTemps } from './rows';
import { Check } from './validate';

const FLOATS: readonly DType[] = ['f32', 'bf16', 'f16'];

export interface ElementwiseOptions {
  /** Output dtype (f32, bf16 or f16); default: the first operand's dtype. */
  outDtype?: 'f32' | 'bf16' | 'f16';
}

/** The broadcast shape of a and b (NumPy rules), or a RangeError naming both. */
function broadcastShape(c: Check, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) c.range(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast (dim ${i}: ${x} vs ${y})`);
    out[i] = x === 1 ? y : x;
  }
  return out;
}

/** A view of t with shape `shape` (broadcast dims get stride 0). */
function expand(t: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - t.ndim;
  const strides = shape.map((s, i) => (i < lead || (t.shape[i - lead] === 1 && s !== 1) ? 0 : t.strides[i - lead]));
  return t.viewAs(shape, strides, t.offset);
}

function binary(op: 0 | 1, name: string, a: Tensor, b: Tensor, options?: ElementwiseOptions): Tensor {
  const c = new Check(name);
  c.tensor(a, 'a', { dtypes: FLOATS });
  c.tensor(b, 'b', { dtypes: FLOATS });
  const o = c.options<ElementwiseOptions>(options);
  const outDtype = outDtypeOption(c, o.outDtype, FLOATS, a.dtype);
  const dev = c.sameDevice([a, 'a'], [b, 'b']);
  const shape = broadcastShape(c, a.shape, b.shape);
  const av = expand(a, shape), bv = expand(b, shape);
  return withTemps([av, bv], () => {
    const out = Tensor.alloc(shape, outDtype, dev);
    getNative().binary(op, av, bv, out);
    return out;
  });
}

/** `a + b` with NumPy broadcasting (f32/bf16/f16 inputs, f32 math); dtype of a unless `outDtype`. */
export function add(a: Tensor, b: Tensor, options?: ElementwiseOptions): Tensor {
  return binary(0, 'add', a, b, options);
}

/** `a * b` with NumPy broadcasting (f32/bf16/f16 inputs, f32 math); dtype of a unless `outDtype`. */
export function mul(a: Tensor, b: Tensor, options?: ElementwiseOptions): Tensor {
  return binary(1, 'mul', a, b, options);
}

/** `x * s` for a scalar s (rounded to f32 first), f32 math; dtype of x unless `outDtype`. */
export function scale(x: Tensor, s: number, options?: ElementwiseOptions): Tensor {
  const c = new Check('scale');
  c.tensor(x, 'x', { dtypes: FLOATS });
  c.number(s, 's');
  const o = c.options<ElementwiseOptions>(options);
  const outDtype = outDtypeOption(c, o.outDtype, FLOATS, x.dtype);
  const out = Tensor.alloc(x.shape, outDtype, x.deviceIndex);
  getNative().scale(x, s, out);
  return out;
}

/** `x` converted to `dtype` (same as `x.cast(dtype)`: round to nearest even, fp8 saturates to ±448). */
export function cast(x: Tensor, dtype: DType): Tensor {
  const c = new Check('cast');
  c.tensor(x, 'x');
  try {
    checkDType(dtype, 'dtype');
  } catch (e) {
    c.type((e as Error).message);
  }
  return x.cast(dtype);
}
