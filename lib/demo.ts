// `npm run demo`: lists devices, builds tensors, runs a few ops on each device and prints timings.
import * as dsk from './index';

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

async function main(): Promise<void> {
  console.log('deepseek-kernels demo\n');
  const devs = dsk.devices();
  for (const d of devs) {
    const extra = d.type === 'cuda'
      ? `${d.smCount} SMs, ${(d.totalMemory! / 2 ** 30).toFixed(1)} GiB, sm_${d.computeCapability!.replace('.', '')}`
      : `${d.threads} threads`;
    console.log(`  ${d.id.padEnd(7)} ${d.name} (${extra})`);
  }
  const st = dsk.cuda.status();
  if (!st.available) console.log(`  (no GPU: ${st.reason})`);
  console.log();

  for (const d of devs) {
    const dev = d.id;
    const [vals, ms] = await time(async () => {
      const x = dsk.randn([1024, 7168], { seed: 7, device: dev });
      const b = x.cast('bf16');
      const f8 = b.cast('fp8e4m3');
      const back = f8.cast('f32');
      const head = await back.slice(1, 0, 4).select(0, 0).toArray();
      [x, b, f8, back].forEach((t) => t.dispose());
      return head;
    });
    console.log(`${dev}: randn [1024, 7168] -> bf16 -> fp8e4m3 -> f32 in ${ms.toFixed(1)} ms; first values ${Array.from(vals as Float32Array, (v) => v.toFixed(3)).join(' ')}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
