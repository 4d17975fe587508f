// Diagnostic for the Hopper FP8 GEMM: where one K block's time goes. With DSK_FP8_GEMM_TRACE=<file> the
// native side makes CTA 0 of each (uncaptured) launch stamp clock64 at every pipeline step and appends the
// stamps to <file>; this script runs each shape once warm and once after a 256 MB L2 flush, then prints the
// medians over the steady-state steps of the flushed run (ns):
// (Since v7 the consumer reads K block kb + 1's scales, its "full wait done" stamp, while kb's last wave runs or
// right after kb's release, i.e. before kb's promotion: `wait` is then negative and `mma` includes the previous
// block's promotion; `period` is unchanged.)
//   period   consumer: one K block (full wait done -> next full wait done)
//   wait     consumer: time blocked on the full barrier (promotion done -> full wait done)
//   mma      consumer: 4 WGMMAs + wait_group 0 (full wait done -> wgmma done, all waves)
//   promote  consumer: release + scaling FMAs (wgmma done -> promotion done)
//   lead     producer issue done -> consumer full wait done for the same step (load latency + queueing)
//   pwait    producer: time blocked on the empty barrier
//   issue    producer: empty wait done -> issue done (expect_tx + the TMA instructions, or the cp.async copies)
//   epi      consumer: epilogue per tile
//   DSK_FP8_GEMM_TRACE=/tmp/t.jsonl node dist/bench/gemm_trace.js [--json out.json] [--steps] M,N,K[,config] ...
// --steps also prints CTA 0's steps one per line (ns from the kernel's start): the producer's empty wait start and
// issue done, the consumer's full wait done and release, and per tile the epilogue; then the medians of the K
// blocks that start a tile against the others (is a tile's first stage late, and is it issued late or slow to land?).
import * as fs from 'node:fs';
import * as dsk from '../lib/index';
import { getNative } from '../lib/native';

const DEVICE = 'cuda:0';

interface TraceLine {
  m: number;
  n: number;
  k: number;
  config: string;
  stages: number;
  ctas: number;
  prod: number;
  cons: number;
  tile: number;
  w: number[];
}

const med = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

// clock64 ticks per ns: the kernel's clock64 span over its globaltimer span (CTA 0's first and last stamps).
const ticksPerNs = (w: number[]): number => (w[2] - w[0]) / (w[3] - w[1]);

function summarize(t: TraceLine): Record<string, number | string> {
  const w = t.w;
  const ghz = ticksPerNs(w);
  const ns = (c: number) => c / ghz;
  const steps: { pe: number; pi: number; cf: number; cm: number; cp: number }[] = [];
  for (let i = 0; i < 1024; i++) {
    const pe = w[t.prod + 2 * i], pi = w[t.prod + 2 * i + 1];
    const cf = w[t.cons + 3 * i], cm = w[t.cons + 3 * i + 1], cp = w[t.cons + 3 * i + 2];
    if (!cf) break;
    steps.push({ pe, pi, cf, cm, cp });
  }
  const tiles: number[] = [];
  for (let i = 0; i < 256; i++) {
    const a = w[t.tile + 2 * i], b = w[t.tile + 2 * i + 1];
    if (!a) break;
    tiles.push(ns(b - a));
  }
  // steady state: skip the first S steps (pipeline fill)
  const ss = steps.slice(Math.min(t.stages, Math.max(0, steps.length - 4)));
  const period: number[] = [], wait: number[] = [], mma: number[] = [], promote: number[] = [], lead: number[] = [], pwait: number[] = [], issue: number[] = [];
  for (let i = 1; i < ss.length; i++) {
    period.push(ns(ss[i].cf - ss[i - 1].cf));
    wait.push(ns(ss[i].cf - ss[i - 1].cp));
    pwait.push(ss[i].pe ? ns(ss[i].pe - ss[i - 1].pi) : NaN);
  }
  for (const s of ss) {
    mma.push(ns(s.cm - s.cf));
    promote.push(ns(s.cp - s.cm));
    lead.push(s.pi ? ns(s.cf - s.pi) : NaN);
    issue.push(s.pi ? ns(s.pi - s.pe) : NaN);
  }
  return {
    shape: `${t.m}x${t.n}x${t.k}`,
    config: t.config,
    stages: t.stages,
    ctas: t.ctas,
    steps: steps.length,
    'kernel us (CTA 0)': ns(w[2] - w[0]) / 1000,
    'first full wait us': steps.length ? ns(steps[0].cf - w[0]) / 1000 : NaN,
    'period ns': med(period),
    'wait ns': med(wait),
    'mma ns': med(mma),
    'promote ns': med(promote),
    'lead ns': med(lead),
    'pwait ns': med(pwait),
    'issue ns': med(issue),
    'epi ns': med(tiles),
    'clock GHz': ghz,
  };
}

