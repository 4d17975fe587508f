// Random weights for generated models, scaled so activations stay sane through any number of layers:
// linears have std 1/sqrt(fan_in), norms are ~1, the embedding has unit std. FP8 weights are drawn as
// e4m3 codes of N(0, 48^2) (well inside the +-448 range) with per-block scale_inv around std/48, so
// the file is a genuine block-scaled checkpoint. The same (seed, tensor name) always gives the same
// values, on any device, whatever else the model contains.
import type { DeviceLike } from '../device';
import type { DType } from '../dtype';
import { rand, randn } from '../factory';
import type { Tensor } from '../tensor';
import type { ModelConfig } from './config';
import { type WeightSpec, blockScaleShape } from './layout';

/** Spread of FP8 codes: values are N(0, FP8_SPREAD^2) before rounding to e4m3. */
export const FP8_SPREAD = 48;

/** 64-bit FNV-1a of the name, mixed with the seed: a per-tensor seed independent of tensor order. */
export function tensorSeed(seed: number | bigint, name: string, salt = 0): bigint {
  let h = 0xcbf29ce484222325n;
  const mask = (1n << 64n) - 1n;
  const mix = (b: number): void => {
    h ^= BigInt(b & 0xff);
    h = (h * 0x100000001b3n) & mask;
  };
  for (const b of Buffer.from(name, 'utf8')) mix(b);
  let s = BigInt(seed) ^ (BigInt(salt) << 32n);
  for (let i = 0; i < 8; i++, s >>= 8n) mix(Number(s & 0xffn));
  return h;
}

/** Standard deviation of the (dequantized) values of a weight. */
export function weightStd(spec: WeightSpec, c: ModelConfig): number {
  switch (spec.role) {
    case 'linear':
    case 'router':
      return 1 / Math.sqrt(spec.shape[1]);
    case 'embed':
      return 1;
    case 'head':
      // Logits of std ~3 for unit-rms hidden states: sampling at temperature 1 is not uniform noise.
      return 3 / Math.sqrt(c.hiddenSize);
    case 'norm':
      return 0.1; // around a mean of 1
    case 'bias':
      return 0.01;
  }
}

/** dtype a weight is stored in: FP8 codes for FP8 linears, F32 for the router bias, BF16 otherwise. */
export function storedDType(spec: WeightSpec): DType {
  return spec.fp8 ? 'fp8e4m3' : spec.role === 'bias' ? 'f32' : 'bf16';
}

const CHUNK_ELEMS = 1 << 24;

function rowsPerChunk(shape: readonly number[]): number {
  const rowLen = shape.slice(1).reduce((a, s) => a * s, 1) || 1;
  return Math.max(1, Math.floor(CHUNK_ELEMS / rowLen));
}

/** One chunk of rows [r0, r0 + rows) of a weight's stored values, as a tensor on `device`. */
function chunkTensor(spec: WeightSpec, c: ModelConfig, seed: number | bigint, chunk: number, rows: number, device: DeviceLike): Tensor {
  const shape = [rows, ...spec.shape.slice(1)];
  const s = tensorSeed(seed, spec.name, chunk);
  const std = weightStd(spec, c);
  const f = spec.fp8
    ? randn(shape, { std: FP8_SPREAD, seed: s, device })
    : randn(shape, { mean: spec.role === 'norm' ? 1 : 0, std, seed: s, device });
  const dt = storedDType(spec);
  if (dt === 'f32') return f;
  const out = f.cast(dt);
  f.dispose();
  return out;
}

/** The stored bytes of a weight, produced chunk by chunk on the CPU (bounded host memory). */
export async function* weightByteChunks(spec: WeightSpec, c: ModelConfig, seed: number | bigint): AsyncGenerator<Uint8Array> {
  const R = spec.shape[0] ?? 1;
  const per = rowsPerChunk(spec.shape);
  for (let r0 = 0, k = 0; r0 < R; r0 += per, k++) {
    const t = chunkTensor(spec, c, seed, k, Math.min(per, R - r0), 'cpu');
    const raw = await t.toArray({ raw: true });
    t.dispose();
    yield new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  }
}

/** The f32 weight_scale_inv of an FP8 weight: std/FP8_SPREAD times a per-block factor in [0.75, 1.25). */
export function scaleTensor(spec: WeightSpec, c: ModelConfig, seed: number | bigint, device: DeviceLike = 'cpu'): Tensor {
  const base = weightStd(spec, c) / FP8_SPREAD;
  return rand(blockScaleShape(spec.shape), { low: 0.75 * base, high: 1.25 * base, seed: tensorSeed(seed, `${spec.name}#scale`), device });
}

export async function scaleBytes(spec: WeightSpec, c: ModelConfig, seed: number | bigint): Promise<Uint8Array> {
  const t = scaleTensor(spec, c, seed);
  const a = (await t.toArray()) as Float32Array;
  t.dispose();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * A weight's stored values generated directly on `device` as one tensor [shape] (for benchmarks that
 * need no files). Same values as the file writer for weights that fit in one chunk.
 */
export function weightTensor(spec: WeightSpec, c: ModelConfig, seed: number | bigint, device: DeviceLike): Tensor {
  return chunkTensor(spec, c, seed, 0, spec.shape[0] ?? 1, device);
}
