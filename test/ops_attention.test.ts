// Attention ops (attentionPrefill, mlaCacheWrite, mlaDecode): the CPU reference against float64 attention
// written here (softmax over scaled scores with causal masks), CUDA against the CPU reference and float64,
// device-side index errors, and argument checks.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { BF16, encode } from './helpers/formats';
import { hasCuda, testDevices } from './helpers/devices';

type Dev = 'cpu' | 'cuda:0';
const W = 576, DV = 512;

// ---------------------------------------------------------------- float64 references

/** Packed variable-length attention in float64: q, k [T, H, Dqk], v [T, H, Dv]. */
function prefill64(q: Float32Array, k: Float32Array, v: Float32Array, cu: number[], H: number, Dqk: number, Dv: number, causal: boolean, scale: number): Float64Array {
  const T = cu[cu.length - 1];
  const out = new Float64Array(T * H * Dv);
  for (let b = 0; b + 1 < cu.length; b++) {
    const s0 = cu[b], len = cu[b + 1] - s0;
    for (let i = 0; i < len; i++)
      for (let h = 0; h < H; h++) {
        const n = causal ? i + 1 : len;
        const p = new Float64Array(n);
        const qo = ((s0 + i) * H + h) * Dqk;
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          const ko = ((s0 + j) * H + h) * Dqk;
          let dot = 0;
          for (let d = 0; d < Dqk; d++) dot += q[qo + d] * k[ko + d];
          p[j] = dot * scale;
          m = Math.max(m, p[j]);
        }
        let l = 0;
        for (let j = 0; j < n; j++) l += p[j] = Math.exp(p[j] - m);
        const oo = ((s0 + i) * H + h) * Dv;
        for (let j = 0; j < n; j++) {
          const vo = ((s0 + j) * H + h) * Dv;
          for (let d = 0; d < Dv; d++) out[oo + d] += p[j] * v[vo + d];
        }
        for (let d = 0; d < Dv; d++) out[oo + d] /= l;
      }
  }
  return out;
}

/** MLA decode in float64 over the paged cache: keys all 576 dims, values the first 512. */
function decode64(q: Float32Array, cache: Float32Array, table: Int32Array, maxBlocks: number, seqLens: number[], Sq: number, H: number, causal: boolean, scale: number) {
  const B = seqLens.length;
  const out = new Float64Array(B * Sq * H * DV), lse = new Float64Array(B * H * Sq);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < Sq; j++)
      for (let h = 0; h < H; h++) {
        const limit = causal ? Math.max(0, seqLens[b] - Sq + j + 1) : seqLens[b];
        const qo = ((b * Sq + j) * H + h) * W, oo = ((b * Sq + j) * H + h) * DV;
        if (limit === 0) {
          lse[(b * H + h) * Sq + j] = -Infinity;
          continue;
        }
        const rowOf = (pos: number) => (table[b * maxBlocks + (pos >> 6)] * 64 + (pos & 63)) * W;
        const p = new Float64Array(limit);
        let m = -Infinity;
        for (let pos = 0; pos < limit; pos++) {
          const ko = rowOf(pos);
          let dot = 0;
          for (let d = 0; d < W; d++) dot += q[qo + d] * cache[ko + d];
          p[pos] = dot * scale;
          m = Math.max(m, p[pos]);
        }
        let l = 0;
        for (let pos = 0; pos < limit; pos++) l += p[pos] = Math.exp(p[pos] - m);
        for (let pos = 0; pos < limit; pos++) {
          const ko = rowOf(pos);
          for (let d = 0; d < DV; d++) out[oo + d] += p[pos] * cache[ko + d];
        }
        for (let d = 0; d < DV; d++) out[oo + d] /= l;
        lse[(b * H + h) * Sq + j] = m + Math.log(l);
      }
  return { out, lse };
}

// ---------------------------------------------------------------- helpers

/** Worst per-row ||got - want|| / ||want||; a row whose reference is all zeros must be exactly zero; NaN -> Infinity. */
function rowRelErr(got: ArrayLike<number>, want: ArrayLike<number>, width: number): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let r = 0; r < want.length / width; r++) {
    let num = 0, den = 0;
    for (let d = r * width; d < (r + 1) * width; d++) {
      num += (got[d] - want[d]) ** 2;
      den += want[d] ** 2;
    }
    const e = den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

/** Worst |got - want| / (tol * max(1, |want|)); -inf must match exactly. */
function lseErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === -Infinity) {
      if (got[i] !== -Infinity) return Infinity;
      continue;
    }
    const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

