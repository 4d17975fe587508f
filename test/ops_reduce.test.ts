// Reductions over the last dim: the CPU reference against float64 math / JS sorting written here, every GPU
// against the CPU bit for bit.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda } from './helpers/devices';
import { expectSameBits, expectTensorsBitEqual, f64, gpuDevices, lcg, on } from './helpers/ops';

/** Rows [R, n]: gaussian logits, scaled logits (stability), rows full of ties, NaN, -inf and ±0. */
async function rowsOf(R: number, n: number, seed: number, dtype: 'f32' | 'bf16'): Promise<dsk.Tensor> {
  const v = (await dsk.randn([R, n], { seed }).toArray()) as Float32Array;
  const rnd = lcg(seed);
  for (let r = 0; r < R; r++) {
    const row = v.subarray(r * n, (r + 1) * n);
    switch (r % 6) {
      case 1: row.forEach((x, i) => (row[i] = x * 60)); break; // exp would overflow without the max
      case 2: row.forEach((_, i) => (row[i] = Math.floor(rnd() * 4))); break; // ties everywhere
      case 3: if (n > 3) { row[Math.floor(n / 2)] = -Infinity; row[1] = -0; row[2] = 0; } break;
      case 4: if (n > 5) { row[3] = NaN; row[n - 1] = NaN; } break;
      default: break;
    }
  }
  return dsk.tensor(v, { shape: [R, n], dtype });
}

function softmax64(x: Float64Array, n: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    const row = x.subarray(r * n, (r + 1) * n);
    let m = -Infinity;
    for (const v of row) if (v > m) m = v;
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    for (let i = 0; i < n; i++) out[r * n + i] = log ? row[i] - m - Math.log(s) : Math.exp(row[i] - m) / s;
  }
  return out;
}

/** Order of argmax/topk: NaN largest, -0 == +0, ties to the lower index. */
function before(x: number, i: number, y: number, j: number): boolean {
  const nx = Number.isNaN(x), ny = Number.isNaN(y);
  if (nx !== ny) return nx;
  if (!nx && x !== y) return x > y;
  return i < j;
}

const shapes: [number, number][] = [[6, 129280], [37, 1000], [1, 7], [6, 8192], [6, 8193], [12, 256]];

describe('softmax / logSoftmax: CPU reference against float64', () => {
  for (const log of [false, true])
    it(`${log ? 'logSoftmax' : 'softmax'} over several widths, f32 and bf16 inputs, stable for large logits`, async () => {
      for (const [R, n] of shapes)
        for (const dtype of ['f32', 'bf16'] as const) {
          const x = await rowsOf(R, n, R + n, dtype);
          const op = log ? dsk.ops.logSoftmax : dsk.ops.softmax;
          const got = await f64(op(x, { outDtype: 'f32' }));
          const ref = softmax64(await f64(x), n, log);
          for (let i = 0; i < ref.length; i++) {
            const r = Math.floor(i / n);
            if (r % 6 === 4 && n > 5) {
              if (!Number.isNaN(got[i])) throw new Error(`row with NaN: out[${i}] = ${got[i]}, expected NaN`);
              continue;
            }
            const tol = log ? 1e-5 * Math.abs(ref[i]) + 1e-6 : 1e-5 * ref[i] + 1e-38; // subnormal outputs: absolute
            if (!(Math.abs(got[i] - ref[i]) <= tol || got[i] === ref[i])) throw new Error(`[${R}, ${n}] ${dtype} out[${i}] = ${got[i]}, float64 ${ref[i]}`);
          }
          const def = op(x);
          expect(def.dtype).toBe(dtype);
        }
    });

  it('rows summing to one, bf16 output, 3-D input, empty rows', async () => {
    const x = dsk.randn([2, 3, 50], { seed: 1, dtype: 'bf16' });
    const p = await f64(dsk.ops.softmax(x, { outDtype: 'f32' }));
    for (let r = 0; r < 6; r++) expect(Math.abs(p.subarray(r * 50, r * 50 + 50).reduce((s, v) => s + v, 0) - 1)).toBeLessThan(1e-6);
    const pb = await f64(dsk.ops.softmax(x));
    const ref = softmax64(await f64(x), 50, false);
    for (let i = 0; i < ref.length; i++) expect(Math.abs(pb[i] - ref[i])).toBeLessThanOrEqual(2 ** -8 * ref[i]);
    expect(dsk.ops.softmax(dsk.randn([0, 5])).shape).toEqual([0, 5]);
  });
});

