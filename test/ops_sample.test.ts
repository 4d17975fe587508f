// Sampling: the CPU reference against a float64 implementation of the same definition (disagreeing only
// where float64 and f32 cumulative sums straddle the threshold within 1e-5), token frequencies against
// the probabilities, and every GPU against the CPU token for token over many seeds.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda } from './helpers/devices';
import { philox } from './helpers/philox';
import { expectTensorsBitEqual, f64, gpuDevices, on } from './helpers/ops';

interface Opts { temperature: number; topK?: number; topP?: number; seed: number }

/** float64 version of native/math/sample_math.h for one row: the sorted candidates with their cumulative
 *  probability, and the float64 token. */
function sample64(x: Float64Array, o: Opts, row: number) {
  const V = x.length;
  const z = Array.from(x, (v) => {
    const q = Math.fround(v / Math.fround(o.temperature));
    return Number.isNaN(q) ? -Infinity : q;
  });
  const order = Array.from({ length: V }, (_, i) => i).sort((i, j) => (z[i] !== z[j] ? z[j] - z[i] : i - j));
  const zmax = z[order[0]];
  const u = (philox(BigInt(row), BigInt(o.seed))[0] >>> 8) / 2 ** 24;
  if (!Number.isFinite(zmax)) return { order, cum: [1], nucleus: [1], u, token: order[0], degenerate: true };
  const topK = o.topK ?? 0, topP = Math.fround(o.topP ?? 1);
  const nc = topK > 0 && topK < V ? topK : V;
  const e = order.slice(0, nc).map((i) => Math.exp(z[i] - zmax));
  const S = e.reduce((s, v) => s + v, 0);
  const cum: number[] = [];
  let acc = 0;
  for (const v of e) cum.push((acc += v) / S);
  // Plausible nucleus sizes: where float64 and f32 sums could straddle topP (within 1e-5).
  const nucleus: number[] = [];
  if (topP >= 1) nucleus.push(nc);
  else
    for (let n = 1; n <= nc; n++) {
      const prev = n > 1 ? cum[n - 2] : 0;
      if (cum[n - 1] >= topP - 1e-5 && prev < topP + 1e-5) nucleus.push(n);
      if (prev >= topP + 1e-5) break;
    }
  if (topP < 1 && !nucleus.length) nucleus.push(nc);
  const n0 = topP >= 1 ? nc : (cum.findIndex((c) => c >= topP) + 1 || nc);
  const total = cum[n0 - 1];
  let p = cum.findIndex((c, j) => j < n0 && c > u * total);
  if (p < 0) p = n0 - 1;
  return { order, cum, nucleus, u, token: order[p], degenerate: false };
}

/** Whether `token` is what the definition gives up to float64/f32 straddles of 1e-5. */
function plausible(r: ReturnType<typeof sample64>, token: number): boolean {
  if (r.degenerate) return token === r.token;
  const p = r.order.indexOf(token);
  return r.nucleus.some((n) => {
    if (p < 0 || p >= n) return false;
    const t = r.u * r.cum[n - 1];
    return r.cum[p] >= t - 1e-5 && (p === 0 || r.cum[p - 1] <= t + 1e-5);
  });
}

async function logits(B: number, V: number, seed: number, std: number, dtype: 'f32' | 'bf16' = 'f32'): Promise<dsk.Tensor> {
  return dsk.randn([B, V], { seed, std, dtype });
}

const optionSets: Omit<Opts, 'seed'>[] = [
  { temperature: 1 },
  { temperature: 0.7, topK: 50 },
  { temperature: 1.3, topP: 0.9 },
  { temperature: 1, topK: 100, topP: 0.8 },
  { temperature: 2, topK: 5000 },
  { temperature: 0.6, topP: 0.95 },
  { temperature: 1, topK: 1 },
  { temperature: 1, topP: 1e-6 },
];