const f32 = async (t: dsk.Tensor) => (await t.toArray()) as Float32Array;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A block table giving each sequence distinct, shuffled blocks of [0, N); unused entries hold `fill`. */
function blockTable(seqLens: number[], maxBlocks: number, N: number, seed: number, fill = -1): Int32Array {
  const rnd = lcg(seed);
  const ids = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const t = new Int32Array(seqLens.length * maxBlocks).fill(fill);
  let next = 0;
  seqLens.forEach((len, b) => {
    for (let k = 0; k * 64 < len; k++) t[b * maxBlocks + k] = ids[next++];
  });
  if (next > N) throw new Error('test setup: not enough cache blocks');
  return t;
}

function cuOf(lens: number[]): number[] {
  const cu = [0];
  for (const l of lens) cu.push(cu[cu.length - 1] + l);
  return cu;
}

interface PrefillCase {
  lens: number[];
  H: number;
  Dqk: number;
  Dv: number;
  causal: boolean;
  scale?: number;
}

/** Inputs on the CPU (seeded) plus their decoded values. */
async function prefillInputs(c: PrefillCase, dtype: 'f32' | 'bf16', seed: number) {
  const T = c.lens.reduce((a, b) => a + b, 0);
  const q = dsk.randn([T, c.H, c.Dqk], { seed }).cast(dtype);
  const k = dsk.randn([T, c.H, c.Dqk], { seed: seed + 1 }).cast(dtype);
  const v = dsk.randn([T, c.H, c.Dv], { seed: seed + 2 }).cast(dtype);
  const cu = dsk.tensor(cuOf(c.lens), { dtype: 'i32' });
  return { T, q, k, v, cu, qv: await f32(q), kv: await f32(k), vv: await f32(v) };
}

const RAGGED: PrefillCase = { lens: [1, 37, 64, 0, 100, 129], H: 4, Dqk: 192, Dv: 128, causal: true };

// ---------------------------------------------------------------- attentionPrefill

describe('attentionPrefill: CPU reference against float64 attention', () => {
  const cases: [string, PrefillCase][] = [
    ['MLA dims 192/128, ragged batch with lengths 1, 37, 64, 0, 100, 129, causal', RAGGED],
    ['the same batch, not causal', { ...RAGGED, causal: false }],
    ['Dqk 72, Dv 20, scale 0.3 (peaked softmax), causal', { lens: [5, 70], H: 3, Dqk: 72, Dv: 20, causal: true, scale: 0.3 }],
  ];
  for (const [name, c] of cases)
    for (const dtype of ['f32', 'bf16'] as const)
      it(`${dtype}: ${name}`, async () => {
        const x = await prefillInputs(c, dtype, 31);
        const scale = c.scale ?? 1 / Math.sqrt(c.Dqk);
        const out = dsk.ops.attentionPrefill(x.q, x.k, x.v, { cuSeqlens: x.cu, causal: c.causal, scale: c.scale });
        expect(out.shape).toEqual([x.T, c.H, c.Dv]);
        expect(out.dtype).toBe(dtype);
        const want = prefill64(x.qv, x.kv, x.vv, cuOf(c.lens), c.H, c.Dqk, c.Dv, c.causal, scale);
        // Double-precision reference: only the final rounding to f32 / bf16 remains.
        expect(rowRelErr(await f32(out), want, c.Dv)).toBeLessThan(dtype === 'f32' ? 1e-6 : 4e-3);
      });

  it('causal masking: the first token of each sequence copies its own value row', async () => {
    const x = await prefillInputs({ ...RAGGED, lens: [3, 1, 2] }, 'f32', 5);
    const got = await f32(dsk.ops.attentionPrefill(x.q, x.k, x.v, { cuSeqlens: x.cu }));
    for (const t of [0, 3, 4]) for (let i = 0; i < 4 * 128; i++) expect(got[t * 512 + i]).toBeCloseTo(x.vv[t * 512 + i], 6);
  });

  it('an empty batch (B = 0, T = 0) and all-empty sequences give empty outputs', async () => {
    const e = dsk.empty([0, 2, 16]);
    const out = dsk.ops.attentionPrefill(e, e, e, { cuSeqlens: dsk.tensor([0], { dtype: 'i32' }) });
    expect(out.shape).toEqual([0, 2, 16]);
    const out2 = dsk.ops.attentionPrefill(e, e, e, { cuSeqlens: dsk.tensor([0, 0, 0], { dtype: 'i32' }), maxSeqlen: 0 });
    expect((await out2.toArray()).length).toBe(0);
  });
});

