// Benchmark timing (a minimal local implementation of the API the lead's bench/harness.ts provides; swap in
// the shared one when it lands on main).
//
// timeKernel: CUDA-event timing of a CUDA graph of [L2 flush, call] pairs minus the same graph of flushes,
// median over replays: launch overhead is excluded, and every call starts with a cold L2 as in production
// (weights streamed from HBM). `run` must enqueue without allocating (pass preallocated outputs).
import * as fs from 'node:fs';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';
import { resolveDevice } from '../lib/device';

export interface TimeOptions {
  /** Calls per graph (default 20). */
  calls?: number;
  /** Untimed calls before capture (default 3). */
  warmup?: number;
  /** Bytes written before each call to evict L2 (default 256 MB, as DeepGEMM's own benchmark). */
  flushBytes?: number;
  /** Timed graph replays; the median is reported (default 9). */
  replays?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const flushBuffers = new Map<string, dsk.Tensor>();

/** Kernel time per call of `run` on `device`, L2 flushed before each call. */
export async function timeKernel(device: string, run: () => void, opts: TimeOptions = {}): Promise<{ usPerCall: number; samples: number[] }> {
  const n = getNative();
  if (!n.benchGraphBegin || !n.benchGraphEnd || !n.benchGraphReplay) throw new Error('timeKernel: this build has no CUDA graph helpers');
  const dev = resolveDevice(device as dsk.DeviceLike);
  const calls = opts.calls ?? 20, warmup = opts.warmup ?? 3, replays = opts.replays ?? 9;
  const flushBytes = opts.flushBytes ?? 256 * 2 ** 20;
  const key = `${device}:${flushBytes}`;
  let flush = flushBuffers.get(key);
  if (!flush) {
    flush = dsk.empty([flushBytes], { dtype: 'u8', device: device as dsk.DeviceLike });
    flushBuffers.set(key, flush);
  }
  for (let i = 0; i < warmup; i++) run();
  await dsk.synchronize(device as dsk.DeviceLike);
  const capture = (withCalls: boolean): unknown => {
    n.benchGraphBegin!(dev);
    try {
      for (let i = 0; i < calls; i++) {
        n.fill(flush!, i & 127);
        if (withCalls) run();
      }
    } catch (e) {
      n.benchGraphEnd!(dev);
      throw e;
    }
    return n.benchGraphEnd!(dev);
  };
  const gCalls = capture(true), gFlush = capture(false);
  const tCalls: number[] = [], tFlush: number[] = [];
  for (let r = 0; r < replays; r++) {
    tCalls.push(...n.benchGraphReplay!(gCalls, 1));
    tFlush.push(...n.benchGraphReplay!(gFlush, 1));
  }
  const base = median(tFlush);
  const samples = tCalls.map((t) => ((t - base) * 1000) / calls);
  return { usPerCall: ((median(tCalls) - base) * 1000) / calls, samples };
}

/** Device-to-device copy bandwidth (bytes read + written per second), the memory-bound ceiling. */
export async function measureCeilings(device: string): Promise<{ copyBytesPerSec: number }> {
  const bytes = 1 << 30;
  const src = dsk.empty([bytes], { dtype: 'u8', device: device as dsk.DeviceLike });
  const dst = dsk.empty([bytes], { dtype: 'u8', device: device as dsk.DeviceLike });
  const n = getNative();
  const { usPerCall } = await timeKernel(device, () => n.copy(dst, src), { calls: 5, replays: 5, flushBytes: 1 << 20 });
  src.dispose();
  dst.dispose();
  return { copyBytesPerSec: (2 * bytes) / (usPerCall * 1e-6) };
}

export type Cell = string | number | null;

/** Rows of results: a table on stdout and the same rows as JSON. */
export class Report {
  readonly rows: Record<string, Cell>[] = [];
  constructor(readonly title: string, readonly columns: string[]) {}

  add(row: Record<string, Cell>): void {
    this.rows.push(row);
  }

  print(): void {
    const fmt = (v: Cell): string => (v === null || v === undefined ? '-' : typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : v);
    const cells = this.rows.map((r) => this.columns.map((c) => fmt(r[c])));
    const widths = this.columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
    console.log(`\n${this.title}`);
    console.log(this.columns.map((c, i) => c.padStart(widths[i])).join('  '));
    for (const r of cells) console.log(r.map((v, i) => v.padStart(widths[i])).join('  '));
  }

  writeJson(path: string, extra: Record<string, unknown> = {}): void {
    fs.writeFileSync(path, JSON.stringify({ title: this.title, ...extra, rows: this.rows }, null, 1));
  }
}
