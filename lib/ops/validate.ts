// Argument checks shared by the ops. Each throws TypeError (wrong kind or dtype, disposed, wrong
// device) or RangeError (shape, value) whose message starts with the op and names the argument.
import type { DType } from '../dtype';
import { Tensor } from '../tensor';

export class Check {
  constructor(readonly op: string) {}

  type(msg: string): never {
    throw new TypeError(`${this.op}: ${msg}`);
  }
  range(msg: string): never {
    throw new RangeError(`${this.op}: ${msg}`);
  }

  /** A live Tensor, optionally with one of `dtypes` and `ndim` dims. */
  tensor(x: unknown, name: string, spec: { dtypes?: readonly DType[]; ndim?: number | readonly number[] } = {}): Tensor {
    if (!(x instanceof Tensor)) this.type(`${name} must be a Tensor, got ${x === null ? 'null' : typeof x}`);
    const t = x as Tensor;
    if (t.disposed) this.type(`${name} has been disposed`);
    if (spec.dtypes && !spec.dtypes.includes(t.dtype)) this.type(`${name} must have dtype ${spec.dtypes.join(' or ')}, got ${t.dtype}`);
    if (spec.ndim !== undefined) {
      const ok = typeof spec.ndim === 'number' ? t.ndim === spec.ndim : spec.ndim.includes(t.ndim);
      if (!ok) this.range(`${name} must have ${typeof spec.ndim === 'number' ? spec.ndim : spec.ndim.join(' or ')} dims, got shape [${t.shape.join(', ')}]`);
    }
    return t;
  }

  optionalTensor(x: unknown, name: string, spec: { dtypes?: readonly DType[]; ndim?: number | readonly number[] } = {}): Tensor | undefined {
    return x === undefined || x === null ? undefined : this.tensor(x, name, spec);
  }

  /** t.shape[dim] === size. */
  dim(t: Tensor, name: string, dim: number, size: number, what?: string): void {
    const d = dim < 0 ? dim + t.ndim : dim;
    if (t.shape[d] !== size)
      this.range(`${name}.shape[${d}] must be ${size}${what ? ` (${what})` : ''}, got shape [${t.shape.join(', ')}]`);
  }

  /** Exact shape match. */
  shape(t: Tensor, name: string, shape: readonly number[], what?: string): void {
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i]))
      this.range(`${name} must have shape [${shape.join(', ')}]${what ? ` (${what})` : ''}, got [${t.shape.join(', ')}]`);
  }

  /** All tensors on one device; returns its index (-1 = cpu). */
  sameDevice(...pairs: [Tensor | undefined, string][]): number {
    let first: [Tensor, string] | undefined;
    for (const [t, name] of pairs) {
      if (!t) continue;
      if (!first) first = [t, name];
      else if (t.device !== first[0].device)
        this.type(`${name} is on ${t.device} but ${first[1]} is on ${first[0].device}; move them to one device with .to()`);
    }
    return first ? first[0].deviceIndex : -1;
  }

  /** An options object (or undefined -> {}). */
  options<T extends object>(o: unknown, name = 'options'): Partial<T> {
    if (o === undefined) return {};
    if (o === null || typeof o !== 'object' || Array.isArray(o)) this.type(`${name} must be an object`);
    return o as Partial<T>;
  }

  number(v: unknown, name: string, spec: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean } = {}): number {
    if (typeof v !== 'number' || Number.isNaN(v)) this.type(`${name} must be a number, got ${typeof v === 'number' ? 'NaN' : typeof v}`);
    const x = v as number;
    if (spec.integer && !Number.isSafeInteger(x)) this.type(`${name} must be an integer, got ${x}`);
    if (!spec.integer && !Number.isFinite(x)) this.range(`${name} must be finite, got ${x}`);
    if (spec.min !== undefined && (spec.exclusiveMin ? x <= spec.min : x < spec.min)) this.range(`${name} must be ${spec.exclusiveMin ? '>' : '>='} ${spec.min}, got ${x}`);
    if (spec.max !== undefined && x > spec.max) this.range(`${name} must be <= ${spec.max}, got ${x}`);
    return x;
  }

  oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !allowed.includes(v as T)) this.type(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  boolean(v: unknown, name: string): boolean {
    if (typeof v !== 'boolean') this.type(`${name} must be a boolean, got ${typeof v}`);
    return v as boolean;
  }
}
