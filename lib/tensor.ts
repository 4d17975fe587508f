// Tensor: a typed view (shape, strides, offset, dtype) of device storage.
//
// Everything that produces a tensor enqueues work on the device's in-order queue and returns at once;
// only reads (`toArray`, `item`) wait, and they return promises. Storage is shared by views and freed
// when the last tensor using it is disposed (explicitly, by `using`, or by the garbage collector).
import type { NativeStorage, TensorLike } from '../bindings/native';
import { type DType, DTYPE_SIZE, checkDType, isFloat, rawArray, type RawArray, type ArrayFor } from './dtype';
import { type Device, type DeviceLike, deviceName, resolveDevice } from './device';
import { getNative } from './native';

export type Shape = readonly number[];
export const MAX_DIMS = 8;
/** Largest allocation accepted (bytes); larger requests are refused before reaching a device. */
export const MAX_BYTES = 2 ** 50;

interface StorageRef {
  native: NativeStorage;
  refs: number;
}

const disposeSymbol: typeof Symbol.dispose = (Symbol as { dispose?: typeof Symbol.dispose }).dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose);

// Backstop for tensors that are dropped without dispose(): when one is collected, its reference to
// the storage goes away; the storage is released with the last one.
const registry = new FinalizationRegistry<StorageRef>((ref) => unref(ref));

function unref(ref: StorageRef): void {
  if (--ref.refs === 0) ref.native.release();
}

