// npm run bench:gemm — the FP8 GEMMs on every shape of shared/TARGETS.md (normal, grouped contiguous,
// grouped masked): kernel time, TFLOP/s, GB/s, the ratio to the floor, to cuBLASLt's block-scaled FP8 GEMM
// timed the same way in this process, and to DeepGEMM when its numbers (bench/deepgemm_side.py, run in the
// same device session) are given.
//
//   node dist/bench/gemm.js [--json out.json] [--deepgemm dg.json] [--only normal|contiguous|masked]
//                           [--config NAME] [--sweep [--configs a,b,...]] [--shapes i,j,...]
//                           [--hold S] [--fp8-std A,B] [--matched]
// --matched also times ours in DeepGEMM's benchmark pattern (1 warm call, then 30 x [flush, call] once), first
// after the operands are made, as deepgemm_bench.py times DeepGEMM: on the power-bound shapes the default
// pattern (the median of 7 replays after a warm one, ~50 calls) runs hotter than DeepGEMM's (bench/NOTES.md, "v8").
// Meaningful for the large shapes only: the single replay also pays the graph's first launch (~1.5 us per call
// on shapes of 10-20 us), which DeepGEMM's profiler-summed kernel times do not include.
//   (DSK_GEMM_EXTRA_SHAPES="MxNxK,c:GxMxNxK,..." adds normal / contiguous shapes after the 25 of TARGETS.md)
// --config forces one kernel configuration; --sweep times every configuration on every shape, each in a
// child process (a failing one cannot take the others down), and reports the best per shape.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { Report, measureCeilings, timeKernel, type Row } from './harness';

type Kind = 'normal' | 'contiguous' | 'masked';
interface Shape {
  kind: Kind;
  groups: number;
  m: number; // normal: M; contiguous: rows per group; masked: maskedM per group (= Mmax)
  n: number;
  k: number;
}

const normal: [number, number, number][] = [
  [64, 2112, 7168], [64, 24576, 1536], [64, 32768, 512], [64, 7168, 16384], [64, 4096, 7168], [64, 7168, 2048],
  [128, 2112, 7168], [128, 24576, 1536], [128, 7168, 16384],
  [4096, 2112, 7168], [4096, 24576, 1536], [4096, 32768, 512], [4096, 7168, 16384], [4096, 4096, 7168], [4096, 7168, 2048],
];
export const SHAPES: Shape[] = [
  ...normal.map(([m, n, k]) => ({ kind: 'normal' as Kind, groups: 1, m, n, k })),
  { kind: 'contiguous', groups: 4, m: 8192, n: 4096, k: 7168 },
  { kind: 'contiguous', groups: 4, m: 8192, n: 7168, k: 2048 },
  { kind: 'contiguous', groups: 8, m: 4096, n: 4096, k: 7168 },
  { kind: 'contiguous', groups: 8, m: 4096, n: 7168, k: 2048 },
  { kind: 'masked', groups: 1, m: 1024, n: 4096, k: 7168 },
  { kind: 'masked', groups: 1, m: 1024, n: 7168, k: 2048 },
  { kind: 'masked', groups: 2, m: 512, n: 4096, k: 7168 },
  { kind: 'masked', groups: 2, m: 512, n: 7168, k: 2048 },
  { kind: 'masked', groups: 4, m: 256, n: 4096, k: 7168 },
  { kind: 'masked', groups: 4, m: 256, n: 7168, k: 2048 },
  // DSK_GEMM_EXTRA_SHAPES="MxNxK,c:GxMxNxK,..." appends normal shapes (e.g. the decode batch sizes) and contiguous
  // ones (G groups of M rows), indices 25 on; children of --sweep inherit it, so --shapes can name them.
  ...(process.env.DSK_GEMM_EXTRA_SHAPES ?? '')
    .split(',')
    .filter((x) => x.trim() !== '')
    .map((x) => {
      const dims = (x.startsWith('c:') ? x.slice(2) : x).split('x').map(Number);
      if (dims.length !== (x.startsWith('c:') ? 4 : 3) || !dims.every((d) => Number.isInteger(d) && d > 0)) {
        throw new RangeError(`DSK_GEMM_EXTRA_SHAPES: "${x}" is not MxNxK or c:GxMxNxK with positive integers`);
      }
      if (x.startsWith('c:')) {
        const [groups, m, n, k] = dims;
        return { kind: 'contiguous' as Kind, groups, m, n, k };
      }
      const [m, n, k] = dims;
      return { kind: 'normal' as Kind, groups: 1, m, n, k };
    }),
];

