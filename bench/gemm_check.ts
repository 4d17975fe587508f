// Device smoke check of every FP8 GEMM kernel configuration, each in its own process with a time limit,
// so one configuration that faults or hangs cannot hide the others. Prints one line per (config, case)
// as it goes: the relative error against the CPU reference (which the tests check against float64).
//   node dist/bench/gemm_check.js [--timeout-ms 30000]        (the test suite remains the real check)
import { spawnSync } from 'node:child_process';
import * as dsk from '../lib/index';

const DEVICE: dsk.Device = 'cuda:0';
const TOL = 4e-3;

interface Case {
  name: string;
  make: () => { run: (dev: dsk.Device) => dsk.Tensor; rowOk: (r: number) => boolean; n: number };
}

function operands(aShape: number[], bShape: number[], seed: number) {
  const k = aShape[aShape.length - 1], n = bShape[bShape.length - 2];
  const a = dsk.randn(aShape, { seed }).cast('fp8e4m3');
  const sa = dsk.rand([...aShape.slice(0, -1), k / 128], { seed: seed + 1, low: 0.02, high: 0.2 });
  const b = dsk.randn(bShape, { seed: seed + 2 }).cast('fp8e4m3');
  const sb = dsk.rand([...bShape.slice(0, -2), Math.ceil(n / 128), k / 128], { seed: seed + 3, low: 0.001, high: 0.01 });
  return { a, sa, b, sb, n };
}

const normal = (m: number, n: number, k: number): Case => ({
  name: `${m}x${n}x${k}`,
  make: () => {
    const o = operands([m, k], [n, k], m + n + k);
    return { n, rowOk: () => true, run: (dev) => dsk.ops.fp8Gemm(o.a.to(dev), o.sa.to(dev), o.b.to(dev), o.sb.to(dev)) };
  },
});

const CASES: Case[] = [
  normal(1, 2112, 256),
  normal(65, 112, 512),
  normal(64, 2112, 7168),
  normal(200, 160, 384),
  normal(513, 7168, 256),
  normal(130, 24576, 256),
  {
    name: 'contiguous 4 experts (300, 0, 128, 5 rows) n=2112',
    make: () => {
      const idx: number[] = [];
      [300, 0, 128, 5].forEach((s, g) => {
        for (let i = 0; i < Math.ceil(s / 128) * 128; i++) idx.push(i < s ? g : -1);
      });
      const o = operands([idx.length, 256], [4, 2112, 256], 7);
      const mi = dsk.tensor(idx, { dtype: 'i32' });
      return {
        n: 2112,
        rowOk: (r) => idx[r] >= 0,
        run: (dev) => dsk.ops.fp8GroupedGemmContiguous(o.a.to(dev), o.sa.to(dev), o.b.to(dev), o.sb.to(dev), mi.to(dev), { out: dsk.full([idx.length, 2112], 7, { dtype: 'bf16', device: dev }) }),
      };
    },
  },
  {
    name: 'contiguous unaligned segments n=160',
    make: () => {
      const idx = Array.from({ length: 333 }, (_, r) => (r % 41 === 3 ? -1 : [1, 3, 0, 2][Math.floor(r / 90)]));
      const o = operands([333, 256], [4, 160, 256], 8);
      const mi = dsk.tensor(idx, { dtype: 'i32' });
      return {
        n: 160,
        rowOk: (r) => idx[r] >= 0,
        run: (dev) => dsk.ops.fp8GroupedGemmContiguous(o.a.to(dev), o.sa.to(dev), o.b.to(dev), o.sb.to(dev), mi.to(dev), { out: dsk.full([333, 160], 5, { dtype: 'bf16', device: dev }) }),
      };
    },
  },
  {
    name: 'masked 4 groups (0, 320, 129, 64 of 320) n=2112',
    make: () => {
      const masked = [0, 320, 129, 64];
      const o = operands([4, 320, 1024], [4, 2112, 1024], 9);
      const mm = dsk.tensor(masked, { dtype: 'i32' });
      return {
        n: 2112,
        rowOk: (r) => r % 320 < masked[Math.floor(r / 320)],
        run: (dev) => dsk.ops.fp8GroupedGemmMasked(o.a.to(dev), o.sa.to(dev), o.b.to(dev), o.sb.to(dev), mm.to(dev), { out: dsk.full([4, 320, 2112], 9, { dtype: 'bf16', device: dev }) }),
      };
    },
  },
];

async function child(cfg: string): Promise<void> {
  dsk.ops.fp8GemmTesting.force(cfg);
  for (const c of CASES) {
    const t0 = Date.now();
    const { run, rowOk, n } = c.make();
    const want = (await run('cpu').toArray()) as Float32Array;
    const got = (await run(DEVICE).toArray()) as Float32Array;
    let num = 0, den = 0, untouched = 0;
    for (let i = 0; i < want.length; i++) {
      if (!rowOk(Math.floor(i / n))) {
        if (got[i] !== want[i]) untouched++;
        continue;
      }
      num += (got[i] - want[i]) ** 2;
      den += want[i] ** 2;
    }
    const err = Math.sqrt(num / den);
    const ok = err < TOL && untouched === 0;
    console.log(`${ok ? 'PASS' : 'FAIL'} ${cfg.padEnd(14)} ${c.name.padEnd(48)} err ${err.toExponential(2)}${untouched ? ` overwrote ${untouched}` : ''} ${Date.now() - t0} ms`);
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i >= 0) return child(process.argv[i + 1]);
  if (!dsk.cuda.isAvailable()) {
    console.log(`gemm_check needs a GPU: ${dsk.cuda.status().reason}`);
    return;
  }
  const ti = process.argv.indexOf('--timeout-ms');
  const timeout = ti >= 0 ? Number(process.argv[ti + 1]) : 30_000;
  const only = process.argv.indexOf('--configs');
  const configs = only >= 0 ? process.argv[only + 1].split(',') : dsk.ops.fp8GemmTesting.configs();
  let bad = 0;
  for (const cfg of configs) {
    const r = spawnSync(process.execPath, [__filename, '--child', cfg], { encoding: 'utf8', timeout });
    const out = (r.stdout ?? '').trim();
    if (out) console.log(out);
    if (r.status !== 0) {
      bad++;
      console.log(`FAIL ${cfg.padEnd(14)} process ${r.signal ? `killed (${r.signal}, hang?)` : `exit ${r.status}`}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    } else if (out.includes('FAIL')) bad++;
  }
  console.log(`gemm_check: ${configs.length - bad} configurations passed, ${bad} failed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
