// Elementwise ops with broadcasting: the CPU reference against float64 math (exactly: one f32 operation,
// then one rounding to the output dtype), every GPU against the CPU bit for bit.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { BF16, F16, encode } from './helpers/formats';
import { hasCuda } from './helpers/devices';
import { expectSameBits, expectTensorsBitEqual, f64, gpuDevices, on } from './helpers/ops';

/** NumPy broadcasting in float64: out[i] = f(a[ia], b[ib]). */
function broadcast64(a: Float64Array, as: number[], b: Float64Array, bs: number[], f: (x: number, y: number) => number): { out: number[]; shape: number[] } {
  const n = Math.max(as.length, bs.length);
  const A = [...new Array(n - as.length).fill(1), ...as], B = [...new Array(n - bs.length).fill(1), ...bs];
  const shape = A.map((x, i) => Math.max(x, B[i]));
  const total = shape.reduce((p, q) => p * q, 1);
  const out: number[] = [];
  for (let lin = 0; lin < total; lin++) {
    let rem = lin, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = n - 1; d >= 0; d--) {
      const idx = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      ia += (A[d] === 1 ? 0 : idx) * sa;
      ib += (B[d] === 1 ? 0 : idx) * sb;
      sa *= A[d];
      sb *= B[d];
    }
    out.push(f(a[ia], b[ib]));
  }
  return { out, shape };
}

/** The stored bits of f32 value v in dtype. */
function storeBits(v: number, dtype: 'f32' | 'bf16' | 'f16'): number {
  return dtype === 'bf16' ? encode(BF16, v) : dtype === 'f16' ? encode(F16, v) : v;
}
async function storedBits(t: dsk.Tensor): Promise<ArrayLike<number>> {
  return (t.dtype === 'f32' ? await t.toArray() : await t.toArray({ raw: true })) as ArrayLike<number>;
}

const pairs: [number[], number[]][] = [
  [[4, 1, 6], [5, 1]],
  [[37, 512], [512]],
  [[3, 4], [3, 4]],
  [[1], [2, 3]],
  [[2, 1, 3], [1, 4, 1]],
  [[], [5]],
];

describe('add / mul / scale / cast: CPU reference against float64', () => {
  it('add and mul broadcast like NumPy; one f32 operation rounded once to the output dtype', async () => {
    for (const [sa, sb] of pairs)
      for (const [da, db] of [['f32', 'f32'], ['bf16', 'f32'], ['f16', 'bf16']] as const)
        for (const outDtype of [undefined, 'f32', 'bf16'] as const) {
          const a = dsk.randn(sa, { seed: sa.length + 1, dtype: da }), b = dsk.randn(sb, { seed: sb.length + 7, dtype: db });
          const as = await f64(a), bs = await f64(b);
          for (const [op, f] of [[dsk.ops.add, (x: number, y: number) => Math.fround(x + y)], [dsk.ops.mul, (x: number, y: number) => Math.fround(x * y)]] as const) {
            const out = op(a, b, outDtype ? { outDtype } : undefined);
            const ref = broadcast64(as, sa, bs, sb, f);
            expect(out.shape).toEqual(ref.shape);
            expect(out.dtype).toBe(outDtype ?? da);
            expectSameBits(await storedBits(out), ref.out.map((v) => storeBits(v, out.dtype as 'f32')), `${op.name} [${sa}] ${da} . [${sb}] ${db} -> ${out.dtype}`);
          }
        }
  });

  it('strided and transposed operands', async () => {
    const a = dsk.randn([6, 8], { seed: 1 }).transpose(), b = dsk.randn([8, 12], { seed: 2 }).slice(1, 0, 12, 2);
    const out = dsk.ops.add(a, b);
    const ref = broadcast64(await f64(a.contiguous()), [8, 6], await f64(b.contiguous()), [8, 6], (x, y) => Math.fround(x + y));
    expectSameBits(await f64(out), ref.out, 'strided add');
  });

  it('scale multiplies by f32(s); cast equals Tensor.cast', async () => {
    const x = dsk.randn([33, 17], { seed: 3, dtype: 'bf16' });
    const xs = await f64(x), s = 0.1;
    const out = dsk.ops.scale(x, s);
    expect(out.dtype).toBe('bf16');
    expectSameBits(await storedBits(out), Array.from(xs, (v) => encode(BF16, Math.fround(v * Math.fround(s)))), 'scale bf16');
    expectSameBits(await f64(dsk.ops.scale(x.transpose(), -3, { outDtype: 'f32' })), Array.from(await f64(x.transpose().contiguous()), (v) => Math.fround(v * -3)), 'scale f32');
    await expectTensorsBitEqual(dsk.ops.cast(x, 'fp8e4m3'), x.cast('fp8e4m3'), 'cast');
  });

  it('empty tensors', async () => {
    expect(dsk.ops.add(dsk.randn([0, 3]), dsk.randn([3])).shape).toEqual([0, 3]);
    expect((await dsk.ops.mul(dsk.randn([0]), dsk.randn([1])).toArray()).length).toBe(0);
  });
});