describe.skipIf(!hasCuda)('attentionPrefill on cuda:0 against the CPU reference and float64', () => {
  const cases: [string, PrefillCase][] = [
    ['ragged MLA batch, causal', RAGGED],
    ['ragged MLA batch, not causal', { ...RAGGED, causal: false }],
    ['H 16, Dqk 256, Dv 256, lengths 300, 1, 65', { lens: [300, 1, 65], H: 16, Dqk: 256, Dv: 256, causal: true }],
    ['Dqk 72, Dv 40 (padded k-step, half v tile), peaked', { lens: [70, 5, 129], H: 3, Dqk: 72, Dv: 40, causal: true, scale: 0.3 }],
    ['Dqk 8, Dv 20 (no tensor-core tile for Dv), not causal', { lens: [33, 2], H: 2, Dqk: 8, Dv: 20, causal: false }],
    ['one long sequence of 700, H 2', { lens: [700], H: 2, Dqk: 192, Dv: 128, causal: true }],
    // The MLA kernel's 128-row query blocks: lengths on, below and above block and 64-key tile edges.
    ['MLA shape, lengths 257, 128, 383, 1, 64, H 3, causal', { lens: [257, 128, 383, 1, 64], H: 3, Dqk: 192, Dv: 128, causal: true }],
    ['MLA shape, lengths 257, 128, 383, 1, 64, H 3, not causal', { lens: [257, 128, 383, 1, 64], H: 3, Dqk: 192, Dv: 128, causal: false }],
  ];
  for (const [name, c] of cases)
    for (const dtype of ['bf16', 'f32'] as const)
      it(`${dtype}: ${name}`, async () => {
        const x = await prefillInputs(c, dtype, 77);
        const scale = c.scale ?? 1 / Math.sqrt(c.Dqk);
        const maxSeqlen = Math.max(...c.lens);
        const cpu = await f32(dsk.ops.attentionPrefill(x.q, x.k, x.v, { cuSeqlens: x.cu, causal: c.causal, scale, maxSeqlen }));
        const out = dsk.ops.attentionPrefill(x.q.to('cuda:0'), x.k.to('cuda:0'), x.v.to('cuda:0'), {
          cuSeqlens: x.cu.to('cuda:0'),
          causal: c.causal,
          scale,
          maxSeqlen,
        });
        expect(out.device).toBe('cuda:0');
        expect(out.dtype).toBe(dtype);
        const got = await f32(out);
        const tol = dtype === 'bf16' ? 1e-2 : 1e-5;
        expect(rowRelErr(got, prefill64(x.qv, x.kv, x.vv, cuOf(c.lens), c.H, c.Dqk, c.Dv, c.causal, scale), c.Dv), 'vs float64').toBeLessThan(tol);
        expect(rowRelErr(got, cpu, c.Dv), 'vs the CPU reference').toBeLessThan(tol);
      });

  it('inputs whose views start off a 16-byte boundary are copied, not misread', async () => {
    const x = await prefillInputs({ ...RAGGED, lens: [20, 45] }, 'bf16', 4);
    // The same values at element offset 3 of a larger buffer (6 bytes past its aligned start).
    const shifted = (vals: Float32Array, shape: readonly number[]) => {
      const host = new Float32Array(vals.length + 3).fill(7);
      host.set(vals, 3);
      return dsk.tensor(host, { dtype: 'bf16', device: 'cuda:0' }).slice(0, 3).view(shape);
    };
    const q = shifted(x.qv, x.q.shape), k = shifted(x.kv, x.k.shape), v = shifted(x.vv, x.v.shape);
    expect([q.offset, k.offset, v.offset]).toEqual([3, 3, 3]);
    const want = await f32(dsk.ops.attentionPrefill(x.q, x.k, x.v, { cuSeqlens: x.cu }));
    const got = await f32(dsk.ops.attentionPrefill(q, k, v, { cuSeqlens: x.cu.to('cuda:0') }));
    expect(rowRelErr(got, want, 128)).toBeLessThan(1e-2);
  });

  it('maxSeqlen defaults to T', async () => {
    const x = await prefillInputs({ ...RAGGED, lens: [20, 90] }, 'bf16', 3);
    const cpu = await f32(dsk.ops.attentionPrefill(x.q, x.k, x.v, { cuSeqlens: x.cu }));
    const got = await f32(dsk.ops.attentionPrefill(x.q.to('cuda:0'), x.k.to('cuda:0'), x.v.to('cuda:0'), { cuSeqlens: x.cu.to('cuda:0') }));
    expect(rowRelErr(got, cpu, 128)).toBeLessThan(1e-2);
  });
});

