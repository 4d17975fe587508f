// Layer ops: CPU reference against float64 math in the test, CUDA against the CPU reference.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { testDevices } from './helpers/devices';

describe.each(testDevices)('embedding on %s', (device) => {
  it('gathers rows exactly, for every dtype', async () => {
    for (const dtype of ['f32', 'bf16', 'fp8e4m3', 'i32'] as const) {
      const V = 1000, D = 72, T = 37;
      const table = dsk.randn([V, D], { seed: 11, device }).cast(dtype);
      const ids = dsk.randint([T], 0, V, { seed: 12, device });
      const got = await dsk.ops.embedding(ids, table).toArray({ raw: true });
      const tab = await table.toArray({ raw: true });
      const id = (await ids.toArray()) as Int32Array;
      for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) expect(got[t * D + d]).toBe(tab[id[t] * D + d]);
    }
  });

  it('keeps the shape of ids and handles T = 0', async () => {
    const table = dsk.randn([10, 8], { seed: 1, device });
    expect(dsk.ops.embedding(dsk.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'i32', device }), table).shape).toEqual([2, 3, 8]);
    const none = dsk.ops.embedding(dsk.empty([0], { dtype: 'i32', device }), table);
    expect(none.shape).toEqual([0, 8]);
    expect((await none.toArray()).length).toBe(0);
  });

  it('an id out of range makes the next read reject, naming the argument', async () => {
    const table = dsk.randn([10, 8], { seed: 1, device });
    const out = dsk.ops.embedding(dsk.tensor([1, 10, 2], { dtype: 'i32', device }), table);
    await expect(out.toArray()).rejects.toThrow(/embedding: ids contains 10, outside the valid range \[0, 10\)/);
    // The error is consumed: the device keeps working.
    expect((await dsk.ops.embedding(dsk.tensor([3], { dtype: 'i32', device }), table).toArray()).length).toBe(8);
  });

  it('rejects bad arguments before enqueueing', () => {
    const table = dsk.randn([10, 8], { seed: 1, device });
    expect(() => dsk.ops.embedding(dsk.tensor([1.5]), table)).toThrow(TypeError);
    expect(() => dsk.ops.embedding(dsk.tensor([1, 2], { dtype: 'i32', device }), dsk.randn([10], { device }))).toThrow(/table must have 2 dims/);
    expect(() => dsk.ops.embedding('x' as unknown as dsk.Tensor, table)).toThrow(/ids must be a Tensor/);
  });
});