describe('argmax / topk: CPU reference against JS', () => {
  it('argmax: ties to the lower index, NaN largest (first NaN wins), -0 == +0', async () => {
    for (const [R, n] of shapes)
      for (const dtype of ['f32', 'bf16'] as const) {
        const x = await rowsOf(R, n, 3 * R + n, dtype);
        const xs = await f64(x);
        const got = (await dsk.ops.argmax(x).toArray()) as Int32Array;
        for (let r = 0; r < R; r++) {
          let b = 0;
          for (let i = 1; i < n; i++) if (before(xs[r * n + i], i, xs[r * n + b], b)) b = i;
          expect(got[r], `[${R}, ${n}] ${dtype} row ${r}`).toBe(b);
        }
      }
    expect(Array.from((await dsk.ops.argmax(dsk.tensor([[-0, 0, -1], [1, NaN, NaN], [-Infinity, -Infinity, -Infinity]])).toArray()) as Int32Array)).toEqual([0, 1, 0]);
    expect(dsk.ops.argmax(dsk.randn([2, 3, 4])).shape).toEqual([2, 3]);
  });

  it('topk: sorted descending, same order as argmax, values copied bit for bit', async () => {
    for (const [R, n] of shapes)
      for (const dtype of ['f32', 'bf16'] as const) {
        const x = await rowsOf(R, n, 5 * R + n, dtype);
        const xs = await f64(x), raw = (await x.toArray({ raw: true })) as ArrayLike<number>;
        const order = Array.from({ length: R }, (_, r) =>
          Array.from({ length: n }, (_, i) => i).sort((i, j) => (before(xs[r * n + i], i, xs[r * n + j], j) ? -1 : 1)));
        for (const k of [1, 8, 50, 256, 257, 4096]) {
          if (k > n) continue;
          const { values, indices } = dsk.ops.topk(x, k);
          expect(values.shape).toEqual([R, k]);
          expect(values.dtype).toBe(dtype);
          const gi = (await indices.toArray()) as Int32Array, gv = (await values.toArray({ raw: true })) as ArrayLike<number>;
          for (let r = 0; r < R; r++)
            for (let j = 0; j < k; j++) {
              const want = order[r][j];
              if (gi[r * k + j] !== want) throw new Error(`[${R}, ${n}] k=${k} ${dtype} row ${r}: indices[${j}] = ${gi[r * k + j]}, expected ${want}`);
              if (gv[r * k + j] !== raw[r * n + want] && !(Number.isNaN(gv[r * k + j]) && Number.isNaN(raw[r * n + want])))
                throw new Error(`values[${r}, ${j}] differs from x`);
            }
        }
      }
  });

  it('strided rows and 3-D inputs', async () => {
    const x = dsk.randn([4, 300], { seed: 9 });
    await expectTensorsBitEqual(dsk.ops.topk(x.slice(1, 10, 290), 20).indices, dsk.ops.topk(x.slice(1, 10, 290).contiguous(), 20).indices, 'sliced topk');
    await expectTensorsBitEqual(dsk.ops.argmax(x.transpose()), dsk.ops.argmax(x.transpose().contiguous()), 'transposed argmax');
    expect(dsk.ops.topk(dsk.randn([2, 3, 40]), 5).indices.shape).toEqual([2, 3, 5]);
  });
});

