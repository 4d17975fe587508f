// CUDA graphs: capture, replay with updated inputs, memory ownership, refusal of what cannot be captured.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda } from './helpers/devices';

describe('graphs without a GPU', () => {
  it.runIf(!hasCuda)('say that they need a CUDA device', () => {
    expect(() => dsk.cuda.graph('cpu', () => undefined)).toThrow(/graph/);
  });
  it('reject a cpu device by name', () => {
    expect(() => dsk.cuda.graph('cpu', () => undefined)).toThrow(TypeError);
  });
});

describe.runIf(hasCuda)('graphs on cuda:0', () => {
  it('replays the captured ops on the current contents of their inputs', async () => {
    const device = 'cuda:0';
    const input = dsk.zeros([4, 256], { device });
    const table = dsk.randn([50, 256], { seed: 5, device });
    const ids = dsk.tensor([3, 1, 4, 1], { dtype: 'i32', device });
    const g = dsk.cuda.graph(device, () => {
      const e = dsk.ops.embedding(ids, table);
      const out = e.cast('f32');
      e.dispose();
      input.copyFrom(out);
      return out;
    });
    // Nothing has run yet: replay, then read.
    g.replay();
    const tab = (await table.toArray()) as Float32Array;
    const first = (await g.outputs.toArray()) as Float32Array;
    expect(first.subarray(0, 256)).toEqual(tab.subarray(3 * 256, 4 * 256));
    // New ids, same graph.
    ids.copyFrom(dsk.tensor([7, 7, 0, 2], { dtype: 'i32', device }));
    g.replay();
    const second = (await g.outputs.toArray()) as Float32Array;
    expect(second.subarray(0, 256)).toEqual(tab.subarray(7 * 256, 8 * 256));
    expect((await input.toArray()).subarray(3 * 256, 4 * 256)).toEqual(tab.subarray(2 * 256, 3 * 256));
    expect(g.arenaBytes).toBeGreaterThan(0);
    const times = await g.time(3);
    expect(times.length).toBe(3);
    expect(times.every((t) => t > 0)).toBe(true);
    g.dispose();
    expect(() => g.replay()).toThrow(/disposed/);
    // Outputs of a disposed graph stay readable until they are disposed themselves.
    expect((await g.outputs.toArray()).length).toBe(1024);
  });

  it('refuses reads, host writes and nested captures while capturing, and recovers', async () => {
    const device = 'cuda:0';
    const x = dsk.randn([8], { seed: 1, device });
    let read: Promise<unknown> | undefined;
    const g = dsk.cuda.graph(device, () => {
      read = x.toArray();
    });
    await expect(read).rejects.toThrow(/capturing a graph/);
    g.dispose();
    expect(() => dsk.cuda.graph(device, () => dsk.tensor([1, 2, 3], { device }))).toThrow(/capturing a graph/);
    expect(() => dsk.cuda.graph(device, () => dsk.cuda.graph(device, () => 1))).toThrow(/already capturing/);
    expect(Array.from((await x.clone().toArray()) as Float32Array)).toEqual(Array.from((await x.toArray()) as Float32Array));
  });

  it('a graph keeps its input buffers alive after the tensors are disposed', async () => {
    const device = 'cuda:0';
    const a = dsk.randn([1024], { seed: 9, device });
    const want = (await a.toArray()) as Float32Array;
    const g = dsk.cuda.graph(device, () => a.cast('bf16').cast('f32'));
    a.dispose();
    // Allocate and overwrite memory that a freed `a` would have been recycled into.
    const junk = Array.from({ length: 8 }, () => dsk.full([1024], 123, { device }));
    g.replay();
    const got = (await g.outputs.toArray()) as Float32Array;
    for (let i = 0; i < 1024; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(Math.abs(want[i]) * 2 ** -8);
    junk.forEach((j) => j.dispose());
    g.dispose();
  });
});
