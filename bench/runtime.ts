// `npm run bench:runtime`: the tensor runtime's kernels (casts, strided copy, random) against their
// memory floor, and the machine ceilings the other benchmarks compare with.
import * as dsk from '../lib/index';
import { Report, benchDevice, floorUs, measureCeilings, timeKernel } from './harness';

async function main(): Promise<void> {
  const device = benchDevice();
  const ceilings = await measureCeilings(device);
  console.log(`ceilings on ${device}: copy ${ceilings.copyGBps.toFixed(0)} GB/s` +
    (ceilings.bf16Tflops ? `, bf16 matmul ${ceilings.bf16Tflops.toFixed(0)} TFLOP/s` : '') +
    (ceilings.fp8Tflops ? `, fp8 matmul ${ceilings.fp8Tflops.toFixed(0)} TFLOP/s` : '') + '\n');
  const report = new Report('runtime', { ceilings });
  const n = device === 'cpu' ? 1 << 22 : 1 << 27;
  const x = dsk.randn([n], { seed: 1, device });
  const xb = x.cast('bf16');
  const m = dsk.randn([8192, n / 8192], { seed: 2, device, dtype: 'bf16' });
  // The model's head permutes ([T, heads, 128] <-> [heads, T, 128]): outer dims swapped, rows contiguous.
  const h = dsk.randn([n / (128 * 128), 128, 128], { seed: 4, device, dtype: 'bf16' });
  const cases: [string, () => dsk.Tensor, number][] = [
    ['cast f32->bf16', () => x.cast('bf16'), n * 6],
    ['cast bf16->fp8e4m3', () => xb.cast('fp8e4m3'), n * 3],
    ['cast bf16->f32', () => xb.cast('f32'), n * 6],
    ['transpose copy bf16', () => m.transpose().contiguous(), n * 4],
    ['permute copy bf16 [T,H,128]->[H,T,128]', () => h.permute([1, 0, 2]).contiguous(), n * 4],
    ['randn f32', () => dsk.randn([n], { seed: 3, device }), n * 4],
  ];
  for (const [name, run, bytes] of cases) {
    const t = await timeKernel(device, run);
    const floor = floorUs({ flops: 0, bytes }, ceilings);
    report.add({ kernel: name, elements: n, us: t.usPerCall, 'GB/s': bytes / (t.usPerCall * 1e3), floor_us: floor, 'x floor': t.usPerCall / floor });
  }
  report.write();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
