// Creating tensors: from JS data, filled, or random. All of them enqueue and return at once.
import { randomBytes } from 'node:crypto';
import { type DType, DTYPE_SIZE, checkDType } from './dtype';
import { type DeviceLike, resolveDevice } from './device';
import { getNative } from './native';
import { Tensor, checkShape, numelOf } from './tensor';

export interface CreateOptions {
  dtype?: DType;
  device?: DeviceLike;
}
export interface TensorOptions extends CreateOptions {
  /** Shape of the data; inferred from nested arrays, else 1-D. */
  shape?: readonly number[];
}

type NestedNumbers = number | bigint | readonly NestedNumbers[];
export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigInt64Array
  | readonly NestedNumbers[];

function opts<T extends object>(o: unknown, name = 'options'): T {
  if (o === undefined) return {} as T;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`${name} must be an object`);
  return o as T;
}

function nestedShape(data: readonly NestedNumbers[]): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly NestedNumbers[])[0];
    if (shape.length > 8) throw new RangeError('data: nested arrays deeper than 8 levels');
  }
  return shape;
}

function flatten(data: readonly NestedNumbers[], shape: number[], out: (number | bigint)[], depth = 0): void {
  if (data.length !== shape[depth]) throw new RangeError(`data: ragged nested arrays (expected length ${shape[depth]} at depth ${depth}, got ${data.length})`);
  for (const x of data) {
    if (depth + 1 < shape.length) {
      if (!Array.isArray(x)) throw new RangeError(`data: ragged nested arrays at depth ${depth + 1}`);
      flatten(x, shape, out, depth + 1);
    } else {
      if (typeof x !== 'number' && typeof x !== 'bigint') throw new TypeError(`data: elements must be numbers or bigints, got ${typeof x}`);
      out.push(x);
    }
  }
}

function defaultDType(data: TensorData): DType {
  if (data instanceof Int32Array || data instanceof Int16Array || data instanceof Int8Array || data instanceof Uint16Array) return 'i32';
  if (data instanceof Uint32Array) return 'i64';
  if (data instanceof BigInt64Array) return 'i64';
  if (data instanceof Uint8Array) return 'u8';
  return 'f32';
}

/**
 * A tensor holding `data` (numbers are converted to dtype with the same rounding on every device;
 * narrow float types round from f32). Nested arrays give the shape; typed arrays are 1-D unless
 * `shape` says otherwise.
 */
export function tensor(data: TensorData, options?: TensorOptions): Tensor {
  const o = opts<TensorOptions>(options);
  let flat: ArrayLike<number | bigint>;
  let shape: number[];
  if (Array.isArray(data)) {
    const s = nestedShape(data);
    const out: (number | bigint)[] = [];
    if (s.length && s.every((x) => x > 0)) flatten(data, s, out);
    flat = out;
    shape = o.shape ? checkShape(o.shape) : s;
  } else if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    flat = data as ArrayLike<number | bigint>;
    shape = o.shape ? checkShape(o.shape) : [flat.length];
  } else {
    throw new TypeError(`data must be a typed array or a (nested) array of numbers, got ${data === null ? 'null' : typeof data}`);
  }
  if (numelOf(shape) !== flat.length)
    throw new RangeError(`shape [${shape.join(', ')}] holds ${numelOf(shape)} elements but data has ${flat.length}`);
  const dtype = o.dtype === undefined ? defaultDType(data) : checkDType(o.dtype, 'dtype');
  const device = resolveDevice(o.device);
  const n = getNative();
  // Stage in a type the host can write exactly, then convert on the device with the shared conversions.
  let host: Float32Array | Int32Array | BigInt64Array | Uint8Array;
  if (dtype === 'i64') host = BigInt64Array.from(flat as ArrayLike<number | bigint>, (x) => BigInt(typeof x === 'number' ? Math.trunc(x) : x));
  else if (dtype === 'i32') host = Int32Array.from(flat as ArrayLike<number | bigint>, Number);
  else if (dtype === 'u8') host = Uint8Array.from(flat as ArrayLike<number | bigint>, Number);
  else host = Float32Array.from(flat as ArrayLike<number | bigint>, Number);
  const stagedType: DType = host instanceof Float32Array ? 'f32' : dtype;
  const staged = Tensor.alloc(shape, stagedType, device);
  if (host.byteLength) n.write(staged.storage, 0, host);
  if (stagedType === dtype) return staged;
  const out = staged.cast(dtype);
  staged.dispose();
  return out;
}