describe.each(gpuDevices)('elementwise on %s: bit-identical to the CPU', (device) => {
  it('contiguous (vector path), broadcast and strided operands', async () => {
    const shapes: [number[], number[]][] = [...pairs, [[4096, 7168], [4096, 7168]], [[129, 7168], [7168]], [[1001], [1001]], [[64, 33], [64, 1]]];
    for (const [sa, sb] of shapes)
      for (const [da, db, od] of [['bf16', 'bf16', 'bf16'], ['f32', 'bf16', 'f32'], ['f16', 'f32', 'bf16']] as const) {
        const a = dsk.randn(sa, { seed: 5, dtype: da }), b = dsk.randn(sb, { seed: 6, dtype: db });
        for (const op of [dsk.ops.add, dsk.ops.mul])
          await expectTensorsBitEqual(op(on(a, device), on(b, device), { outDtype: od }).to('cpu'), op(a, b, { outDtype: od }), `${op.name} [${sa}] [${sb}]`);
        await expectTensorsBitEqual(dsk.ops.scale(on(a, device), 1.7).to('cpu'), dsk.ops.scale(a, 1.7), `scale [${sa}]`);
      }
    const t = dsk.randn([70, 90], { seed: 7 });
    await expectTensorsBitEqual(dsk.ops.add(on(t, device).transpose(), on(t, device).transpose()).to('cpu'), dsk.ops.add(t.transpose(), t.transpose()), 'transposed');
    await expectTensorsBitEqual(dsk.ops.mul(on(t, device).slice(1, 1, 90), on(t, device).slice(1, 0, 89)).to('cpu'), dsk.ops.mul(t.slice(1, 1, 90), t.slice(1, 0, 89)), 'unaligned');
  });
});

describe('elementwise: bad input', () => {
  it('rejects shapes that do not broadcast, wrong dtypes and options', () => {
    expect(() => dsk.ops.add(dsk.randn([3, 4]), dsk.randn([5]))).toThrow(/^add: shapes \[3, 4\] and \[5\] do not broadcast/);
    expect(() => dsk.ops.mul(dsk.randn([3]), dsk.randint([3], 0, 4))).toThrow(/^mul: b must have dtype f32 or bf16 or f16, got i32/);
    expect(() => dsk.ops.add(dsk.randn([3]), dsk.randn([3]), { outDtype: 'fp8e4m3' as 'f32' })).toThrow(/^add: options.outDtype must be one of/);
    expect(() => dsk.ops.scale(dsk.randn([3]), Number.NaN)).toThrow(/^scale: s must be a number, got NaN/);
    expect(() => dsk.ops.scale(dsk.randn([3]), Infinity)).toThrow(/^scale: s must be finite/);
    expect(() => dsk.ops.cast(dsk.randn([3]), 'f64' as dsk.DType)).toThrow(/^cast: dtype must be one of/);
    const gone = dsk.randn([3]);
    gone.dispose();
    expect(() => dsk.ops.add(gone, dsk.randn([3]))).toThrow(/^add: a has been disposed/);
  });
  it.runIf(hasCuda)('rejects operands on different devices', () => {
    expect(() => dsk.ops.add(dsk.randn([3]), dsk.randn([3], { device: 'cuda:0' }))).toThrow(/^add: b is on cuda:0 but a is on cpu/);
  });
});
