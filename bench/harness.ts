// Benchmark harness: kernel time per call, as DESIGN.md prescribes.
//
// On a GPU, `timeKernel` captures a CUDA graph of `calls` x [L2 flush, one call] and another of the
// flushes alone, replays each several times with CUDA events around the replay, and reports
// (time(A) - time(B)) / calls: launch overhead is gone (one graph launch) and every call reads its
// inputs from HBM, not from a warm L2. The median over replays is the figure; the spread is kept.
// On the CPU it is the median wall time of single calls after warm-up.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { deviceIndex } from '../lib/device';

export interface TimeOptions {
  /** Calls per captured graph (default 20). */
  calls?: number;
  /** Eager calls before timing (default 3). */
  warmup?: number;
  /** Graph replays timed; the median is reported (default 7). */
  replays?: number;
  /** Bytes written to flush L2 before each call (default 256 MB, as DeepGEMM's benchmark; 0 = no flush). */
  flushBytes?: number;
  /** Replay the graph once untimed first (default true: lazy module loading, graph upload). */
  preload?: boolean;
}

export interface Timing {
  /** Median kernel time per call, microseconds. */
  usPerCall: number;
  /** Per-replay estimates of the time per call, microseconds. */
  samples: number[];
}

type RunResult = void | dsk.Tensor | readonly dsk.Tensor[] | Record<string, unknown>;