const PEAK_FLOPS = 1979e12; // H100 SXM dense FP8, boost clock (datasheet)
const DEVICE = 'cuda:0';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const has = (name: string): boolean => process.argv.includes(name);

function label(s: Shape): string {
  return s.kind === 'normal' ? `${s.m}x${s.n}x${s.k}` : `${s.kind[0]}:${s.groups}x${s.m}x${s.n}x${s.k}`;
}

// --fp8-std A,B: the standard deviations of the normal values cast to e4m3 for A and B (default 1,1). DeepGEMM's
// benchmark quantizes per 128-block to the full e4m3 range (amax -> 448), about std 160 / 110; a probe of whether
// the kernel's time depends on the operands' bits (power).
const FP8_STD = (arg('--fp8-std') ?? '1,1').split(',').map(Number);
if (FP8_STD.length !== 2 || !FP8_STD.every((x) => Number.isFinite(x) && x > 0)) {
  throw new RangeError(`--fp8-std: expected two positive numbers A,B, got ${arg('--fp8-std')}`);
}
const HOLD_S = Number(arg('--hold') ?? 0);
if (!Number.isFinite(HOLD_S) || HOLD_S < 0) throw new RangeError(`--hold: expected seconds >= 0, got ${arg('--hold')}`);

interface Operands {
  a: dsk.Tensor;
  sa: dsk.Tensor;
  b: dsk.Tensor;
  sb: dsk.Tensor;
  idx?: dsk.Tensor;
  out: dsk.Tensor;
  rows: number; // rows of a
  validRows: number;
  run: () => void;
}

function operands(s: Shape, seed: number): Operands {
  const rows = s.groups * s.m;
  const kb = s.k / 128;
  const aShape = s.kind === 'masked' ? [s.groups, s.m, s.k] : [rows, s.k];
  const a = dsk.randn(aShape, { seed, device: DEVICE, std: FP8_STD[0] }).cast('fp8e4m3');
  const sa = dsk.rand([...aShape.slice(0, -1), kb], { seed: seed + 1, device: DEVICE, low: 0.01, high: 0.02 });
  const bShape = s.kind === 'normal' ? [s.n, s.k] : [s.groups, s.n, s.k];
  const b = dsk.randn(bShape, { seed: seed + 2, device: DEVICE, std: FP8_STD[1] }).cast('fp8e4m3');
  const sb = dsk.rand([...bShape.slice(0, -2), Math.ceil(s.n / 128), kb], { seed: seed + 3, device: DEVICE, low: 0.001, high: 0.002 });
  const out = dsk.empty(s.kind === 'masked' ? [s.groups, s.m, s.n] : [rows, s.n], { dtype: 'bf16', device: DEVICE });
  let run: () => void;
  let idx: dsk.Tensor | undefined;
  if (s.kind === 'normal') run = () => dsk.ops.fp8Gemm(a, sa, b, sb, { out });
  else if (s.kind === 'contiguous') {
    const ids = new Int32Array(rows);
    for (let i = 0; i < rows; i++) ids[i] = Math.floor(i / s.m);
    idx = dsk.tensor(ids, { dtype: 'i32', device: DEVICE });
    run = () => dsk.ops.fp8GroupedGemmContiguous(a, sa, b, sb, idx!, { out });
  } else {
    idx = dsk.tensor(new Int32Array(s.groups).fill(s.m), { dtype: 'i32', device: DEVICE });
    run = () => dsk.ops.fp8GroupedGemmMasked(a, sa, b, sb, idx!, { out });
  }
  return { a, sa, b, sb, idx, out, rows, validRows: rows, run };
}

