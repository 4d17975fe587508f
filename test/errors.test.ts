// Bad input never crashes the process and never leaks: every entry point throws a TypeError or
// RangeError that names the argument, before anything is enqueued. Property-based over many inputs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { testDevices } from './helpers/devices';

const badShapes = fc.oneof(
  fc.constant(undefined), fc.constant(null), fc.string(), fc.double(), fc.constant({}),
  fc.array(fc.oneof(fc.constant(-1), fc.constant(NaN), fc.constant(Infinity), fc.constant(1.5), fc.constant('3'), fc.constant(2 ** 60)), { minLength: 1, maxLength: 4 }),
  fc.array(fc.nat(3), { minLength: 9, maxLength: 12 }),
);
const badDtypes = fc.oneof(fc.string().filter((s) => !(dsk.DTYPES as readonly string[]).includes(s)), fc.integer(), fc.constant(null), fc.constant({}));
const badDevices = fc.oneof(fc.constant('gpu'), fc.constant('cuda:x'), fc.constant('cuda:99'), fc.constant(-5), fc.constant(1.5), fc.constant({}), fc.string().filter((s) => s !== 'cpu' && !/^cuda(:\d+)?$/.test(s)));

function expectClearError(fn: () => unknown, name: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a throw').toBeDefined();
  expect(err instanceof TypeError || err instanceof RangeError, String(err)).toBe(true);
  expect((err as Error).message).toMatch(name);
}

describe('factories reject bad arguments with a clear error', () => {
  it('shapes', () => {
    fc.assert(fc.property(badShapes, (s) => {
      for (const f of [dsk.empty, dsk.zeros, dsk.randn] as ((s: unknown) => unknown)[]) expectClearError(() => f(s), /shape/);
    }), { numRuns: 300 });
  });
  it('dtypes', () => {
    fc.assert(fc.property(badDtypes, (d) => {
      expectClearError(() => dsk.zeros([2], { dtype: d as dsk.DType }), /dtype/);
      expectClearError(() => dsk.tensor([1, 2], { dtype: d as dsk.DType }), /dtype/);
    }), { numRuns: 200 });
  });
  it('devices', () => {
    fc.assert(fc.property(badDevices, (d) => {
      expectClearError(() => dsk.zeros([2], { device: d as dsk.Device }), /device/);
    }), { numRuns: 200 });
  });
  it('data, seeds, options and sizes', () => {
    expectClearError(() => dsk.tensor('abc' as never), /data/);
    expectClearError(() => dsk.tensor([[1, 2], [3]]), /ragged/);
    expectClearError(() => dsk.tensor([1, 2, 3], { shape: [2, 2] }), /holds 4 elements but data has 3/);
    expectClearError(() => dsk.tensor(['x'] as never), /numbers or bigints/);
    expectClearError(() => dsk.randn([2], { seed: -1 }), /seed/);
    expectClearError(() => dsk.randn([2], { seed: 2 ** 64 + 0.5 }), /seed/);
    expectClearError(() => dsk.randn([2], { seed: 2n ** 64n }), /seed/);
    expectClearError(() => dsk.randint([2], 5, 5), /high/);
    expectClearError(() => dsk.zeros([2], 'cpu' as never), /options must be an object/);
    expectClearError(() => dsk.fromBytes(new Uint8Array(3), { dtype: 'bf16' }), /bytes has 3 bytes/);
    expectClearError(() => dsk.empty([2 ** 30, 2 ** 30]), /needs .* bytes, more than/);
    expectClearError(() => dsk.empty([2 ** 43], { dtype: 'u8' }), /cannot allocate .* bytes on cpu/);
  });
});

describe.each(testDevices)('tensor methods reject bad arguments on %s', (device) => {
  it('views, casts and transfers', () => {
    const x = dsk.randn([4, 6], { seed: 1, device });
    fc.assert(fc.property(fc.oneof(fc.integer({ min: -20, max: 20 }), fc.double(), fc.constant('1')), (d) => {
      if (Number.isInteger(d) && (d as number) >= -2 && (d as number) < 2) return;
      expectClearError(() => x.select(d as number, 0), /dim|index/);
    }), { numRuns: 200 });
    expectClearError(() => x.select(0, 4), /index 4 is out of range/);
    expectClearError(() => x.reshape([5, -1]), /invalid/);
    expectClearError(() => x.reshape([-1, -1]), /only one dimension/);
    expectClearError(() => x.permute([0, 0]), /repeat/);
    expectClearError(() => x.slice(0, 0, 2, 0), /step/);
    expectClearError(() => x.cast('f64' as never), /dtype/);
    expectClearError(() => x.to('tpu' as never), /device/);
    expectClearError(() => x.copyFrom(dsk.zeros([3], { device })), /differs/);
    x.dispose();
    expectClearError(() => x.reshape([24]), /disposed/);
    expectClearError(() => x.to('cpu'), /disposed/);
  });

  it('the native layer checks counts, kinds and bounds itself', () => {
    const n = getNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const t = dsk.zeros([4], { device });
    expectClearError(() => n.copy(), /copy: expected 2 arguments, got 0/);
    expectClearError(() => n.copy(t, {}), /src must be a Tensor/);
    expectClearError(() => n.copy(t, 5), /src must be a Tensor/);
    // A forged view reaching past its storage is refused, not read.
    const forged = { storage: t.storage, offset: 2, shape: [4], strides: [1], dtype: 'f32' };
    expectClearError(() => n.copy(t, forged), /reaches outside its storage/);
    const negative = { storage: t.storage, offset: 0, shape: [4], strides: [-1], dtype: 'f32' };
    expectClearError(() => n.copy(t, negative), /reaches outside its storage/);
    expectClearError(() => n.copy(t, { ...forged, offset: 0, dtype: 'f128' }), /unknown dtype/);
    expectClearError(() => n.read(t.storage, 8, 100), /reach outside the storage/);
    expectClearError(() => n.write(t.storage, 0, 'abc'), /data must be a TypedArray/);
    expectClearError(() => new (getNative().Storage)(-2, 4), /device/);
    expectClearError(() => new (getNative().Storage)(-1, -4), /nbytes/);
    expectClearError(() => n.random(t, 7, 0, 0, 0, 1), /kind/);
  });

  it('the ops check their arguments', () => {
    const table = dsk.randn([10, 4], { device });
    fc.assert(fc.property(fc.oneof(fc.constant(null), fc.constant(3), fc.constant('ids'), fc.constant({})), (bad) => {
      expectClearError(() => dsk.ops.embedding(bad as never, table), /embedding: ids must be a Tensor/);
    }));
  });
});

describe('no leak after many failures', () => {
  it('rejected calls allocate nothing', () => {
    const before = dsk.memoryStats('cpu').liveBuffers;
    for (let i = 0; i < 2000; i++) {
      try { dsk.tensor([1, 2, 3], { shape: [5] }); } catch { /* expected */ }
      try { dsk.ops.embedding(dsk.tensor([1.5]) as never, null as never); } catch { /* expected */ }
    }
    // The f32 tensors built as arguments above are collectable; what matters is the rejected calls held none.
    (globalThis as { gc?: () => void }).gc?.();
    expect(dsk.memoryStats('cpu').liveBuffers - before).toBeLessThan(2001);
  });
});
