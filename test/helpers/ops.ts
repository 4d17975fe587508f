// Shared checks for the op tests: reading tensors back, bit-exact comparison with a useful message, norms.
import * as dsk from '../../lib/index';
import { hasCuda } from './devices';

/** GPU devices to compare against the CPU reference (empty without a GPU). */
export const gpuDevices: 'cuda:0'[] = hasCuda ? ['cuda:0'] : [];

export async function f64(t: dsk.Tensor): Promise<Float64Array> {
  return Float64Array.from((await t.toArray()) as ArrayLike<number>);
}

export async function bits(t: dsk.Tensor): Promise<ArrayLike<number | bigint>> {
  return t.toArray({ raw: true });
}

/** Throws at the first differing element (bit patterns), naming it. */
export function expectSameBits(got: ArrayLike<number | bigint>, want: ArrayLike<number | bigint>, label: string): void {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length}, expected ${want.length}`);
  for (let i = 0; i < got.length; i++)
    if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i])))
      throw new Error(`${label}: element ${i} is ${String(got[i])}, expected ${String(want[i])}`);
}

/** Same raw bits in two tensors (device result against the CPU reference). */
export async function expectTensorsBitEqual(got: dsk.Tensor, want: dsk.Tensor, label: string): Promise<void> {
  if (got.shape.join() !== want.shape.join()) throw new Error(`${label}: shape [${got.shape}] vs [${want.shape}]`);
  if (got.dtype !== want.dtype) throw new Error(`${label}: dtype ${got.dtype} vs ${want.dtype}`);
  expectSameBits(await bits(got), await bits(want), label);
}

/** ‖got − ref‖ / ‖ref‖. */
export function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

/** Same tensor on another device (a copy on the CPU when device is cpu, so both sides are independent). */
export function on(t: dsk.Tensor, device: string): dsk.Tensor {
  return t.to(device as dsk.DeviceLike);
}

/** Deterministic small PRNG for test data built in JS. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