function dispose(o: Operands): void {
  for (const t of [o.a, o.sa, o.b, o.sb, o.idx, o.out]) t?.dispose();
}

// cuBLASLt on the same operands: one call (normal) or one per group (grouped layouts have no cuBLASLt op).
function cublasRunner(s: Shape, o: Operands): { run: () => void; out: dsk.Tensor; cleanup: () => void } | string {
  const n = getNative();
  const why = n.benchCublasLtStatus ? n.benchCublasLtStatus() : 'no CUDA bench helpers in this build';
  if (why) return why;
  const parts: { a: dsk.Tensor; saT: dsk.Tensor; b: dsk.Tensor; sb: dsk.Tensor; out: dsk.Tensor }[] = [];
  const out = dsk.empty([o.rows, s.n], { dtype: 'bf16', device: DEVICE });
  const a2 = o.a.view([o.rows, s.k]), sa2 = o.sa.view([o.rows, s.k / 128]);
  for (let g = 0; g < s.groups; g++) {
    const r0 = g * s.m, r1 = r0 + s.m;
    parts.push({
      a: a2.slice(0, r0, r1),
      saT: sa2.slice(0, r0, r1).transpose(0, 1).contiguous(), // cuBLASLt's 1x128 scales are M-major
      b: s.kind === 'normal' ? o.b : o.b.select(0, g),
      sb: s.kind === 'normal' ? o.sb : o.sb.select(0, g),
      out: out.slice(0, r0, r1),
    });
  }
  const run = (): void => {
    for (const p of parts) n.benchCublasLtFp8Gemm!(p.a, p.saT, p.b, p.sb, p.out);
  };
  try {
    run();
  } catch (e) {
    return (e as Error).message;
  }
  return { run, out, cleanup: () => (parts.forEach((p) => p.saT.dispose()), out.dispose()) };
}

