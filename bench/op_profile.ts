// Per-op device-time breakdown of eager work (the model runner's prefill): while active, every native call
// that enqueues device work (ops, copies, fills, host writes) is bracketed by two CUDA events on the
// device's queue. Afterwards each call's device time is end - start; the time between one call's end and
// the next call's start is work nobody labelled or the device idling while the host catches up ("gaps").
// Calls are grouped by op name + argument shapes (the same GEMM in every layer lands in one row).
// Timers are the EP benchmark's event API (epTimerCreate/Record/Elapsed), so no native change is needed.
// On the host side it adds up the time spent inside the native calls, inside storage allocations (which
// also tell V8 about their bytes), and in V8's garbage collector (performance 'gc' entries), so gaps can
// be told apart: host work between launches, allocation, or GC.
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { getNative } from '../lib/native';

type AnyFn = (...args: unknown[]) => unknown;

// Native functions that enqueue nothing on a device (or are themselves timing/graph machinery).
const SKIP = new Set([
  'Storage', 'setErrorClasses', 'buildInfo', 'cudaStatus', 'deviceInfo', 'memoryStats', 'read', 'synchronize',
  'externalMemory', 'captureBegin', 'captureEnd', 'flushL2', 'fp8GemmConfigs', 'fp8GemmForceConfig', 'fp8GemmChoice',
]);

interface Call {
  label: string;
  op: string;
  t0: number;
  t1: number;
}

export interface OpRow {
  op: string;
  label: string;
  calls: number;
  ms: number;
  share: number;
}

export interface HostTimes {
  /** Wall time from start() to stop(), ms. */
  wallMs: number;
  /** Inside the wrapped native calls (argument checks, launches), ms. */
  opsMs: number;
  /** Inside storage allocations: count and ms. */
  allocs: number;
  allocMs: number;
  /** V8 garbage collections in the window: count, ms, and ms by kind (major/minor/incremental/weakcb). */
  gcs: number;
  gcMs: number;
  gcByKind: Record<string, number>;
}

export interface Breakdown {
  host: HostTimes;
  /** Device time from the first call's start to the last call's end, ms. */
  spanMs: number;
  /** Sum of the labelled calls' device times, ms. */
  opsMs: number;
  /** By op name (all shapes together), largest first. */
  byOp: OpRow[];
  /** By op name + shapes, largest first. */
  byShape: OpRow[];
}

function describe(op: string, args: unknown[]): string {
  const parts: string[] = [];
  for (const a of args) {
    if (a && typeof a === 'object' && Array.isArray((a as { shape?: unknown }).shape)) {
      const t = a as { shape: number[]; strides: number[]; dtype: string };
      let contiguous = true, expect = 1;
      for (let d = t.shape.length - 1; d >= 0; d--) {
        if (t.shape[d] !== 1 && t.strides[d] !== expect) contiguous = false;
        expect *= t.shape[d];
      }
      parts.push(`${t.dtype}[${t.shape.join('x')}]${contiguous ? '' : '~'}`); // ~: strided view
    }
  }
  return `${op} ${parts.join(' ')}`;
}

/** Brackets device work with events while started; `collect()` turns the events into a breakdown. */
export class OpProfiler {
  private readonly native = getNative() as unknown as Record<string, unknown> & {
    epTimerCreate(device: number): number;
    epTimerRecord(id: number, onComm: boolean): void;
    epTimerElapsed(a: number, b: number): Promise<number>;
    epTimerDestroy(id: number): void;
  };
  private readonly saved = new Map<string, AnyFn>();
  private readonly pool: number[] = [];
  private readonly all: number[] = [];
  private calls: Call[] = [];
  private host: HostTimes = { wallMs: 0, opsMs: 0, allocs: 0, allocMs: 0, gcs: 0, gcMs: 0, gcByKind: {} };
  private t0 = 0;
  private observer: PerformanceObserver | null = null;

  constructor(private readonly device: number) {}

  private timer(): number {
    let id = this.pool.pop();
    if (id === undefined) {
      id = this.native.epTimerCreate(this.device);
      this.all.push(id);
    }
    return id;
  }