// One line per step of CTA 0, and the first-of-tile / in-tile medians (--steps).
function printSteps(t: TraceLine, kbPerTile: number): void {
  const w = t.w;
  const ghz = ticksPerNs(w);
  const at = (c: number) => (c ? ((c - w[0]) / ghz).toFixed(0) : '-');
  const ns = (c: number) => c / ghz;
  const first: Record<string, number[]> = { lead: [], wait: [], late: [] };
  const rest: Record<string, number[]> = { lead: [], wait: [], late: [] };
  console.log('step tile kb | prod: wait-start issued | cons: full-done released | lead(issued->full) late(release S back->issued)');
  for (let i = 0; i < 1024; i++) {
    const pe = w[t.prod + 2 * i], pi = w[t.prod + 2 * i + 1], cf = w[t.cons + 3 * i], cm = w[t.cons + 3 * i + 1];
    if (!cf) break;
    const kb = i % kbPerTile, tile = Math.floor(i / kbPerTile);
    const relBack = i >= t.stages ? w[t.cons + 3 * (i - t.stages) + 1] : 0;  // the release that freed this stage
    const lead = pi ? ns(cf - pi) : NaN, late = pi && relBack ? ns(pi - relBack) : NaN;
    const prevEnd = i > 0 ? w[t.cons + 3 * (i - 1) + 2] : 0;
    const epiEnd = tile > 0 ? w[t.tile + 2 * (tile - 1) + 1] : 0;  // 0 past the traced tiles
    const wait = kb === 0 ? (epiEnd ? ns(cf - epiEnd) : NaN) : prevEnd ? ns(cf - prevEnd) : NaN;
    const bucket = kb === 0 ? first : rest;
    bucket.lead.push(lead);
    bucket.late.push(late);
    if (i >= t.stages) bucket.wait.push(wait);
    console.log(`${i} ${tile} ${kb} | ${at(pe)} ${at(pi)} | ${at(cf)} ${at(cm)} | ${lead.toFixed(0)} ${late.toFixed(0)}` +
      (kb === kbPerTile - 1 && w[t.tile + 2 * tile] ? ` | epilogue ${at(w[t.tile + 2 * tile])} -> ${at(w[t.tile + 2 * tile + 1])}` : ''));
  }
  for (const [name, b] of [['first K block of a tile', first], ['other K blocks', rest]] as const)
    console.log(`${name}: lead ${med(b.lead).toFixed(0)} ns, issued after the release ${med(b.late).toFixed(0)} ns, ` +
      `consumer wait (from the epilogue's / previous block's end) ${med(b.wait).toFixed(0)} ns`);
}

async function main(): Promise<void> {
  const file = process.env.DSK_FP8_GEMM_TRACE;
  if (!file) throw new Error('set DSK_FP8_GEMM_TRACE=<file>');
  if (!dsk.cuda.isAvailable()) {
    console.log(`gemm_trace needs a GPU: ${dsk.cuda.status().reason}`);
    return;
  }
  const ji = process.argv.indexOf('--json');
  const steps = process.argv.includes('--steps');
  const specs = process.argv.slice(2).filter((a, i, all) => a !== '--json' && a !== '--steps' && all[i - 1] !== '--json');
  const native = getNative();
  const out: Record<string, number | string>[] = [];
  for (const spec of specs) {
    const [m, n, k, config] = spec.split(',');
    const M = Number(m), N = Number(n), K = Number(k);
    dsk.ops.fp8GemmTesting.force(config ?? '');
    const a = dsk.randn([M, K], { seed: 1, device: DEVICE }).cast('fp8e4m3');
    const sa = dsk.rand([M, K / 128], { seed: 2, device: DEVICE, low: 0.01, high: 0.02 });
    const b = dsk.randn([N, K], { seed: 3, device: DEVICE }).cast('fp8e4m3');
    const sb = dsk.rand([Math.ceil(N / 128), K / 128], { seed: 4, device: DEVICE, low: 0.001, high: 0.002 });
    const o = dsk.empty([M, N], { dtype: 'bf16', device: DEVICE });
    dsk.ops.fp8Gemm(a, sa, b, sb, { out: o }); // warm (traced too; the flushed run below is the one read)
    await dsk.synchronize(DEVICE);
    native.flushL2(0, 256e6);
    dsk.ops.fp8Gemm(a, sa, b, sb, { out: o });
    await dsk.synchronize(DEVICE);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const line = JSON.parse(lines[lines.length - 1]) as TraceLine;
    const row = summarize(line);
    out.push(row);
    console.log(JSON.stringify(row));
    if (steps) printSteps(line, K / 128);
    for (const t of [a, sa, b, sb, o]) t.dispose();
  }
  dsk.ops.fp8GemmTesting.force('');
  if (ji >= 0) fs.writeFileSync(process.argv[ji + 1], JSON.stringify(out, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
