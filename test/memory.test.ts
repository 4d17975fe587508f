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
  it('a large tensor raises V8\'s external memory count, disposing lowers it', () => {
    const external = () => getNative().externalMemory();
    const base = external();
    const t = dsk.empty([256 * 2 ** 20], { dtype: 'u8', device });
    expect(external() - base).toBe(256 * 2 ** 20);
    t.dispose();
    expect(external() - base).toBe(0);
  });
});