describe.each(testDevices)('attentionPrefill: bad cuSeqlens found by the kernel on %s', (device: Dev) => {
  // f32 with small heads (the SIMT kernel on CUDA) and the bf16 MLA shape (its own kernel on CUDA).
  for (const [dtype, dqk, dv] of [['f32', 16, 16], ['bf16', 192, 128]] as const) {
    const run = (cu: number[], maxSeqlen?: number) => {
      const T = 10;
      const q = dsk.randn([T, 2, dqk], { seed: 1, device, dtype });
      const v = dsk.randn([T, 2, dv], { seed: 2, device, dtype });
      return dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: dsk.tensor(cu, { dtype: 'i32', device }), maxSeqlen });
    };
    it(`${dtype} ${dqk}/${dv}: a sequence longer than maxSeqlen, an entry outside [0, T], and cuSeqlens not running from 0 to T reject the next read`, async () => {
      await expect(run([0, 3, 10], 5).toArray()).rejects.toThrow(/attentionPrefill: a sequence length .* contains 7, outside the valid range \[0, 6\)/);
      await expect(run([0, 3, 11]).toArray()).rejects.toThrow(/attentionPrefill: cuSeqlens contains 11, outside the valid range \[0, 11\)/);
      await expect(run([0, 6, 4, 10]).toArray()).rejects.toThrow(/attentionPrefill: a sequence length .* contains -2/);
      await expect(run([0, 3, 8]).toArray()).rejects.toThrow(/attentionPrefill: the tokens outside cuSeqlens .* contains 2/);
      await expect(run([1, 3, 10]).toArray()).rejects.toThrow(/attentionPrefill: the tokens outside cuSeqlens .* contains 1/);
      // The error is consumed: the device keeps working.
      expect((await run([0, 4, 10], 6).toArray()).length).toBe(10 * 2 * dv);
    });
  }
});

describe('attentionPrefill: argument checks', () => {
  const q = dsk.randn([6, 2, 16], { seed: 1 });
  const v = dsk.randn([6, 2, 8], { seed: 2 });
  const cu = dsk.tensor([0, 2, 6], { dtype: 'i32' });
  it('rejects bad arguments before enqueueing, naming them', () => {
    expect(() => dsk.ops.attentionPrefill(q.cast('f16'), q, v, { cuSeqlens: cu })).toThrow(/attentionPrefill: q must have dtype bf16 or f32, got f16/);
    expect(() => dsk.ops.attentionPrefill(q, q.cast('bf16'), v, { cuSeqlens: cu })).toThrow(/attentionPrefill: k must have dtype f32/);
    expect(() => dsk.ops.attentionPrefill(q, dsk.randn([6, 3, 16]), v, { cuSeqlens: cu })).toThrow(/attentionPrefill: k must have shape \[6, 2, 16\]/);
    expect(() => dsk.ops.attentionPrefill(q, q, dsk.randn([5, 2, 8]), { cuSeqlens: cu })).toThrow(/attentionPrefill: v.shape\[0\] must be 6/);
    expect(() => dsk.ops.attentionPrefill(dsk.randn([6, 2, 12]), dsk.randn([6, 2, 12]), v, { cuSeqlens: cu })).toThrow(/multiple of 8 in \[8, 256\], got 12/);
    expect(() => dsk.ops.attentionPrefill(dsk.randn([6, 2, 264]), dsk.randn([6, 2, 264]), v, { cuSeqlens: cu })).toThrow(RangeError);
    expect(() => dsk.ops.attentionPrefill(q, q, dsk.randn([6, 2, 257]), { cuSeqlens: cu })).toThrow(/the head dim of v must be in \[1, 256\]/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: dsk.tensor([0, 2, 6]) })).toThrow(/attentionPrefill: cuSeqlens must have dtype i32/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: dsk.tensor([[0, 6]], { dtype: 'i32' }) })).toThrow(/cuSeqlens must have 1 dims/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: dsk.empty([0], { dtype: 'i32' }) })).toThrow(/cuSeqlens must hold B \+ 1 >= 1/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: dsk.tensor([0], { dtype: 'i32' }) })).toThrow(/cuSeqlens holds no sequence \(B = 0\) but q has 6 tokens/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: cu, maxSeqlen: -1 })).toThrow(/maxSeqlen must be >= 0/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: cu, scale: NaN })).toThrow(/attentionPrefill: scale must be a number/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, { cuSeqlens: cu, causal: 1 as unknown as boolean })).toThrow(/causal must be a boolean/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, undefined as unknown as dsk.ops.AttentionPrefillOptions)).toThrow(/options with cuSeqlens is required/);
    expect(() => dsk.ops.attentionPrefill(q, q, v, {} as dsk.ops.AttentionPrefillOptions)).toThrow(/cuSeqlens must be a Tensor/);
  });
  it.skipIf(!hasCuda)('rejects tensors on different devices', () => {
    expect(() => dsk.ops.attentionPrefill(q.to('cuda:0'), q, v, { cuSeqlens: cu })).toThrow(/attentionPrefill: k is on cpu but q is on cuda:0/);
  });
});