export function checkShape(shape: unknown, name = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${name} must be an array of non-negative integers, got ${describe(shape)}`);
  if (shape.length > MAX_DIMS) throw new RangeError(`${name} has ${shape.length} dims; at most ${MAX_DIMS} are supported`);
  shape.forEach((s, i) => {
    if (typeof s !== 'number' || !Number.isSafeInteger(s))
      throw new TypeError(`${name}[${i}] must be a non-negative integer, got ${describe(s)}`);
    if (s < 0) throw new RangeError(`${name}[${i}] must be non-negative, got ${s}`);
  });
  return shape.slice() as number[];
}

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

function contiguousStrides(shape: Shape): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

function describe(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? (v as object).constructor?.name ?? 'an object' : typeof v;
}

export interface ToArrayOptions {
  /** Return the stored bit patterns (Uint16Array for bf16/f16, Uint8Array for fp8) instead of decoded values. */
  raw?: boolean;
}

export class Tensor implements TensorLike {
  /** The native storage; null once this tensor is disposed. */
  storage: NativeStorage;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  private ref: StorageRef | null;

  /** @internal Use the factories (tensor, empty, zeros, ...) instead. */
  constructor(ref: StorageRef, shape: Shape, strides: Shape, offset: number, dtype: DType) {
    ref.refs++;
    this.ref = ref;
    this.storage = ref.native;
    this.shape = Object.freeze(shape.slice());
    this.strides = Object.freeze(strides.slice());
    this.offset = offset;
    this.dtype = dtype;
    this.device = deviceName(ref.native.device);
    registry.register(this, ref, this);
  }

  /** @internal A fresh contiguous tensor with uninitialized contents. */
  static alloc(shape: Shape, dtype: DType, device: number): Tensor {
    const n = numelOf(shape) * DTYPE_SIZE[dtype];
    if (n > MAX_BYTES) throw new RangeError(`shape [${shape.join(', ')}] of ${dtype} needs ${n} bytes, more than the ${MAX_BYTES} supported`);
    const native = new (getNative().Storage)(device, n);
    return new Tensor({ native, refs: 0 }, shape, contiguousStrides(shape), 0, dtype);
  }

  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  get nbytes(): number {
    return this.numel * DTYPE_SIZE[this.dtype];
  }
  get disposed(): boolean {
    return this.ref === null;
  }
  /** Device id as the addon numbers it (-1 = cpu). */
  get deviceIndex(): number {
    return this.storage ? this.storage.device : -2;
  }

  isContiguous(): boolean {
    let expect = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.strides[d] !== expect) return false;
      expect *= this.shape[d];
    }
    return true;
  }

  /** Throws a TypeError naming `name` if this tensor has been disposed. */
  assertLive(name = 'tensor'): this {
    if (!this.ref) throw new TypeError(`${name} has been disposed`);
    return this;
  }

  /** Releases this tensor's hold on its storage; the memory goes when no tensor uses it. Idempotent. */
  dispose(): void {
    const ref = this.ref;
    if (!ref) return;
    this.ref = null;
    (this as { storage: NativeStorage | null }).storage = null as unknown as NativeStorage;
    registry.unregister(this);
    unref(ref);
  }
  [disposeSymbol](): void {
    this.dispose();
  }

  /** @internal A view sharing this tensor's storage. */
  viewAs(shape: Shape, strides: Shape, offset: number, dtype: DType = this.dtype): Tensor {
    this.assertLive();
    return new Tensor(this.ref!, shape, strides, offset, dtype);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.ref ? '' : ', disposed'})`;
  }

  // ---- views ----

  private normDim(dim: number, name = 'dim', ndim = this.ndim): number {
    if (!Number.isInteger(dim)) throw new TypeError(`${name} must be an integer, got ${describe(dim)}`);
    const d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim) throw new RangeError(`${name} ${dim} is out of range for a ${ndim}-dim tensor`);
    return d;
  }

  private inferShape(shape: readonly number[]): number[] {
    if (!Array.isArray(shape)) throw new TypeError(`shape must be an array of integers, got ${describe(shape)}`);
    let infer = -1;
    let known = 1;
    shape.forEach((s, i) => {
      if (s === -1) {
        if (infer >= 0) throw new RangeError('shape: only one dimension can be -1');
        infer = i;
      } else {
        if (!Number.isSafeInteger(s) || s < 0) throw new TypeError(`shape[${i}] must be a non-negative integer or -1, got ${describe(s)}`);
        known *= s;
      }
    });
    const out = shape.slice();
    if (infer >= 0) {
      if (known === 0 || this.numel % known !== 0)
        throw new RangeError(`shape [${shape.join(', ')}] is invalid for ${this.numel} elements`);
      out[infer] = this.numel / known;
    }
    if (numelOf(out) !== this.numel) throw new RangeError(`shape [${shape.join(', ')}] is invalid for a tensor of shape [${this.shape.join(', ')}]`);
    return checkShape(out);
  }

  /** Same data, new shape; the tensor must be contiguous. One dimension may be -1. */
  view(shape: readonly number[]): Tensor {
    this.assertLive();
    const s = this.inferShape(shape);
    if (!this.isContiguous()) throw new RangeError(`view: tensor of shape [${this.shape.join(', ')}] is not contiguous; use reshape()`);
    return this.viewAs(s, contiguousStrides(s), this.offset);
  }

  /** New shape; a view when contiguous, a copy otherwise. */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive();
    const s = this.inferShape(shape);
    if (this.isContiguous()) return this.viewAs(s, contiguousStrides(s), this.offset);
    const c = this.contiguous();
    const v = c.view(s);
    c.dispose();
    return v;
  }

  /** Elements start..end (exclusive) along dim, as a view. Negative indices count from the end. */
  slice(dim: number, start: number, end: number = this.shape[this.normDim(dim)], step = 1): Tensor {
    this.assertLive();
    const d = this.normDim(dim);
    const n = this.shape[d];
    if (!Number.isInteger(start) || !Number.isInteger(end)) throw new TypeError('slice: start and end must be integers');
    if (!Number.isInteger(step) || step < 1) throw new RangeError(`slice: step must be a positive integer, got ${step}`);
    const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
    const e = Math.min(Math.max(end < 0 ? end + n : end, s), n);
    const shape = this.shape.slice();
    const strides = this.strides.slice();
    shape[d] = Math.ceil((e - s) / step);
    strides[d] = this.strides[d] * step;
    return this.viewAs(shape, strides, this.offset + s * this.strides[d]);
  }

  /** The sub-tensor at `index` along dim (that dim removed), as a view. */
  select(dim: number, index: number): Tensor {
    this.assertLive();
    const d = this.normDim(dim);
    const n = this.shape[d];
    if (!Number.isInteger(index)) throw new TypeError(`select: index must be an integer, got ${describe(index)}`);
    const i = index < 0 ? index + n : index;
    if (i < 0 || i >= n) throw new RangeError(`select: index ${index} is out of range for dim ${dim} of size ${n}`);
    const shape = this.shape.filter((_, k) => k !== d);
    const strides = this.strides.filter((_, k) => k !== d);
    return this.viewAs(shape, strides, this.offset + i * this.strides[d]);
  }

  /** Dimensions reordered, as a view. */
  permute(dims: readonly number[]): Tensor {
    this.assertLive();
    if (!Array.isArray(dims) || dims.length !== this.ndim)
      throw new RangeError(`permute: dims must list all ${this.ndim} dimensions, got ${describe(dims)}`);
    const ds = dims.map((x, i) => this.normDim(x, `dims[${i}]`));
    if (new Set(ds).size !== ds.length) throw new RangeError(`permute: dims [${dims.join(', ')}] repeat a dimension`);
    return this.viewAs(ds.map((x) => this.shape[x]), ds.map((x) => this.strides[x]), this.offset);
  }

  transpose(dim0 = -2, dim1 = -1): Tensor {
    const order = [...Array(this.ndim).keys()];
    const a = this.normDim(dim0, 'dim0'), b = this.normDim(dim1, 'dim1');
    [order[a], order[b]] = [order[b], order[a]];
    return this.permute(order);
  }

  /** Adds a dimension of size 1 at `dim`. */
  unsqueeze(dim: number): Tensor {
    this.assertLive();
    const d = this.normDim(dim, 'dim', this.ndim + 1);
    const shape = this.shape.slice();
    const strides = this.strides.slice();
    shape.splice(d, 0, 1);
    strides.splice(d, 0, d < this.ndim ? this.strides[d] * this.shape[d] : 1);
    return this.viewAs(shape, strides, this.offset);
  }

  // ---- copies ----

  /** A contiguous tensor with the same values: a view of this one when it already is. */
  contiguous(): Tensor {
    this.assertLive();
    if (this.isContiguous()) return this.viewAs(this.shape, this.strides, this.offset);
    return this.clone();
  }

  /** A contiguous copy. */
  clone(): Tensor {
    this.assertLive();
    const out = Tensor.alloc(this.shape, this.dtype, this.deviceIndex);
    getNative().copy(out, this);
    return out;
  }

  /** Values converted to `dtype` (round to nearest even; fp8 saturates to ±448). */
  cast(dtype: DType): Tensor {
    this.assertLive();
    checkDType(dtype, 'dtype');
    if (dtype === this.dtype) return this.contiguous();
    const out = Tensor.alloc(this.shape, dtype, this.deviceIndex);
    getNative().copy(out, this);
    return out;
  }

  /** This tensor on another device (a view when it is already there). */
  to(device: DeviceLike): Tensor {
    this.assertLive();
    const dst = resolveDevice(device);
    if (dst === this.deviceIndex) return this.contiguous();
    const src = this.contiguous();
    const out = Tensor.alloc(this.shape, this.dtype, dst);
    getNative().transfer(out.storage, 0, src.storage, src.offset * DTYPE_SIZE[this.dtype], this.nbytes);
    src.dispose();
    return out;
  }

  /** Overwrites this tensor's elements with `src`'s (same shape; converted to this dtype; enqueued). */
  copyFrom(src: Tensor): this {
    this.assertLive('dst');
    if (!(src instanceof Tensor)) throw new TypeError('copyFrom: src must be a Tensor');
    src.assertLive('src');
    if (src.shape.length !== this.shape.length || src.shape.some((s, i) => s !== this.shape[i]))
      throw new RangeError(`copyFrom: src shape [${src.shape.join(', ')}] differs from [${this.shape.join(', ')}]`);
    if (src.deviceIndex === this.deviceIndex) {
      getNative().copy(this, src);
    } else {
      const moved = src.to(this.device);
      getNative().copy(this, moved);
      moved.dispose();
    }
    return this;
  }

  /** Overwrites the stored bits of this contiguous tensor with `bytes` (exactly nbytes long; enqueued). */
  write(bytes: ArrayBufferView | ArrayBuffer): this {
    this.assertLive();
    if (!this.isContiguous()) throw new RangeError('write: tensor must be contiguous');
    const n = bytes instanceof ArrayBuffer ? bytes.byteLength : ArrayBuffer.isView(bytes) ? bytes.byteLength : NaN;
    if (Number.isNaN(n)) throw new TypeError('write: bytes must be an ArrayBuffer or a typed array');
    if (n !== this.nbytes) throw new RangeError(`write: got ${n} bytes, the tensor holds ${this.nbytes}`);
    if (n) getNative().write(this.storage, this.offset * DTYPE_SIZE[this.dtype], bytes);
    return this;
  }

  // ---- reads ----

  /**
   * The values, once the work producing them has finished. f32/bf16/f16/fp8 decode to a Float32Array,
   * i32 to Int32Array, i64 to BigInt64Array, u8 to Uint8Array; `{ raw: true }` gives stored bits.
   */
  async toArray(opts: { raw: true }): Promise<RawArray>;
  async toArray(opts?: ToArrayOptions): Promise<ArrayFor<DType>>;
  async toArray(opts: ToArrayOptions = {}): Promise<RawArray | ArrayFor<DType>> {
    this.assertLive();
    const decode = !opts.raw && isFloat(this.dtype) && this.dtype !== 'f32';
    const src = decode ? this.cast('f32') : this.contiguous();
    try {
      const buf = await getNative().read(src.storage, src.offset * DTYPE_SIZE[src.dtype], src.nbytes);
      return rawArray(src.dtype, buf);
    } finally {
      src.dispose();
    }
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number | bigint> {
    if (this.numel !== 1) throw new RangeError(`item: tensor has ${this.numel} elements, expected 1`);
    const a = await this.toArray();
    return a[0];
  }
}
