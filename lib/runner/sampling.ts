// Sampling parameters of a request and the per-step seeds that make sampling reproducible whatever
// else shares the batch.
import { randomBytes } from 'node:crypto';

export interface SamplingParams {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP: number;
  seed: bigint;
}

export function checkSampling(o: { temperature?: unknown; topK?: unknown; topP?: unknown; seed?: unknown }, defaults: Partial<SamplingParams> = {}): SamplingParams {
  const temperature = o.temperature ?? defaults.temperature ?? 0;
  const topK = o.topK ?? defaults.topK ?? 0;
  const topP = o.topP ?? defaults.topP ?? 1;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)
    throw new RangeError(`generate: temperature must be a finite number >= 0, got ${String(temperature)}`);
  if (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0) throw new RangeError(`generate: topK must be an integer >= 0, got ${String(topK)}`);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${String(topP)}`);
  let seed: bigint;
  if (o.seed === undefined) seed = randomBytes(8).readBigUInt64LE();
  else if (typeof o.seed === 'number' && Number.isSafeInteger(o.seed) && o.seed >= 0) seed = BigInt(o.seed);
  else if (typeof o.seed === 'bigint' && o.seed >= 0n && o.seed < 1n << 64n) seed = o.seed;
  else throw new RangeError(`generate: seed must be a non-negative integer, got ${String(o.seed)}`);
  return { temperature, topK, topP, seed };
}

/** Seed of the draw at `position`: a 64-bit mix of the request seed and the position (splitmix64). */
export function stepSeed(seed: bigint, position: number): bigint {
  const M = (1n << 64n) - 1n;
  let z = (seed + 0x9e3779b97f4a7c15n * BigInt(position + 1)) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}