// ---------------------------------------------------------------- mlaCacheWrite

describe.each(testDevices)('mlaCacheWrite on %s', (device: Dev) => {
  for (const dtype of ['f32', 'bf16'] as const)
    it(`writes ${dtype} latent rows into their slots (rounded to bf16) and leaves every other slot alone`, async () => {
      const N = 6, T = 50;
      const cache = dsk.randn([N, 64, W], { seed: 3 }).cast('bf16').to(device);
      const before = (await cache.toArray({ raw: true })) as Uint16Array;
      const latent = dsk.randn([T, W], { seed: 4 }).cast(dtype);
      const rnd = lcg(9);
      const all = Array.from({ length: N * 64 }, (_, i) => i).sort(() => rnd() - 0.5);
      const slots = [0, N * 64 - 1, ...all.filter((s) => s !== 0 && s !== N * 64 - 1).slice(0, T - 2)];
      dsk.ops.mlaCacheWrite(cache, latent.to(device), dsk.tensor(slots, { dtype: 'i32', device }));
      const after = (await cache.toArray({ raw: true })) as Uint16Array;
      const want = Uint16Array.from(before);
      const lv = (await latent.toArray({ raw: true })) as Float32Array | Uint16Array;
      slots.forEach((s, t) => {
        for (let d = 0; d < W; d++) want[s * W + d] = dtype === 'bf16' ? lv[t * W + d] : encode(BF16, lv[t * W + d]);
      });
      let bad = -1;
      for (let i = 0; i < want.length && bad < 0; i++) if (after[i] !== want[i]) bad = i;
      expect(bad, `first differing element ${bad}`).toBe(-1);
    });

  it('a slot outside [0, numBlocks * 64) is skipped and rejects the next read; valid rows are still written', async () => {
    const cache = dsk.zeros([2, 64, W], { dtype: 'bf16', device });
    const latent = dsk.randn([3, W], { seed: 1, device });
    dsk.ops.mlaCacheWrite(cache, latent, dsk.tensor([5, 128, 7], { dtype: 'i32', device }));
    await expect(cache.toArray()).rejects.toThrow(/mlaCacheWrite: slots contains 128, outside the valid range \[0, 128\)/);
    const got = await f32(cache);
    const lat = await f32(latent.cast('bf16'));
    expect(Array.from(got.subarray(5 * W, 6 * W))).toEqual(Array.from(lat.subarray(0, W)));
    expect(Array.from(got.subarray(7 * W, 8 * W))).toEqual(Array.from(lat.subarray(2 * W, 3 * W)));
    dsk.ops.mlaCacheWrite(cache, latent.slice(0, 0, 1), dsk.tensor([-1], { dtype: 'i32', device }));
    await expect(cache.toArray()).rejects.toThrow(/mlaCacheWrite: slots contains -1/);
  });
});

describe.skipIf(!hasCuda)('mlaCacheWrite / mlaDecode on cuda:0: a cache view off a 16-byte boundary', () => {
  it('is rejected (the cache is written in place, so it cannot be copied)', () => {
    const cache = dsk.zeros([2 * 64 * W + 4], { dtype: 'bf16', device: 'cuda:0' }).slice(0, 4).view([2, 64, W]);
    const latent = dsk.randn([1, W], { device: 'cuda:0' });
    expect(() => dsk.ops.mlaCacheWrite(cache, latent, dsk.tensor([0], { dtype: 'i32', device: 'cuda:0' }))).toThrow(
      /mlaCacheWrite: cache must start at a 16-byte boundary/,
    );
  });
});

