// Token sampling: temperature, top-k, top-p (nucleus), with counter-based random numbers so that the CPU
// and CUDA pick the same token for the same seed.
import { randomBytes } from 'node:crypto';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { argmax } from './reduce';
import { rowMajor, withTemps } from './rows';
import { Check } from './validate';

export interface SampleOptions {
  /** Logits are divided by it; 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the topK most likely tokens (0 = all, the default). */
  topK?: number;
  /** Keep the smallest most-likely set whose probability reaches topP, in (0, 1] (default 1 = all). */
  topP?: number;
  /** 64-bit seed (number or bigint); row b draws from Philox(counter = b, key = seed). Random when omitted. */
  seed?: number | bigint;
}

function seedHalves(c: Check, seed: unknown): [number, number] {
  let s: bigint;
  if (seed === undefined) s = randomBytes(8).readBigUInt64LE();
  else if (typeof seed === 'bigint') s = seed;
  else if (typeof seed === 'number' && Number.isSafeInteger(seed)) s = BigInt(seed);
  else c.type(`options.seed must be an integer or a bigint, got ${String(seed)}`);
  if (s! < 0n || s! >= 1n << 64n) c.range(`options.seed must be in [0, 2^64), got ${s!}`);
  return [Number(s! >> 32n), Number(s! & 0xffffffffn)];
}

/**
 * One token per row of `logits` [B, V] (f32 or bf16) -> i32 [B].
 *
 * temperature 0 is argmax. Otherwise, per row: z = logits / temperature in f32 (NaN counts as -inf);
 * candidates sorted by z descending, ties to the lower index; keep the first topK; p = softmax(z) over
 * them; keep the smallest prefix whose mass reaches topP; renormalize; draw u in [0, 1) from Philox
 * (counter = row, key = seed) and return the first candidate whose cumulative mass exceeds u * total.
 * Every sum follows one fixed order (native/math/sample_math.h), so CPU and CUDA return the same tokens
 * for the same seed. If the largest z is +inf, or every z is -inf, the row returns its argmax.
 */
export function sample(logits: Tensor, options?: SampleOptions): Tensor {
  const c = new Check('sample');
  c.tensor(logits, 'logits', { dtypes: ['f32', 'bf16'], ndim: 2 });
  const [B, V] = logits.shape;
  if (V < 1) c.range('logits.shape[1] must be at least 1');
  const o = c.options<SampleOptions>(options);
  const temperature = o.temperature === undefined ? 1 : c.number(o.temperature, 'options.temperature', { min: 0 });
  const topK = o.topK === undefined ? 0 : c.number(o.topK, 'options.topK', { integer: true, min: 0, max: 2 ** 31 - 1 });
  const topP = o.topP === undefined ? 1 : c.number(o.topP, 'options.topP', { min: 0, exclusiveMin: true, max: 1 });
  const [hi, lo] = seedHalves(c, o.seed);
  if (temperature === 0) return argmax(logits);
  if (!(Math.fround(temperature) > 0)) c.range(`options.temperature ${temperature} is too small (rounds to 0 in f32)`);
  const xr = rowMajor(logits);
  return withTemps([xr], () => {
    const out = Tensor.alloc([B], 'i32', logits.deviceIndex);
    getNative().sample(xr, temperature, topK, topP, hi, lo, out);
    return out;
  });
}
