// Lifetime: dispose and the garbage collector return memory; 10,000 small tensors leave the device
// where it started.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { testDevices } from './helpers/devices';

const gc = (globalThis as { gc?: () => void }).gc;

async function collect(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(testDevices)('memory on %s', (device) => {
  it('10,000 small tensors created and disposed leave the device where it started', async () => {
    await dsk.synchronize(device);
    const before = dsk.memoryStats(device);
    for (let i = 0; i < 10_000; i++) {
      const t = dsk.randn([64], { seed: i, device });
      const u = t.cast('bf16');
      t.dispose();
      u.dispose();
    }
    await dsk.synchronize(device);
    const after = dsk.memoryStats(device);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    expect(after.liveBytes).toBe(before.liveBytes);
    if (device !== 'cpu') expect(after.used).toBe(before.used);
  });

  it('tensors dropped without dispose are reclaimed by the garbage collector', async () => {
    expect(gc, 'tests run with --expose-gc').toBeDefined();
    await collect();
    const before = dsk.memoryStats(device).liveBuffers;
    (() => {
      for (let i = 0; i < 500; i++) dsk.zeros([256], { device }).slice(0, 0, 8);
    })();
    expect(dsk.memoryStats(device).liveBuffers).toBeGreaterThan(before);
    await collect();
    await dsk.synchronize(device);
    expect(dsk.memoryStats(device).liveBuffers).toBe(before);
  });
});

describe.each(testDevices)('bytes are reported to V8 on %s', (device) => {
  const external = () => getNative().externalMemory();
  if (device === 'cpu') {
    it('a large tensor raises V8\'s external memory count, disposing lowers it', () => {
      const base = external();
      const t = dsk.empty([256 * 2 ** 20], { dtype: 'u8', device });
      expect(external() - base).toBe(256 * 2 ** 20);
      t.dispose();
      expect(external() - base).toBe(0);
    });
  } else {
    // Device bytes reach V8 with a slack of max(256 MiB, 1/8 of the count) (native/addon/addon.cc), so the
    // allocate-and-dispose churn of eager ops does not start GC work between every two ops.
    const slack = 256 * 2 ** 20;
    it('a tensor larger than the slack moves V8\'s count by its bytes give or take the slack, disposing moves it back', () => {
      const base = external();
      const t = dsk.empty([2 ** 30], { dtype: 'u8', device });
      expect(Math.abs(external() - base - 2 ** 30)).toBeLessThan(slack);
      t.dispose();
      expect(Math.abs(external() - base)).toBeLessThan(slack);
    });
    it('allocations and frees that stay within the slack leave the count alone', () => {
      const settle = dsk.empty([2 ** 30], { dtype: 'u8', device }); // a report: V8's count equals the live bytes
      const base = external();
      for (let i = 0; i < 8; i++) dsk.empty([64 * 2 ** 20], { dtype: 'u8', device }).dispose();
      expect(external()).toBe(base);
      settle.dispose();
      expect(external()).toBeLessThan(base);
    });
  }
});
