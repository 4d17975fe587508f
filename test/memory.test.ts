// Lifetime: dispose and the garbage collector return memory; 10,000 small tensors leave the device
// where it started.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { hasCuda, testDevices } from './helpers/devices';

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

describe.runIf(hasCuda)('device bytes are reported to V8', () => {
  it('a large device tensor raises external memory, disposing lowers it', () => {
    const base = process.memoryUsage().external;
    const t = dsk.empty([256 * 2 ** 20], { dtype: 'u8', device: 'cuda:0' });
    expect(process.memoryUsage().external - base).toBeGreaterThanOrEqual(256 * 2 ** 20);
    t.dispose();
    expect(process.memoryUsage().external - base).toBeLessThan(16 * 2 ** 20);
  });
});
