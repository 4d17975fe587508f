// Tensor runtime: creation, views, copies between dtypes and devices, lifetime, the async contract.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda, testDevices } from './helpers/devices';

const arr = async (t: dsk.Tensor) => Array.from((await t.toArray()) as Float32Array);

describe.each(testDevices)('tensors on %s', (device) => {
  it('creates from nested arrays, typed arrays and bigints', async () => {
    const t = dsk.tensor([[1, 2, 3], [4, 5, 6]], { device });
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('f32');
    expect(t.device).toBe(device);
    expect(await arr(t)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from((await dsk.tensor(Int32Array.from([7, -8]), { device }).toArray()) as Int32Array)).toEqual([7, -8]);
    expect(Array.from((await dsk.tensor([1n, -(2n ** 40n)], { dtype: 'i64', device }).toArray()) as BigInt64Array)).toEqual([1n, -(2n ** 40n)]);
    expect(await arr(dsk.tensor(Float64Array.from([0.1, 1e39]), { dtype: 'bf16', device }))).toEqual([Math.fround(0.10009765625), Infinity]);
    expect(await arr(dsk.tensor([1, 2, 3, 4], { shape: [2, 2], device }).select(0, 1))).toEqual([3, 4]);
  });

  it('fills, and builds ranges', async () => {
    expect(await arr(dsk.full([3], -2.5, { device, dtype: 'bf16' }))).toEqual([-2.5, -2.5, -2.5]);
    expect(await arr(dsk.zeros([2], { device }))).toEqual([0, 0]);
    expect(await arr(dsk.ones([2], { device, dtype: 'fp8e4m3' }))).toEqual([1, 1]);
    expect(Array.from((await dsk.arange(5, { device }).toArray()) as Int32Array)).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from((await dsk.full([2], 3, { dtype: 'i64', device }).toArray()) as BigInt64Array)).toEqual([3n, 3n]);
  });

  it('views share storage; copies do not', async () => {
    const x = dsk.tensor(Float32Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4], device });
    expect(await arr(x.slice(2, 1, 3))).toEqual([1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    expect(await arr(x.slice(1, 0, 3, 2).select(0, 1))).toEqual([12, 13, 14, 15, 20, 21, 22, 23]);
    expect(await arr(x.transpose(0, 2).contiguous().reshape([-1]).slice(0, 0, 6))).toEqual([0, 12, 4, 16, 8, 20]);
    expect(x.permute([2, 0, 1]).shape).toEqual([4, 2, 3]);
    expect(x.permute([2, 0, 1]).isContiguous()).toBe(false);
    expect(x.view([6, 4]).shape).toEqual([6, 4]);
    expect(() => x.transpose().view([24])).toThrow(/not contiguous/);
    expect(await arr(x.transpose().reshape([24]).slice(0, 0, 4))).toEqual([0, 4, 8, 1]);
    expect(x.unsqueeze(0).shape).toEqual([1, 2, 3, 4]);
    expect(x.unsqueeze(-1).shape).toEqual([2, 3, 4, 1]);
    // A write through one view is seen by the other.
    const flat = x.view([24]);
    flat.slice(0, 0, 2).copyFrom(dsk.tensor([100, 101], { device }));
    expect((await arr(x)).slice(0, 3)).toEqual([100, 101, 2]);
    const c = x.clone();
    c.slice(0, 0, 1).copyFrom(dsk.zeros([1, 3, 4], { device }));
    expect((await arr(x))[0]).toBe(100);
  });

  it('moves between devices and casts, keeping values', async () => {
    const x = dsk.randn([33, 65], { seed: 4, device });
    const back = x.to('cpu').to(device).cast('bf16').cast('f32');
    const a = await arr(x), b = await arr(back);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -8);
    const strided = x.transpose().to('cpu');
    expect(strided.shape).toEqual([65, 33]);
    expect((await arr(strided))[1]).toBe(a[65]);
  });

  it('copies permuted and sliced views exactly, whole-vector rows or not', async () => {
    // Outer-dim permutes with contiguous rows (the vector path on the GPU), rows that are not a multiple
    // of 16 bytes, a sliced (offset, misaligned) base, a real transpose; every dtype width.
    const cases: { shape: number[]; dims: number[]; slice?: [number, number, number] }[] = [
      { shape: [5, 6, 16], dims: [1, 0, 2] },
      { shape: [3, 4, 2, 32], dims: [2, 0, 1, 3] },
      { shape: [5, 6, 12], dims: [1, 0, 2] },
      { shape: [7, 6, 16], dims: [1, 0, 2], slice: [2, 1, 13] },
      { shape: [6, 8], dims: [1, 0] },
    ];
    for (const dtype of ['f32', 'bf16', 'fp8e4m3', 'i64'] as const) {
      for (const c of cases) {
        const n = c.shape.reduce((a, b) => a * b, 1);
        const vals = Array.from({ length: n }, (_, i) => (dtype === 'i64' ? BigInt(i * 7 - 50) : ((i * 37) % 61) - 30));
        let x = dsk.tensor(vals as number[], { shape: c.shape, dtype, device });
        if (c.slice) x = x.slice(...c.slice);
        const y = x.permute(c.dims).contiguous();
        // Expected values by index math on the host.
        const src = x.shape;
        const full = c.shape.map((_, d) => c.shape.slice(d + 1).reduce((a, b) => a * b, 1));
        const want: (number | bigint)[] = [];
        const out = c.dims.map((d) => src[d]);
        const idx = out.map(() => 0);
        for (let k = 0; k < y.numel; k++) {
          const at = src.map(() => 0);
          c.dims.forEach((d, j) => (at[d] = idx[j]));
          if (c.slice) at[c.slice[0]] += c.slice[1];
          want.push(vals[at.reduce((a, v, d) => a + v * full[d], 0)]);
          for (let j = out.length - 1; j >= 0 && ++idx[j] === out[j]; j--) idx[j] = 0;
        }
        const got = Array.from((await y.toArray()) as ArrayLike<number | bigint>);
        const exp = dtype === 'i64' ? want : (await dsk.tensor(want as number[], { dtype }).toArray());
        expect(got, `${dtype} ${JSON.stringify(c)}`).toEqual(Array.from(exp as ArrayLike<number | bigint>));
      }
    }
    // Widening casts through the vector path, with a tail that is not a multiple of 8.
    for (const dtype of ['bf16', 'f16', 'fp8e4m3'] as const) {
      const v = Array.from({ length: 45 }, (_, i) => (i - 22) * 0.37);
      const t = dsk.tensor(v, { dtype, device });
      expect(await arr(t.cast('f32'))).toEqual(await arr(dsk.tensor(v, { dtype }).cast('f32')));
    }
  });

  it('write() replaces stored bits; item() reads one value', async () => {
    const t = dsk.empty([3], { dtype: 'bf16', device });
    t.write(Uint16Array.from([0x3f80, 0xc000, 0x7f80]));
    expect(await arr(t)).toEqual([1, -2, Infinity]);
    expect(await dsk.tensor([42], { device }).item()).toBe(42);
    expect(() => t.write(new Uint16Array(2))).toThrow(/got 4 bytes, the tensor holds 6/);
  });

  it('dispose is idempotent, tracked per view, and disposed tensors are refused', async () => {
    const x = dsk.randn([16], { seed: 1, device });
    const v = x.slice(0, 0, 8);
    x.dispose();
    x.dispose();
    expect(x.disposed).toBe(true);
    expect(() => x.clone()).toThrow(/disposed/);
    await expect(async () => x.toArray()).rejects.toThrow(TypeError);
    expect((await arr(v)).length).toBe(8); // the view still holds the storage
    {
      using scoped = dsk.zeros([4], { device });
      expect(scoped.disposed).toBe(false);
    }
    expect(String(v)).toBe(`Tensor(f32, [8], ${device})`);
  });

  it('ops return before the work is done and reads never block the event loop', async () => {
    const n = device === 'cpu' ? 1 << 24 : 1 << 28;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const big = dsk.randn([n], { seed: 2, device, dtype: 'bf16' });
    const y = big.cast('f32').cast('fp8e4m3').cast('bf16');
    const head = y.slice(0, 0, 4);
    const ticksAtEnqueue = ticks;
    const v = await head.toArray();
    clearInterval(timer);
    expect(ticksAtEnqueue).toBe(0); // nothing ran the event loop while enqueueing
    expect(ticks).toBeGreaterThan(0); // the loop kept turning while the device worked
    expect(v.length).toBe(4);
  });
});

describe('devices', () => {
  it('lists cpu first and each GPU with its properties', () => {
    const d = dsk.devices();
    expect(d[0].id).toBe('cpu');
    expect(d[0].threads).toBeGreaterThan(0);
    expect(d.length).toBe(1 + dsk.cuda.deviceCount());
    for (const g of d.slice(1)) {
      expect(g.smCount).toBeGreaterThan(0);
      expect(g.totalMemory).toBeGreaterThan(2 ** 30);
      expect(g.computeCapability).toMatch(/^\d+\.\d+$/);
    }
  });
  it.runIf(!hasCuda)('without a GPU, reports only cpu and says why', () => {
    expect(dsk.cuda.isAvailable()).toBe(false);
    expect(dsk.cuda.status().reason.length).toBeGreaterThan(5);
    expect(() => dsk.zeros([1], { device: 'cuda:0' })).toThrow(/cuda:0 does not exist/);
  });
});