describe('mlaCacheWrite: argument checks', () => {
  const cache = dsk.zeros([2, 64, W], { dtype: 'bf16' });
  const latent = dsk.randn([3, W]);
  const slots = dsk.tensor([0, 1, 2], { dtype: 'i32' });
  it('rejects bad arguments before enqueueing, naming them', () => {
    expect(() => dsk.ops.mlaCacheWrite(dsk.zeros([2, 64, W]), latent, slots)).toThrow(/mlaCacheWrite: cache must have dtype bf16, got f32/);
    expect(() => dsk.ops.mlaCacheWrite(dsk.zeros([2, 32, W], { dtype: 'bf16' }), latent, slots)).toThrow(/mlaCacheWrite: cache.shape\[1\] must be 64/);
    expect(() => dsk.ops.mlaCacheWrite(dsk.zeros([2, 64, 512], { dtype: 'bf16' }), latent, slots)).toThrow(/cache.shape\[2\] must be 576/);
    expect(() => dsk.ops.mlaCacheWrite(cache, dsk.randn([3, 512]), slots)).toThrow(/mlaCacheWrite: latent.shape\[1\] must be 576/);
    expect(() => dsk.ops.mlaCacheWrite(cache, latent.cast('f16'), slots)).toThrow(/latent must have dtype bf16 or f32/);
    expect(() => dsk.ops.mlaCacheWrite(cache, latent, dsk.tensor([0, 1], { dtype: 'i32' }))).toThrow(/mlaCacheWrite: slots.shape\[0\] must be 3/);
    expect(() => dsk.ops.mlaCacheWrite(cache, latent, dsk.tensor([0, 1, 2]))).toThrow(/slots must have dtype i32/);
  });
});

// ---------------------------------------------------------------- mlaDecode

interface DecodeCase {
  seqLens: number[];
  Sq: number;
  H: number;
  causal: boolean;
}

async function decodeInputs(c: DecodeCase, dtype: 'f32' | 'bf16', N: number, seed: number) {
  const B = c.seqLens.length;
  const maxBlocks = Math.max(1, ...c.seqLens.map((l) => Math.ceil(l / 64))) + 1; // a spare, unused entry per row
  const table = blockTable(c.seqLens, maxBlocks, N, seed, -7);
  const q = dsk.randn([B, c.Sq, c.H, W], { seed }).cast(dtype);
  const cache = dsk.randn([N, 64, W], { seed: seed + 1 }).cast('bf16');
  return {
    B,
    maxBlocks,
    table,
    q,
    cache,
    bt: dsk.tensor(table, { shape: [B, maxBlocks], dtype: 'i32' }),
    lens: dsk.tensor(c.seqLens, { dtype: 'i32' }),
    qv: await f32(q),
    cv: await f32(cache),
  };
}

const V3_SCALE = dsk.ops.yarnSoftmaxScale(192, { factor: 40, originalMaxPosition: 4096, mscaleAllDim: 1 });

describe('mlaDecode: CPU reference against float64 attention', () => {
  const cases: [string, DecodeCase, ('f32' | 'bf16')[]][] = [];
  for (const Sq of [1, 2, 3, 4]) cases.push([`H 16, Sq ${Sq}, causal`, { seqLens: [1, 64, 130, 0, 257], Sq, H: 16, causal: true }, ['f32', 'bf16']]);
  for (const Sq of [1, 4]) cases.push([`H 16, Sq ${Sq}, not causal`, { seqLens: [3, 64, 130, 0, 257], Sq, H: 16, causal: false }, ['f32']]);
  cases.push(['H 128, Sq 2, causal', { seqLens: [70, 200], Sq: 2, H: 128, causal: true }, ['bf16']]);
  for (const [name, c, dtypes] of cases)
    for (const dtype of dtypes)
      it(`${dtype} q: ${name}, seqLens [${c.seqLens.join(', ')}], shuffled blocks`, async () => {
        const x = await decodeInputs(c, dtype, 24, 50 + c.Sq);
        const { out, lse } = dsk.ops.mlaDecode(x.q, x.cache, x.bt, x.lens, { scale: V3_SCALE, causal: c.causal });
        expect(out.shape).toEqual([x.B, c.Sq, c.H, DV]);
        expect(out.dtype).toBe(dtype);
        expect(lse.shape).toEqual([x.B, c.H, c.Sq]);
        const want = decode64(x.qv, x.cv, x.table, x.maxBlocks, c.seqLens, c.Sq, c.H, c.causal, V3_SCALE);
        expect(rowRelErr(await f32(out), want.out, DV)).toBeLessThan(dtype === 'f32' ? 1e-6 : 4e-3);
        expect(lseErr(await f32(lse), want.lse)).toBeLessThan(1e-6);
      });

  it('an empty batch (B = 0) gives empty outputs', async () => {
    const { out, lse } = dsk.ops.mlaDecode(dsk.empty([0, 2, 16, W]), dsk.zeros([1, 64, W], { dtype: 'bf16' }), dsk.empty([0, 3], { dtype: 'i32' }), dsk.empty([0], { dtype: 'i32' }), { scale: 0.1 });
    expect(out.shape).toEqual([0, 2, 16, DV]);
    expect(lse.shape).toEqual([0, 16, 2]);
    expect((await out.toArray()).length + (await lse.toArray()).length).toBe(0);
  });

  it('queries that see no position (seqLen 0, or seqLen < Sq when causal) give 0 and lse -Infinity', async () => {
    const c = { seqLens: [0, 2], Sq: 4, H: 2, causal: true };
    const x = await decodeInputs(c, 'f32', 4, 3);
    const { out, lse } = dsk.ops.mlaDecode(x.q, x.cache, x.bt, x.lens, { scale: 0.1 });
    const o = await f32(out), l = await f32(lse);
    // seq 0: all 4 queries; seq 1 (2 tokens): queries 0 and 1 see nothing, 2 sees one token, 3 sees two.
    for (let j = 0; j < 4; j++) for (let h = 0; h < 2; h++) expect(l[(0 * 2 + h) * 4 + j]).toBe(-Infinity);
    for (const h of [0, 1]) expect([0, 1, 2, 3].map((j) => l[(1 * 2 + h) * 4 + j] === -Infinity)).toEqual([true, true, false, false]);
    for (let i = 0; i < 4 * 2 * DV; i++) expect(o[i]).toBe(0);
    for (let i = 0; i < 2 * 2 * DV; i++) expect(o[4 * 2 * DV + i]).toBe(0);
    // One visible token: the output is its first 512 dims and lse its scaled score.
    const row = x.table[1 * x.maxBlocks] * 64 * W;
    for (let d = 0; d < DV; d++) expect(o[(4 * 2 + 2 * 2) * DV + d]).toBeCloseTo(x.cv[row + d], 5);
  });
});