async function relErrFirstRows(x: dsk.Tensor, y: dsk.Tensor, rows: number): Promise<number> {
  const r = Math.min(rows, x.shape[0]);
  const [a, b] = (await Promise.all([x.slice(0, 0, r).toArray(), y.slice(0, 0, r).toArray()])) as Float32Array[];
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

interface DgRow {
  kind: Kind;
  groups: number;
  m: number;
  n: number;
  k: number;
  deepgemm_us?: number;
  deepgemm_graph_us?: number;
  torch_cublaslt_us?: number;
}

function callsFor(flops: number): number {
  const estUs = flops / 1.0e12; // ~1000 TFLOP/s
  return estUs > 300 ? 6 : estUs > 50 ? 12 : 30;
}

async function benchOurs(shapes: Shape[], withCublas: boolean, report: Report, dg: DgRow[]): Promise<void> {
  for (const [i, s] of shapes.entries()) {
    const o = operands(s, 1000 + i * 10);
    const flops = 2 * o.validRows * s.n * s.k;
    const bytes = o.rows * s.k + s.groups * s.n * s.k + o.validRows * s.n * 2 + (o.rows * s.k) / 32 + (s.groups * Math.ceil(s.n / 128) * s.k) / 32;
    const calls = callsFor(flops);
    const choice = dsk.ops.fp8GemmTesting.choice(0, s.kind, s.m * (s.kind === 'contiguous' ? s.groups : 1), s.n, s.k, s.groups);
    let ours: number | null = null, matched: number | null = null, err = '';
    try {
      // --matched: first (right after the operands are made, as DeepGEMM's is), our kernel timed in
      // deepgemm_bench.py's pattern: one warm call, then 30 x [flush, call] back to back, once.
      if (has('--matched')) matched = (await timeKernel(DEVICE, o.run, { calls: 30, warmup: 1, replays: 1, preload: false })).usPerCall;
      ours = (await timeKernel(DEVICE, o.run, { calls })).usPerCall;
    } catch (e) {
      err = (e as Error).message;
    }
    // --check: this configuration's output against the portable kernel's, first and last 256 rows.
    let check: number | null = null;
    if (has('--check') && ours !== null) {
      try {
        o.run();
        const mine = o.out.view([o.rows, s.n]).clone();
        const forced = arg('--config') ?? '';
        dsk.ops.fp8GemmTesting.force('portable');
        o.run();
        dsk.ops.fp8GemmTesting.force(forced);
        const ref = o.out.view([o.rows, s.n]);
        const tail = (t: dsk.Tensor): dsk.Tensor => t.slice(0, Math.max(0, o.rows - 256), o.rows);
        check = Math.max(await relErrFirstRows(mine, ref, 256), await relErrFirstRows(tail(mine), tail(ref), 256));
        mine.dispose();
      } catch (e) {
        err = `check: ${(e as Error).message}`;
      }
    }
    let cl: number | null = null, clErr: number | null = null, clNote = '';
    if (err) console.error(`${label(s)}: ${err}`);
    if (withCublas) {
      let c: ReturnType<typeof cublasRunner>;
      try {
        c = cublasRunner(s, o);
      } catch (e) {
        c = (e as Error).message;
      }
      if (typeof c === 'string') clNote = c;
      else {
        try {
          cl = (await timeKernel(DEVICE, c.run, { calls })).usPerCall;
          o.run();
          clErr = await relErrFirstRows(c.out, o.out.view([o.rows, s.n]), 256);
        } catch (e) {
          clNote = (e as Error).message;
        }
        c.cleanup();
      }
    }
    const d = dg.find((r) => r.kind === s.kind && r.groups === s.groups && r.m === s.m && r.n === s.n && r.k === s.k);
    const floorUs = Math.max(flops / PEAK_FLOPS, bytes / 3.35e12) * 1e6;
    const row: Row = {
      shape: label(s),
      config: choice,
      us: ours,
      TFLOPs: ours ? flops / ours / 1e6 : null,
      'GB/s': ours ? bytes / ours / 1e3 : null,
      'floor us': floorUs,
      'of floor': ours ? floorUs / ours : null,
      'cuBLASLt us': cl,
      'ours/cuBLASLt': ours && cl ? cl / ours : null,
      'cuBLASLt err': clErr,
      'DeepGEMM us': d?.deepgemm_us ?? null,
      'ours/DeepGEMM': ours && d?.deepgemm_us ? d.deepgemm_us / ours : null,
      'check err': check,
      'DG graph us': d?.deepgemm_graph_us ?? null,
      'ours/DG graph': ours && d?.deepgemm_graph_us ? d.deepgemm_graph_us / ours : null,
      ...(has('--matched') ? { 'matched us': matched, 'ours/DG matched': matched && d?.deepgemm_us ? d.deepgemm_us / matched : null } : {}),
      note: [err, clNote].filter(Boolean).join('; ') || null,
    };
    report.add(row); // prints the row as it comes (partial results survive a cut-short run)
    // --hold S: then the same call back to back (no flush) for S seconds, for sampling the clock and power
    // (bench/gemm_clock.sh); prints the window's wall-clock bounds.
    const hold = HOLD_S;
    if (hold > 0 && ours !== null) {
      const t0 = Date.now();
      let calls = 0;
      while (Date.now() - t0 < hold * 1000) {
        for (let j = 0; j < 50; j++, calls++) o.run();
        await dsk.synchronize(DEVICE);
      }
      console.log(`hold ${label(s)} ${t0} ${Date.now()} ${calls}`);
    }
    dispose(o);
  }
}

async function main(): Promise<void> {
  if (!dsk.cuda.isAvailable()) {
    console.log(`bench:gemm needs a GPU: ${dsk.cuda.status().reason}`);
    return;
  }
  const only = arg('--only') as Kind | undefined;
  const pick = arg('--shapes')?.split(',').map(Number);
  const shapes = SHAPES.filter((s, i) => (!only || s.kind === only) && (!pick || pick.includes(i)));
  const jsonPath = arg('--json');
  const dg: DgRow[] = arg('--deepgemm') && fs.existsSync(arg('--deepgemm')!) ? JSON.parse(fs.readFileSync(arg('--deepgemm')!, 'utf8')) : [];
  const info = dsk.devices().find((d) => d.id === DEVICE);

  if (has('--sweep')) {
    // Every configuration on every shape, one child process per configuration.
    const configs = (arg('--configs')?.split(',') ?? dsk.ops.fp8GemmTesting.configs()).filter((c) => c !== 'portable');
    const rows: Row[] = [];
    for (const cfg of configs) {
      const tmp = `/tmp/dsk-gemm-sweep-${process.pid}-${cfg}.json`;
      const sel = shapes
        .filter((s) => !(cfg.startsWith('m128') && s.kind === 'normal' && s.m <= 64))
        .filter((s) => !(cfg.startsWith('m256') && s.kind === 'normal' && s.m <= 128))
        .filter((s) => !(s.kind !== 'normal' && cfg.endsWith('.mcB')))
        .map((s) => SHAPES.indexOf(s));
      const r = spawnSync(process.execPath, [__filename, '--config', cfg, '--json', tmp, '--shapes', sel.join(','), '--no-cublas', '--check'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 120_000,
      });
      if (r.status !== 0 || !fs.existsSync(tmp)) {
        console.log(`sweep ${cfg}: failed (${r.status ?? r.signal}) ${r.stderr?.toString().slice(-400)}`);
        rows.push({ config: cfg, failed: String(r.status ?? r.signal) });
        continue;
      }
      for (const row of JSON.parse(fs.readFileSync(tmp, 'utf8')).rows as Row[])
        rows.push({ config: cfg, shape: row.shape, us: row.us, TFLOPs: row.TFLOPs, check: row['check err'], note: row.note });
      fs.unlinkSync(tmp);
      console.log(`sweep ${cfg}: done`);
    }
    console.log(`\nFP8 GEMM sweep on ${info?.name}: best configuration per shape`);
    const best = new Report('gemm-sweep-best');
    for (const s of shapes) {
      // only configurations whose output matched the portable kernel's
      const rs = rows
        .filter((r) => r.shape === label(s) && typeof r.us === 'number' && typeof r.check === 'number' && (r.check as number) < 4e-3)
        .sort((x, y) => (x.us as number) - (y.us as number));
      best.add({ shape: label(s), best: (rs[0]?.config as string) ?? null, us: (rs[0]?.us as number) ?? null, TFLOPs: (rs[0]?.TFLOPs as number) ?? null, second: (rs[1]?.config as string) ?? null, us2: (rs[1]?.us as number) ?? null });
    }
    const bad = rows.filter((r) => r.failed || (typeof r.check === 'number' && (r.check as number) >= 4e-3) || r.note);
    if (bad.length) console.log(`\nsweep problems:\n${bad.map((r) => JSON.stringify(r)).join('\n')}`);
    best.write(jsonPath ? jsonPath.replace(/\.json$/, '') + '-best.json' : undefined);
    if (jsonPath) fs.writeFileSync(jsonPath, JSON.stringify({ device: info, rows }, null, 1));
    return;
  }

  if (arg('--config')) dsk.ops.fp8GemmTesting.force(arg('--config')!);
  const ceilings = has('--ceilings') ? await measureCeilings(DEVICE) : null;
  console.log(`\nFP8 GEMM (bf16 out, 1x128 x 128x128 scales) on ${info?.name}, L2 flushed before each call${arg('--config') ? `, config ${arg('--config')}` : ''}`);
  const report = new Report('gemm', {
    ceilings,
    method: 'bench/harness.ts timeKernel (CUDA graph of [256 MB L2 flush, call] pairs minus a graph of flushes); floor = max(flops / 1979 TFLOP/s, bytes / 3.35 TB/s)',
  });
  await benchOurs(shapes, !has('--no-cublas'), report, dg);
  if (ceilings) console.log(`\nceilings: copy ${ceilings.copyGBps.toFixed(0)} GB/s, fp8 ${ceilings.fp8Tflops?.toFixed(0) ?? '-'} TFLOP/s`);
  report.write(jsonPath);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