describe('sample: CPU reference against float64', () => {
  it('temperature, topK and topP over many rows and seeds', async () => {
    let total = 0, exact = 0;
    for (const [B, V, std, dtype] of [[48, 1000, 3, 'f32'], [16, 3000, 0.05, 'bf16'], [2, 129280, 2, 'bf16']] as const) {
      const x = await logits(B, V, B + V, std, dtype);
      const xs = await f64(x);
      for (const o of optionSets)
        for (const seed of [1, 99]) {
          const opts = { ...o, seed };
          const got = (await dsk.ops.sample(x, opts).toArray()) as Int32Array;
          for (let r = 0; r < B; r++) {
            const ref = sample64(xs.subarray(r * V, (r + 1) * V), opts, r);
            total++;
            if (got[r] === ref.token) exact++;
            else if (!plausible(ref, got[r]))
              throw new Error(`[${B}, ${V}] ${JSON.stringify(opts)} row ${r}: token ${got[r]}, float64 gives ${ref.token}`);
          }
        }
    }
    expect(exact / total).toBeGreaterThan(0.98);
  });

  it('token frequencies match the truncated, renormalized probabilities', async () => {
    const base = [2, 1, 0.5, 0, -1, 3, -0.25, 1.5];
    const B = 20000;
    for (const o of [{ temperature: 1 }, { temperature: 0.5, topK: 4 }, { temperature: 1.5, topP: 0.7 }, { temperature: 1, topK: 6, topP: 0.9 }]) {
      const x = dsk.tensor(Float32Array.from({ length: B * base.length }, (_, i) => base[i % base.length]), { shape: [B, base.length] });
      const got = (await dsk.ops.sample(x, { ...o, seed: 1234 }).toArray()) as Int32Array;
      // Probabilities of the definition in float64.
      const ref = sample64(Float64Array.from(base), { ...o, seed: 0 }, 0);
      const n = ref.nucleus[0], total = ref.cum[n - 1];
      const prob = new Map<number, number>();
      for (let j = 0; j < n; j++) prob.set(ref.order[j], (ref.cum[j] - (j ? ref.cum[j - 1] : 0)) / total);
      const counts = new Array(base.length).fill(0);
      for (const t of got) counts[t]++;
      for (let i = 0; i < base.length; i++) {
        const p = prob.get(i) ?? 0;
        if (p === 0) expect(counts[i], `${JSON.stringify(o)}: token ${i} is outside the kept set`).toBe(0);
        else expect(Math.abs(counts[i] / B - p), `${JSON.stringify(o)}: token ${i}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / B) + 1e-9);
      }
    }
  });

  it('temperature 0 is argmax; NaN logits are never drawn; a +inf or all -inf row returns its argmax', async () => {
    const x = await logits(8, 500, 3, 1);
    await expectTensorsBitEqual(dsk.ops.sample(x, { temperature: 0 }), dsk.ops.argmax(x), 'greedy');
    const special = dsk.tensor([
      [NaN, 0, -100, -100],
      [1, 2, Infinity, Infinity],
      [-Infinity, -Infinity, -Infinity, -Infinity],
      [-Infinity, 5, -Infinity, 4],
    ]);
    for (let seed = 0; seed < 40; seed++) {
      const t = Array.from((await dsk.ops.sample(special, { seed }).toArray()) as Int32Array);
      expect(t[0]).not.toBe(0);
      expect(t[1]).toBe(2);
      expect(t[2]).toBe(0);
      expect([1, 3]).toContain(t[3]);
    }
  });

  it('the same seed gives the same tokens; B = 0', async () => {
    const x = await logits(16, 2000, 5, 1);
    const a = await dsk.ops.sample(x, { seed: 42n, topP: 0.9 }).toArray(), b = await dsk.ops.sample(x, { seed: 42n, topP: 0.9 }).toArray();
    expect(Array.from(a as Int32Array)).toEqual(Array.from(b as Int32Array));
    const c = await dsk.ops.sample(x, { seed: 43n, topP: 0.9 }).toArray();
    expect(Array.from(c as Int32Array)).not.toEqual(Array.from(a as Int32Array));
    expect(dsk.ops.sample(dsk.randn([0, 10]), { seed: 1 }).shape).toEqual([0]);
  });
});

describe.each(gpuDevices)('sample on %s: the CPU token for every seed', (device) => {
  it('many seeds, every option set, bf16 and f32 logits, vocabulary 129280', async () => {
    for (const [B, V, std, dtype] of [[8, 1000, 3, 'f32'], [8, 1000, 3, 'bf16'], [4, 129280, 2, 'bf16'], [3, 129280, 0.02, 'f32']] as const) {
      const x = await logits(B, V, B * 11 + V, std, dtype), xd = on(x, device);
      for (const o of optionSets)
        for (let seed = 0; seed < (V > 100000 ? 4 : 50); seed++)
          await expectTensorsBitEqual(dsk.ops.sample(xd, { ...o, seed }).to('cpu'), dsk.ops.sample(x, { ...o, seed }), `[${B}, ${V}] ${dtype} ${JSON.stringify(o)} seed ${seed}`);
    }
  });

  it('nucleus and topK larger than one page (2048 candidates), flat distributions, special rows', async () => {
    const x = await logits(6, 20000, 7, 0.01), xd = on(x, device);
    for (const o of [{ temperature: 1, topP: 0.9 }, { temperature: 1, topK: 3000 }, { temperature: 1, topK: 9000, topP: 0.5 }, { temperature: 1 }, { temperature: 1, topP: 0.999 }])
      for (let seed = 0; seed < 10; seed++)
        await expectTensorsBitEqual(dsk.ops.sample(xd, { ...o, seed }).to('cpu'), dsk.ops.sample(x, { ...o, seed }), `flat ${JSON.stringify(o)} seed ${seed}`);
    const ties = dsk.randint([4, 5000], 0, 3, { seed: 8 }).cast('f32');
    for (let seed = 0; seed < 10; seed++)
      await expectTensorsBitEqual(dsk.ops.sample(on(ties, device), { topK: 2500, topP: 0.7, seed }).to('cpu'), dsk.ops.sample(ties, { topK: 2500, topP: 0.7, seed }), `ties seed ${seed}`);
    const special = dsk.tensor([[NaN, 0, -100, -100], [1, 2, Infinity, Infinity], [-Infinity, -Infinity, -Infinity, -Infinity], [-Infinity, 5, -Infinity, 4]]);
    for (let seed = 0; seed < 20; seed++)
      await expectTensorsBitEqual(dsk.ops.sample(on(special, device), { seed }).to('cpu'), dsk.ops.sample(special, { seed }), `special seed ${seed}`);
    await expectTensorsBitEqual(dsk.ops.sample(xd, { temperature: 0 }).to('cpu'), dsk.ops.sample(x, { temperature: 0 }), 'greedy');
  });
});

describe.each(gpuDevices)('sample on %s: rows split over a cluster of CTAs', (device) => {
  // One or two rows of a 129280-token vocabulary: each row is shared by 8 CTAs (on sm_90), which must
  // agree with the CPU on flat distributions whose nucleus spans many pages, on massive ties (ranked by
  // index across the CTAs' slices) and on special values in any slice.
  it('flat rows, ties across slices, special values far into the row', async () => {
    const V = 129280;
    const flat = await logits(2, V, 17, 0.01), fd = on(flat, device);
    for (const o of [{ temperature: 1, topP: 0.9 }, { temperature: 1, topK: 3000, topP: 0.95 }, { temperature: 1 }, { temperature: 0.5, topK: 50 }])
      for (let seed = 0; seed < 3; seed++)
        await expectTensorsBitEqual(dsk.ops.sample(fd, { ...o, seed }).to('cpu'), dsk.ops.sample(flat, { ...o, seed }), `flat ${JSON.stringify(o)} seed ${seed}`);
    const ties = dsk.randint([2, V], 0, 3, { seed: 9 }).cast('f32'), td = on(ties, device);
    for (const o of [{ topK: 2500, topP: 0.7 }, { topK: 70000 }, { topP: 0.3 }])
      for (let seed = 0; seed < 3; seed++)
        await expectTensorsBitEqual(dsk.ops.sample(td, { ...o, seed }).to('cpu'), dsk.ops.sample(ties, { ...o, seed }), `ties ${JSON.stringify(o)} seed ${seed}`);
    const vals = new Float32Array(3 * V).map((_, i) => ((i * 7919) % 1000) / 100);
    vals[V - 5] = Infinity; // row 0: +inf in the last slice
    vals[V + 100000] = NaN; // row 1: NaN is never drawn
    for (let i = 2 * V; i < 3 * V; i++) vals[i] = i === 2 * V + 90000 ? 1 : -Infinity; // row 2: one finite value
    const sp = dsk.tensor(vals, { shape: [3, V] });
    for (let seed = 0; seed < 3; seed++)
      await expectTensorsBitEqual(dsk.ops.sample(on(sp, device), { seed, topP: 0.8 }).to('cpu'), dsk.ops.sample(sp, { seed, topP: 0.8 }), `special seed ${seed}`);
    expect(Array.from((await dsk.ops.sample(on(sp, device), { seed: 1 }).toArray()) as Int32Array).filter((t, r) => r !== 1)).toEqual([V - 5, 90000]);
    // 40 rows: clusters of 2, slices too long for the shared-memory key cache (keys recomputed every pass).
    const many = await logits(40, V, 23, 2, 'bf16'), md = on(many, device);
    for (let seed = 0; seed < 2; seed++)
      await expectTensorsBitEqual(dsk.ops.sample(md, { temperature: 0.8, topP: 0.9, seed }).to('cpu'), dsk.ops.sample(many, { temperature: 0.8, topP: 0.9, seed }), `40 rows seed ${seed}`);
  });
});

describe('sample: bad input', () => {
  it('rejects wrong dtypes, shapes and options', () => {
    const x = dsk.randn([2, 10]);
    expect(() => dsk.ops.sample(dsk.randn([10]))).toThrow(/^sample: logits must have 2 dims/);
    expect(() => dsk.ops.sample(dsk.randn([2, 10], { dtype: 'f16' }))).toThrow(/^sample: logits must have dtype f32 or bf16/);
    expect(() => dsk.ops.sample(dsk.randn([2, 0]))).toThrow(/^sample: logits.shape\[1\] must be at least 1/);
    expect(() => dsk.ops.sample(x, { temperature: -1 })).toThrow(/^sample: options.temperature must be >= 0/);
    expect(() => dsk.ops.sample(x, { topK: -1 })).toThrow(/^sample: options.topK must be >= 0/);
    expect(() => dsk.ops.sample(x, { topK: 2.5 })).toThrow(/^sample: options.topK must be an integer/);
    expect(() => dsk.ops.sample(x, { topP: 0 })).toThrow(/^sample: options.topP must be > 0/);
    expect(() => dsk.ops.sample(x, { topP: 1.5 })).toThrow(/^sample: options.topP must be <= 1/);
    expect(() => dsk.ops.sample(x, { seed: -1 })).toThrow(/^sample: options.seed must be in \[0, 2\^64\)/);
    expect(() => dsk.ops.sample(x, { seed: 1.5 })).toThrow(/^sample: options.seed must be an integer or a bigint/);
    expect(() => dsk.ops.sample(x, { temperature: 1e-50 })).toThrow(/^sample: options.temperature 1e-50 is too small/);
    const gone = dsk.randn([2, 10]);
    gone.dispose();
    expect(() => dsk.ops.sample(gone)).toThrow(/^sample: logits has been disposed/);
  });
  it.runIf(hasCuda)('device logits validate the same way', () => {
    expect(() => dsk.ops.sample(dsk.randn([2, 10], { device: 'cuda:0' }), { topP: 2 })).toThrow(RangeError);
  });
});