describe.skipIf(!hasCuda)('mlaDecode on cuda:0 against the CPU reference and float64', () => {
  const cases: [string, DecodeCase][] = [];
  for (const Sq of [1, 2, 3, 4]) cases.push([`H 16, Sq ${Sq}`, { seqLens: [1, 64, 1000, 0, 257], Sq, H: 16, causal: true }]);
  cases.push(['H 16, Sq 3, not causal', { seqLens: [5, 64, 1000, 0, 257], Sq: 3, H: 16, causal: false }]);
  cases.push(['H 10 (a partial row group), Sq 3', { seqLens: [700, 33], Sq: 3, H: 10, causal: true }]);
  for (const Sq of [1, 4]) cases.push([`H 128, Sq ${Sq}`, { seqLens: [1000, 3, 0], Sq, H: 128, causal: true }]);
  cases.push(['H 128, batch 1, long cache (3000)', { seqLens: [3000], Sq: 1, H: 128, causal: true }]);
  for (const [name, c] of cases)
    for (const dtype of ['bf16', 'f32'] as const)
      it(`${dtype} q: ${name}, seqLens [${c.seqLens.join(', ')}]; 1, 3, 7 and the default splits`, async () => {
        const x = await decodeInputs(c, dtype, 80, 90 + c.Sq);
        const cpu = dsk.ops.mlaDecode(x.q, x.cache, x.bt, x.lens, { scale: V3_SCALE, causal: c.causal });
        const cpuOut = await f32(cpu.out), cpuLse = await f32(cpu.lse);
        const small = c.H * c.Sq * c.seqLens.reduce((a, b) => a + b, 0) <= 16 * 4 * 1400;
        const want = small ? decode64(x.qv, x.cv, x.table, x.maxBlocks, c.seqLens, c.Sq, c.H, c.causal, V3_SCALE) : undefined;
        const [q, cache, bt, lens] = [x.q, x.cache, x.bt, x.lens].map((t) => t.to('cuda:0'));
        for (const numSplits of [1, 3, 7, undefined]) {
          const { out, lse } = dsk.ops.mlaDecode(q, cache, bt, lens, { scale: V3_SCALE, causal: c.causal, numSplits });
          expect(out.device).toBe('cuda:0');
          const got = await f32(out), gotLse = await f32(lse);
          const tol = dtype === 'bf16' ? 1e-2 : 1e-5;
          const label = `numSplits ${numSplits}`;
          expect(rowRelErr(got, cpuOut, DV), `${label}: out vs CPU`).toBeLessThan(tol);
          expect(lseErr(gotLse, cpuLse), `${label}: lse vs CPU`).toBeLessThan(dtype === 'bf16' ? 1e-4 : 1e-5);
          if (want) {
            expect(rowRelErr(got, want.out, DV), `${label}: out vs float64`).toBeLessThan(tol);
            expect(lseErr(gotLse, want.lse), `${label}: lse vs float64`).toBeLessThan(dtype === 'bf16' ? 1e-4 : 1e-5);
          }
        }
      });
});