/** A tensor whose stored bits are `bytes` (little-endian, as the dtype lays them out). */
export function fromBytes(bytes: ArrayBufferView | ArrayBuffer, options: TensorOptions & { dtype: DType }): Tensor {
  const o = opts<TensorOptions & { dtype: DType }>(options);
  const dtype = checkDType(o.dtype, 'dtype');
  const nbytes = bytes instanceof ArrayBuffer ? bytes.byteLength : ArrayBuffer.isView(bytes) ? bytes.byteLength : NaN;
  if (Number.isNaN(nbytes)) throw new TypeError('bytes must be an ArrayBuffer or a typed array');
  if (!o.shape && nbytes % DTYPE_SIZE[dtype] !== 0)
    throw new RangeError(`bytes has ${nbytes} bytes, not a whole number of ${dtype} elements (${DTYPE_SIZE[dtype]} bytes each)`);
  const shape = o.shape ? checkShape(o.shape) : [nbytes / DTYPE_SIZE[dtype]];
  if (numelOf(shape) * DTYPE_SIZE[dtype] !== nbytes)
    throw new RangeError(`bytes has ${nbytes} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${numelOf(shape) * DTYPE_SIZE[dtype]}`);
  const t = Tensor.alloc(shape, dtype, resolveDevice(o.device));
  if (nbytes) getNative().write(t.storage, 0, bytes);
  return t;
}

/** An uninitialized tensor (filled with NaN bytes when DSK_POISON=1). */
export function empty(shape: readonly number[], options?: CreateOptions): Tensor {
  const o = opts<CreateOptions>(options);
  return Tensor.alloc(checkShape(shape), o.dtype === undefined ? 'f32' : checkDType(o.dtype, 'dtype'), resolveDevice(o.device));
}

export function full(shape: readonly number[], value: number, options?: CreateOptions): Tensor {
  if (typeof value !== 'number') throw new TypeError(`value must be a number, got ${typeof value}`);
  const t = empty(shape, options);
  if (t.numel) getNative().fill(t, value);
  return t;
}
export const zeros = (shape: readonly number[], options?: CreateOptions): Tensor => full(shape, 0, options);
export const ones = (shape: readonly number[], options?: CreateOptions): Tensor => full(shape, 1, options);

export interface RandomOptions extends CreateOptions {
  /** 64-bit seed (number or bigint); the same seed gives the same bits on every device. Random when omitted. */
  seed?: number | bigint;
}

function seedHalves(seed: number | bigint | undefined): [number, number] {
  let s: bigint;
  if (seed === undefined) s = randomBytes(8).readBigUInt64LE();
  else if (typeof seed === 'bigint') s = seed;
  else if (typeof seed === 'number' && Number.isSafeInteger(seed)) s = BigInt(seed);
  else throw new TypeError(`seed must be an integer or a bigint, got ${String(seed)}`);
  if (s < 0n || s >= 1n << 64n) throw new RangeError(`seed must be in [0, 2^64), got ${s}`);
  return [Number(s >> 32n), Number(s & 0xffffffffn)];
}

function random(shape: readonly number[], o: RandomOptions, kind: 0 | 1 | 2, a: number, b: number): Tensor {
  const t = empty(shape, o);
  const [hi, lo] = seedHalves(o.seed);
  if (t.numel) getNative().random(t, kind, hi, lo, a, b);
  return t;
}

/** Uniform values in [low, high) (default [0, 1)). */
export function rand(shape: readonly number[], options?: RandomOptions & { low?: number; high?: number }): Tensor {
  const o = opts<RandomOptions & { low?: number; high?: number }>(options);
  return random(shape, o, 0, o.low ?? 0, o.high ?? 1);
}

/** Normal values with mean and std (default 0, 1). */
export function randn(shape: readonly number[], options?: RandomOptions & { mean?: number; std?: number }): Tensor {
  const o = opts<RandomOptions & { mean?: number; std?: number }>(options);
  return random(shape, o, 1, o.mean ?? 0, o.std ?? 1);
}

/** Integers uniform in [low, high), i32 unless dtype says otherwise. */
export function randint(shape: readonly number[], low: number, high: number, options?: RandomOptions): Tensor {
  const o = opts<RandomOptions>(options);
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high)) throw new TypeError('randint: low and high must be integers');
  if (high <= low) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  return random(shape, { dtype: 'i32', ...o }, 2, low, high);
}

/** 0, 1, ..., n-1. */
export function arange(n: number, options?: CreateOptions): Tensor {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`arange: n must be a non-negative integer, got ${n}`);
  const o = opts<CreateOptions>(options);
  const dtype = o.dtype ?? 'i32';
  const data = dtype === 'i64' ? BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) : Float64Array.from({ length: n }, (_, i) => i);
  return tensor(data as TensorData, { dtype, device: o.device });
}