function disposeResult(r: RunResult): void {
  if (!r) return;
  if (r instanceof dsk.Tensor) r.dispose();
  else for (const v of Object.values(r)) if (v instanceof dsk.Tensor) v.dispose();
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times one call of `run` (which enqueues the kernel under test and may return the tensors it
 * created; they are disposed after each call so captured memory is reused).
 */
export async function timeKernel(device: string, run: () => RunResult, opts: TimeOptions = {}): Promise<Timing> {
  const calls = opts.calls ?? 20, warmup = opts.warmup ?? 3, replays = opts.replays ?? 7;
  const flushBytes = opts.flushBytes ?? 256 * 2 ** 20;
  const idx = deviceIndex(device as dsk.DeviceLike);
  for (let i = 0; i < warmup; i++) disposeResult(run());
  await dsk.synchronize(device as dsk.DeviceLike);
  if (idx < 0) {
    const samples: number[] = [];
    for (let i = 0; i < Math.max(replays, 5); i++) {
      const t0 = performance.now();
      disposeResult(run());
      await dsk.synchronize('cpu');
      samples.push((performance.now() - t0) * 1000);
    }
    return { usPerCall: median(samples), samples };
  }
  const native = getNative();
  const flush = () => {
    if (flushBytes > 0) native.flushL2(idx, flushBytes);
  };
  flush(); // allocates the scratch buffer outside the capture
  const withCalls = dsk.cuda.graph(device as dsk.DeviceLike, () => {
    for (let i = 0; i < calls; i++) {
      flush();
      disposeResult(run());
    }
  });
  const flushesOnly = dsk.cuda.graph(device as dsk.DeviceLike, () => {
    for (let i = 0; i < calls; i++) flush();
  });
  try {
    if (opts.preload ?? true) await withCalls.time(1); // first replay pays for lazy module loading
    const a = await withCalls.time(replays);
    const b = await flushesOnly.time(replays);
    const base = median(Array.from(b));
    const samples = Array.from(a, (ms) => ((ms - base) / calls) * 1000);
    return { usPerCall: median(samples), samples };
  } finally {
    withCalls.dispose();
    flushesOnly.dispose();
  }
}

export interface Ceilings {
  device: string;
  /** Device-to-device copy, bytes read + written per second, GB/s. */
  copyGBps: number;
  /** Dense matrix product rates measured here at 8192^3, TFLOP/s: the best of our GEMMs and cuBLASLt's (when loadable). */
  bf16Tflops?: number;
  fp8Tflops?: number;
}

/** Measures the machine's ceilings: a large device copy and large dense matrix products. */
export async function measureCeilings(device: string): Promise<Ceilings> {
  const dev = device as dsk.DeviceLike;
  const onGpu = deviceIndex(dev) >= 0;
  const nbytes = onGpu ? 2 ** 30 : 2 ** 27;
  const src = dsk.empty([nbytes], { dtype: 'u8', device: dev });
  const dst = dsk.empty([nbytes], { dtype: 'u8', device: dev });
  getNative().fill(src, 7);
  const copy = await timeKernel(device, () => getNative().transfer(dst.storage, 0, src.storage, 0, nbytes), {
    flushBytes: 0,
    calls: onGpu ? 10 : 1,
    replays: 5,
  });
  src.dispose();
  dst.dispose();
  const out: Ceilings = { device, copyGBps: (2 * nbytes) / (copy.usPerCall * 1e-6) / 1e9 };
  // Matrix rates: the best of our kernel and cuBLASLt (when a libcublasLt can be loaded) at 8192^3.
  const n = onGpu ? 8192 : 512;
  const native = getNative() as unknown as {
    benchCublasLtStatus?: () => string;
    benchCublasLtGemm?: (a: dsk.Tensor, b: dsk.Tensor, out: dsk.Tensor) => void;
    benchCublasLtFp8Gemm?: (a: dsk.Tensor, saT: dsk.Tensor, b: dsk.Tensor, sb: dsk.Tensor, out: dsk.Tensor) => void;
  };
  const lt = onGpu && native.benchCublasLtStatus?.() === '';
  const rate = async (run: () => unknown) => (2 * n ** 3) / ((await timeKernel(device, run as () => void, { flushBytes: 0, calls: onGpu ? 5 : 1 })).usPerCall * 1e-6) / 1e12;
  {
    const a = dsk.randn([n, n], { seed: 1, dtype: 'bf16', device: dev });
    const b = dsk.randn([n, n], { seed: 2, dtype: 'bf16', device: dev });
    out.bf16Tflops = await rate(() => dsk.ops.gemm(a, b));
    if (lt) {
      const d = dsk.empty([n, n], { dtype: 'bf16', device: dev });
      out.bf16Tflops = Math.max(out.bf16Tflops, await rate(() => native.benchCublasLtGemm!(a, b, d)));
      d.dispose();
    }
    a.dispose();
    b.dispose();
  }
  {
    const a = dsk.randn([n, n], { seed: 1, dtype: 'fp8e4m3', device: dev });
    const b = dsk.randn([n, n], { seed: 2, dtype: 'fp8e4m3', device: dev });
    const sa = dsk.rand([n, n / 128], { seed: 3, low: 0.5, high: 1, device: dev });
    const sb = dsk.rand([n / 128, n / 128], { seed: 4, low: 0.5, high: 1, device: dev });
    out.fp8Tflops = await rate(() => dsk.ops.fp8Gemm(a, sa, b, sb));
    if (lt) {
      const saT = sa.transpose().contiguous();
      const d = dsk.empty([n, n], { dtype: 'bf16', device: dev });
      out.fp8Tflops = Math.max(out.fp8Tflops, await rate(() => native.benchCublasLtFp8Gemm!(a, saT, b, sb, d)));
      [saT, d].forEach((x) => x.dispose());
    }
    [a, b, sa, sb].forEach((x) => x.dispose());
  }
  return out;
}

export interface Work {
  /** Floating-point operations of one call. */
  flops: number;
  /** Fewest bytes one call must move through device memory (inputs read once, outputs written once). */
  bytes: number;
  /** Which measured matrix rate bounds the flops ('bf16' | 'fp8'); CUDA-core work uses none. */
  rate?: 'bf16' | 'fp8';
}

/** The floor of a call: the larger of flops over the measured rate and bytes over the copy bandwidth. */
export function floorUs(w: Work, c: Ceilings): number {
  const memUs = (w.bytes / (c.copyGBps * 1e9)) * 1e6;
  const rate = w.rate === 'fp8' ? c.fp8Tflops : w.rate === 'bf16' ? c.bf16Tflops : undefined;
  const computeUs = rate ? (w.flops / (rate * 1e12)) * 1e6 : 0;
  return Math.max(memUs, computeUs);
}

export type Row = Record<string, string | number | boolean | null | undefined>;

/** Collects rows, prints them as a table, writes them (with the ceilings and machine) as JSON. */
export class Report {
  readonly rows: Row[] = [];
  constructor(readonly name: string, readonly meta: Record<string, unknown> = {}) {}

  add(row: Row): void {
    this.rows.push(row);
    const cols = Object.keys(row);
    if (this.rows.length === 1) console.log(cols.map((c) => c.padStart(Math.max(8, c.length))).join(' '));
    console.log(cols.map((c) => fmt(row[c]).padStart(Math.max(8, c.length))).join(' '));
  }

  /** Writes JSON to `path`, or to $DSK_BENCH_OUT/<name>.json, or bench/results/<name>.json. */
  write(path?: string): string {
    const p = path ?? `${process.env.DSK_BENCH_OUT ?? 'bench/results'}/${this.name}.json`;
    mkdirSync(dirname(p), { recursive: true });
    const devices = dsk.devices();
    writeFileSync(p, JSON.stringify({ name: this.name, date: new Date().toISOString(), devices, ...this.meta, rows: this.rows }, null, 1));
    console.log(`\nwrote ${p}`);
    return p;
  }
}

function fmt(v: Row[string]): string {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
  }
  return v === undefined || v === null ? '-' : String(v);
}

/** The device a benchmark runs on: --device X, else cuda:0 when present, else cpu. */
export function benchDevice(argv = process.argv): dsk.Device {
  const i = argv.indexOf('--device');
  if (i >= 0 && argv[i + 1]) return argv[i + 1] as dsk.Device;
  return dsk.cuda.isAvailable() ? 'cuda:0' : 'cpu';
}