describe.each(testDevices)('mlaDecode: bad block ids and lengths found by the kernel on %s', (device: Dev) => {
  const N = 3;
  const cache = dsk.randn([N, 64, W], { seed: 1 }).cast('bf16').to(device);
  const q = dsk.randn([2, 1, 4, W], { seed: 2, device }).cast('bf16');
  const run = (table: number[][], lens: number[]) =>
    dsk.ops.mlaDecode(q, cache, dsk.tensor(table, { dtype: 'i32', device }), dsk.tensor(lens, { dtype: 'i32', device }), { scale: 0.1 }).out;
  it('a block id outside [0, numBlocks) or a seqLen outside [0, maxBlocks * 64] rejects the next read', async () => {
    await expect(run([[0, 3], [1, -1]], [100, 10]).toArray()).rejects.toThrow(/mlaDecode: blockTable contains 3, outside the valid range \[0, 3\)/);
    await expect(run([[0, 2], [-1, 1]], [100, 10]).toArray()).rejects.toThrow(/mlaDecode: blockTable contains -1/);
    await expect(run([[0, 2], [1, 0]], [129, 10]).toArray()).rejects.toThrow(/mlaDecode: seqLens contains 129, outside the valid range \[0, 129\)/);
    await expect(run([[0, 2], [1, 0]], [100, -1]).toArray()).rejects.toThrow(/mlaDecode: seqLens contains -1/);
    // Entries past a sequence's length are never read; the device keeps working.
    expect((await run([[0, 2], [1, 99]], [128, 64]).toArray()).length).toBe(2 * 4 * DV);
  });
});

describe('mlaDecode: argument checks', () => {
  const cache = dsk.zeros([2, 64, W], { dtype: 'bf16' });
  const q = dsk.randn([2, 1, 4, W], { seed: 2 });
  const bt = dsk.tensor([[0], [1]], { dtype: 'i32' });
  const lens = dsk.tensor([5, 6], { dtype: 'i32' });
  it('rejects bad arguments before enqueueing, naming them', () => {
    const s = { scale: 0.1 };
    expect(() => dsk.ops.mlaDecode(dsk.randn([2, 1, 4, 512]), cache, bt, lens, s)).toThrow(/mlaDecode: q.shape\[3\] must be 576/);
    expect(() => dsk.ops.mlaDecode(dsk.randn([2, 5, 4, W]), cache, bt, lens, s)).toThrow(/mlaDecode: q.shape\[1\] \(Sq, new tokens per sequence\) must be in \[1, 4\], got 5/);
    expect(() => dsk.ops.mlaDecode(dsk.randn([2, 4, W]), cache, bt, lens, s)).toThrow(/mlaDecode: q must have 4 dims/);
    expect(() => dsk.ops.mlaDecode(q.cast('f16'), cache, bt, lens, s)).toThrow(/q must have dtype bf16 or f32/);
    expect(() => dsk.ops.mlaDecode(q, dsk.zeros([2, 64, W]), bt, lens, s)).toThrow(/mlaDecode: cache must have dtype bf16/);
    expect(() => dsk.ops.mlaDecode(q, dsk.zeros([2, 16, W], { dtype: 'bf16' }), bt, lens, s)).toThrow(/cache.shape\[1\] must be 64/);
    expect(() => dsk.ops.mlaDecode(q, cache, dsk.tensor([[0]], { dtype: 'i32' }), lens, s)).toThrow(/mlaDecode: blockTable.shape\[0\] must be 2/);
    expect(() => dsk.ops.mlaDecode(q, cache, dsk.tensor([0, 1], { dtype: 'i32' }), lens, s)).toThrow(/blockTable must have 2 dims/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, dsk.tensor([5, 6]), s)).toThrow(/mlaDecode: seqLens must have dtype i32/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, dsk.tensor([5], { dtype: 'i32' }), s)).toThrow(/seqLens.shape\[0\] must be 2/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, { scale: 0.1, dv: 256 })).toThrow(/mlaDecode: dv must be 512/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, {} as dsk.ops.MlaDecodeOptions)).toThrow(/mlaDecode: scale must be a number/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, undefined as unknown as dsk.ops.MlaDecodeOptions)).toThrow(/options with scale is required/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, { scale: 0.1, numSplits: 0 })).toThrow(/numSplits must be >= 1/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, { scale: 0.1, numSplits: 129 })).toThrow(/numSplits must be <= 128/);
    expect(() => dsk.ops.mlaDecode(q, cache, bt, lens, { scale: 0.1, causal: 'yes' as unknown as boolean })).toThrow(/causal must be a boolean/);
  });
  it.skipIf(!hasCuda)('rejects tensors on different devices', () => {
    expect(() => dsk.ops.mlaDecode(q.to('cuda:0'), cache, bt, lens, { scale: 0.1 })).toThrow(/mlaDecode: cache is on cpu but q is on cuda:0/);
  });
});
