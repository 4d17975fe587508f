/** Element types. Conversions between them are identical on every device (see native/core/dtype.h). */
export type DType = 'f32' | 'bf16' | 'f16' | 'fp8e4m3' | 'i32' | 'i64' | 'u8';

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'fp8e4m3', 'i32', 'i64', 'u8'];

export const DTYPE_SIZE: Readonly<Record<DType, number>> = { f32: 4, bf16: 2, f16: 2, fp8e4m3: 1, i32: 4, i64: 8, u8: 1 };

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'bf16' || d === 'f16' || d === 'fp8e4m3';
}

export function checkDType(d: unknown, name: string): DType {
  if (typeof d !== 'string' || !(DTYPES as readonly string[]).includes(d))
    throw new TypeError(`${name} must be one of ${DTYPES.join(', ')}, got ${typeof d === 'string' ? `'${d}'` : String(d)}`);
  return d as DType;
}

/** The typed array `toArray()` returns for a dtype: narrow floats decode to f32 values. */
export type ArrayFor<D extends DType> = D extends 'i32'
  ? Int32Array
  : D extends 'i64'
    ? BigInt64Array
    : D extends 'u8'
      ? Uint8Array
      : Float32Array;

/** The typed array of raw bits for a dtype (`toArray({ raw: true })`). */
export type RawArray = Float32Array | Uint16Array | Uint8Array | Int32Array | BigInt64Array;

export function rawArray(d: DType, buf: ArrayBuffer): RawArray {
  switch (d) {
    case 'f32': return new Float32Array(buf);
    case 'bf16': case 'f16': return new Uint16Array(buf);
    case 'fp8e4m3': case 'u8': return new Uint8Array(buf);
    case 'i32': return new Int32Array(buf);
    case 'i64': return new BigInt64Array(buf);
  }
}