describe.each(gpuDevices)('reductions on %s: bit-identical to the CPU', (device) => {
  it('softmax, logSoftmax (warp and block rows), argmax, topk (small and large k)', async () => {
    for (const [R, n] of [...shapes, [64, 129280], [1, 129280], [300, 64], [2, 16384], [3, 40000]] as [number, number][])
      for (const dtype of ['f32', 'bf16'] as const) {
        const x = await rowsOf(R, n, 7 * R + n, dtype), xd = on(x, device);
        for (const outDtype of ['f32', 'bf16'] as const) {
          await expectTensorsBitEqual(dsk.ops.softmax(xd, { outDtype }).to('cpu'), dsk.ops.softmax(x, { outDtype }), `softmax [${R}, ${n}] ${dtype} -> ${outDtype}`);
          await expectTensorsBitEqual(dsk.ops.logSoftmax(xd, { outDtype }).to('cpu'), dsk.ops.logSoftmax(x, { outDtype }), `logSoftmax [${R}, ${n}] ${dtype} -> ${outDtype}`);
        }
        await expectTensorsBitEqual(dsk.ops.argmax(xd).to('cpu'), dsk.ops.argmax(x), `argmax [${R}, ${n}] ${dtype}`);
        for (const k of [1, 8, 256, 257, 1000, 4096]) {
          if (k > n) continue;
          const c = dsk.ops.topk(x, k), d = dsk.ops.topk(xd, k);
          await expectTensorsBitEqual(d.indices.to('cpu'), c.indices, `topk indices [${R}, ${n}] k=${k} ${dtype}`);
          await expectTensorsBitEqual(d.values.to('cpu'), c.values, `topk values [${R}, ${n}] k=${k} ${dtype}`);
        }
      }
    // Ties across the slices of a row shared by a cluster of CTAs: ranked by index over the whole row.
    const ties = dsk.randint([2, 129280], 0, 40, { seed: 4 }).cast('bf16'), tied = on(ties, device);
    for (const k of [1, 300, 4096]) {
      const c = dsk.ops.topk(ties, k), d = dsk.ops.topk(tied, k);
      await expectTensorsBitEqual(d.indices.to('cpu'), c.indices, `topk ties k=${k}`);
    }
    const x = dsk.randn([33, 1001], { seed: 3, dtype: 'bf16' }), xd = on(x, device);
    await expectTensorsBitEqual(dsk.ops.softmax(xd.slice(1, 1, 1001)).to('cpu'), dsk.ops.softmax(x.slice(1, 1, 1001)), 'unaligned softmax');
    await expectTensorsBitEqual(dsk.ops.argmax(xd.slice(1, 1, 1001)).to('cpu'), dsk.ops.argmax(x.slice(1, 1, 1001)), 'unaligned argmax');
  });
});

describe('reductions: bad input', () => {
  it('rejects wrong dtypes, shapes and k', () => {
    expect(() => dsk.ops.softmax(dsk.randint([3, 4], 0, 5))).toThrow(/^softmax: x must have dtype f32 or bf16 or f16, got i32/);
    expect(() => dsk.ops.logSoftmax(dsk.randn([3, 4]), { outDtype: 'i32' as 'f32' })).toThrow(/^logSoftmax: options.outDtype must be one of/);
    expect(() => dsk.ops.argmax(dsk.randn([3, 0]))).toThrow(/^argmax: x.shape\[-1\] must be at least 1/);
    expect(() => dsk.ops.topk(dsk.randn([3, 10]), 11)).toThrow(/^topk: k must be <= 10, got 11/);
    expect(() => dsk.ops.topk(dsk.randn([3, 10]), 0)).toThrow(/^topk: k must be >= 1/);
    expect(() => dsk.ops.topk(dsk.randn([3, 10]), 1.5)).toThrow(/^topk: k must be an integer/);
    expect(() => dsk.ops.topk(dsk.randn([1, 10000]), 4097)).toThrow(/^topk: k must be <= 4096/);
    const gone = dsk.randn([3]);
    gone.dispose();
    expect(() => dsk.ops.argmax(gone)).toThrow(/^argmax: x has been disposed/);
    expect(() => dsk.ops.topk({} as dsk.Tensor, 1)).toThrow(/^topk: x must be a Tensor/);
  });
  it.runIf(hasCuda)('device tensors validate the same way', () => {
    expect(() => dsk.ops.topk(dsk.randn([3, 10], { device: 'cuda:0' }), 11)).toThrow(RangeError);
  });
});