  start(): void {
    if (this.saved.size) throw new Error('OpProfiler already started');
    const n = this.native;
    for (const name of Object.keys(n)) {
      const f = n[name];
      if (typeof f !== 'function' || SKIP.has(name) || name.startsWith('ep') || name.startsWith('bench')) continue;
      this.saved.set(name, f as AnyFn);
      n[name] = (...args: unknown[]) => {
        const t0 = this.timer();
        n.epTimerRecord(t0, false);
        const h0 = performance.now();
        const r = (f as AnyFn).apply(n, args);
        this.host.opsMs += performance.now() - h0;
        const t1 = this.timer();
        n.epTimerRecord(t1, false);
        this.calls.push({ label: describe(name, args), op: name, t0, t1 });
        return r;
      };
    }
    const Storage = n.Storage as new (device: number, nbytes: number) => unknown;
    this.saved.set('Storage', Storage as unknown as AnyFn);
    const host = this.host;
    n.Storage = function (device: number, nbytes: number) {
      const h0 = performance.now();
      const s = new Storage(device, nbytes);
      host.allocMs += performance.now() - h0;
      host.allocs++;
      return s;
    };
    const kinds: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = kinds[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
        host.gcs++;
        host.gcMs += e.duration;
        host.gcByKind[kind] = (host.gcByKind[kind] ?? 0) + e.duration;
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.t0 = performance.now();
  }

  stop(): void {
    if (this.saved.size) this.host.wallMs += performance.now() - this.t0;
    for (const [name, f] of this.saved) this.native[name] = f;
    this.saved.clear();
  }

  /** Waits for the recorded work and returns its breakdown; the events go back to the pool. */
  async collect(): Promise<Breakdown> {
    const calls = this.calls;
    this.calls = [];
    await new Promise((r) => setTimeout(r, 50)); // let the gc observer deliver its last entries
    this.observer?.disconnect();
    this.observer = null;
    const host = this.host;
    this.host = { wallMs: 0, opsMs: 0, allocs: 0, allocMs: 0, gcs: 0, gcMs: 0, gcByKind: {} };
    const el = (a: number, b: number) => this.native.epTimerElapsed(a, b);
    const ms = await Promise.all(calls.map((c) => el(c.t0, c.t1)));
    const spanMs = calls.length ? await el(calls[0].t0, calls[calls.length - 1].t1) : 0;
    const gaps = await Promise.all(calls.slice(1).map((c, i) => el(calls[i].t1, c.t0)));
    for (const c of calls) this.pool.push(c.t0, c.t1);
    const group = (key: (c: Call) => string, op: (c: Call) => string) => {
      const m = new Map<string, OpRow>();
      calls.forEach((c, i) => {
        const k = key(c);
        const r = m.get(k) ?? { op: op(c), label: k, calls: 0, ms: 0, share: 0 };
        r.calls++;
        r.ms += ms[i];
        m.set(k, r);
      });
      const g = gaps.reduce((a, b) => a + b, 0);
      if (g > 0) m.set('(gaps)', { op: '(gaps)', label: '(gaps)', calls: gaps.length, ms: g, share: 0 });
      const rows = [...m.values()].sort((a, b) => b.ms - a.ms);
      for (const r of rows) r.share = spanMs > 0 ? r.ms / spanMs : 0;
      return rows;
    };
    const opsMs = ms.reduce((a, b) => a + b, 0);
    return { host, spanMs, opsMs, byOp: group((c) => c.op, (c) => c.op), byShape: group((c) => c.label, (c) => c.op) };
  }

  dispose(): void {
    this.stop();
    for (const id of this.all) this.native.epTimerDestroy(id);
    this.all.length = 0;
    this.pool.length = 0;
  }
}

/** Prints a breakdown as two tables (by op, then the largest op+shape rows). */
export function printBreakdown(title: string, b: Breakdown, top = 40): void {
  console.log(`\n${title}: device span ${b.spanMs.toFixed(2)} ms, labelled ops ${b.opsMs.toFixed(2)} ms`);
  const h = b.host;
  const kinds = Object.entries(h.gcByKind).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  console.log(`  host: wall ${h.wallMs.toFixed(1)} ms, in native calls ${h.opsMs.toFixed(1)} ms, ${h.allocs} allocations ${h.allocMs.toFixed(1)} ms, ` +
    `${h.gcs} GCs ${h.gcMs.toFixed(1)} ms (${kinds || 'none'})`);
  const line = (r: OpRow) => `${r.ms.toFixed(2).padStart(9)} ms ${(100 * r.share).toFixed(1).padStart(5)}% ${String(r.calls).padStart(5)}x  ${r.label}`;
  console.log('  by op:');
  for (const r of b.byOp) console.log('  ' + line(r));
  console.log(`  by op and shape (top ${top}):`);
  for (const r of b.byShape.slice(0, top)) console.log('  ' + line(r));
}
