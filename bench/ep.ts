// npm run bench:ep — expert-parallel dispatch/combine in DeepEP's setting, on every GPU of the machine.
//
//   node dist/bench/ep.js [--gpus N] [--sms 24,20] [--tokens 4096] [--hidden 7168] [--out FILE] [--probe]
//   node dist/bench/ep.js --compare bench/results/ep.json deepep_intranode.log
//
// Without DSK_RANK in the environment it starts itself under `dsk launch` (one process per GPU).
// Setting: 4096 tokens per rank, hidden 7168, top-8 of 256 experts in 4 of 8 groups (DeepEP's
// generator), fp8 and bf16 dispatch, bf16 combine. Times are CUDA-event times of a batch of back-to-back
// calls divided by the batch (slowest rank), with the routing fixed (as DeepEP's tuned figures, which
// reuse the layout: no count exchange, no host synchronization). Three figures per op:
//   exchange  the kernel on the comm SMs (what DeepEP's figures time: its dispatch outputs one row per
//             (token, rank), its combine takes one): comm-stream events around the native exchange call;
//   local     the per-row work on the compute stream with the whole GPU (the dispatch's per-expert layout;
//             the combine's weighted sums per received token before its exchange and their sum at home
//             after it), which DeepEP leaves to its caller or (the sum at home) does on its own SMs;
//   op        the public op (ep.dispatch / ep.combine, synchronous): both (the own tokens' part of the
//             local work runs while the exchange does).
// The full dispatch (count exchange + host sync + kernels) is reported separately. GB/s are counted as DeepEP counts them:
// received tokens (one per source token and rank, this rank's own included) x bytes per token (fp8:
// hidden + hidden/128 * 4). The peer-copy bandwidth (copy engine, every rank to the next at once, and
// one direction alone) is measured in the same run.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as dsk from '../lib/index';
import { launch } from '../lib/dist/launch';
import { deepepRouting } from '../lib/dist/routing';
import { getNative } from '../lib/native';

interface Args {
  gpus?: number;
  sms: number[];
  tokens: number;
  hidden: number;
  experts: number;
  topk: number;
  iters: number;
  out: string;
  compare?: [string, string];
  /** Also time the probe variants (PROBES) at the first SM count. */
  probe: boolean;
}

// Variants of the exchanges timed with --probe, each under its environment (read by the addon at every
// call): payload copies left out one part at a time (results wrong; handshakes and metadata
// still run), so the differences place the time.
const PROBES: { name: string; env: Record<string, string>; ops: ('dispatch' | 'combine')[] }[] = [
  { name: 'without peer push payload', env: { DSK_EP_PROBE_SKIP: '2' }, ops: ['dispatch', 'combine'] },
  { name: 'without receiver copies', env: { DSK_EP_PROBE_SKIP: '4' }, ops: ['dispatch', 'combine'] },
  { name: 'handshakes only', env: { DSK_EP_PROBE_SKIP: '6' }, ops: ['dispatch', 'combine'] },
];

interface ProbeResult {
  name: string;
  fp8Us?: number;
  bf16Us?: number;
  combineUs?: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { probe: false, sms: [24, 20], tokens: 4096, hidden: 7168, experts: 256, topk: 8, iters: 20, out: join(__dirname, '..', '..', 'bench', 'results', 'ep.json') };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--gpus': a.gpus = Number(v()); break;
      case '--sms': a.sms = v().split(',').map(Number); break;
      case '--tokens': a.tokens = Number(v()); break;
      case '--hidden': a.hidden = Number(v()); break;
      case '--experts': a.experts = Number(v()); break;
      case '--iters': a.iters = Number(v()); break;
      case '--out': a.out = v(); break;
      case '--compare': a.compare = [v(), v()]; break;
      case '--probe': a.probe = true; break;
      default: throw new Error(`bench:ep: unknown argument ${argv[i]}`);
    }
  }
  return a;
}

interface OpFigure {
  /** The exchange kernel on the comm SMs. */
  us: number;
  /** The per-row work on the compute stream (expand / reduce), whole GPU. */
  localUs: number;
  /** The public synchronous op: both. */
  opUs: number;
  /** Of localUs, the part DeepEP's op does inside itself (combine: the sum at home). */
  homeUs: number;
  /** DeepEP's count: received tokens x bytes per token. */
  gbpsDeepep: number;
  /** Bytes that crossed NVLink (tokens from other ranks) per rank. */
  gbpsNvlink: number;
  chunk: number;
}

interface SmResult {
  sms: number;
  dispatchFp8: OpFigure;
  dispatchBf16: OpFigure;
  combine: OpFigure;
  /** Full dispatch (layout + count exchange + host sync + kernels), host wall time per call. */
  fullDispatchFp8Us: number;
  tune: { fp8: Record<number, number>; bf16: Record<number, number>; combine: Record<number, number> };
  probes?: ProbeResult[];
}

interface RankResult {
  rank: number;
  recvTokens: number;
  recvFromPeers: number;
  rows: number;
  bySms: SmResult[];
  peerCopy: { bidirGBps: number; unidirGBps: number };
  overlap?: { sms: number; dispatchUs: number; busyUs: number; sequentialUs: number; overlappedUs: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function rankMain(a: Args): Promise<void> {
  await dsk.dist.init({ ep: { numExperts: a.experts, maxHidden: a.hidden, maxSMs: Math.max(...a.sms, 48) } });
  const rank = dsk.dist.rank(), W = dsk.dist.worldSize(), device = dsk.dist.device();
  const dev = Number(device.slice(5));
  const n = getNative();
  const T = a.tokens, H = a.hidden, K = a.topk;
  const r = deepepRouting({ tokens: T, numExperts: a.experts, topk: K, numGroups: 8, topkGroups: 4, seed: 7 + rank });
  const idx = dsk.tensor(r.indices, { dtype: 'i32', shape: [T, K], device });
  const w = dsk.tensor(r.weights, { dtype: 'f32', shape: [T, K], device });
  const xf = dsk.randn([T, H], { seed: 11 + rank, device });
  const xb = xf.cast('bf16');
  const xq = { q: xf.cast('fp8e4m3'), scale: dsk.rand([T, H / 128], { seed: 13 + rank, low: 0.005, high: 0.02, device }) };
  xf.dispose();
  const timer = dsk.ep.createTimer(dev);
  const t0 = Date.now();
  const progress = (msg: string) => { if (rank === 0) console.error(`[bench:ep ${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`); };
  const slowest = async (ms: number) => Math.max(...(await dsk.dist.allGather(ms)));

  // Time `iters` back-to-back calls of fn on the comm stream; ms per call, slowest rank.
  async function timeBatch(fn: () => Promise<unknown>, iters: number, cleanup: (v: unknown) => void): Promise<number> {
    for (let i = 0; i < 3; i++) cleanup(await fn());
    await dsk.dist.barrier();
    // The batch is queued behind a 50 ms gate, so it runs back to back on the GPU; the first call, before
    // the start, absorbs the skew between the ranks.
    timer.gate(50_000);
    cleanup(await fn());
    timer.start();
    // Results are freed as soon as the next call is queued: the compute stream waits for each op, so the
    // memory is reused stream-ordered and the pool does not grow inside the timed batch.
    for (let i = 0; i < iters; i++) cleanup(await fn());
    const ms = (await timer.stop()) / iters;
    return slowest(ms);
  }

  // Time `iters` back-to-back launches of fn (native calls that return at once) on the comm or the
  // compute stream; ms per call, slowest rank.
  const ka = n.epTimerCreate(dev), kb = n.epTimerCreate(dev);
  async function timeKernels(fn: () => void, iters: number, onComm: boolean): Promise<number> {
    for (let i = 0; i < 3; i++) fn();
    await dsk.synchronize(device);
    await dsk.dist.barrier();
    n.epGate(dev, 50_000, onComm);
    fn();
    n.epTimerRecord(ka, onComm);
    for (let i = 0; i < iters; i++) fn();
    n.epTimerRecord(kb, onComm);
    return slowest((await n.epTimerElapsed(ka, kb)) / iters);
  }

  const dispose = (v: unknown) => {
    if (v instanceof dsk.Tensor) v.dispose();
    else dsk.ep.disposeResult(v as dsk.ep.DispatchResult, { handle: true });  // cached results: their own handle
  };
  const bySms: SmResult[] = [];
  let recvTokens = 0, rows = 0, recvFromPeers = 0;
  for (const sms of a.sms) {
    dsk.ep.setNumSMs(sms);
    await dsk.dist.barrier();
    progress(`${sms} SMs: tuning fp8`);
    const tf = await dsk.ep.tune(xq, idx, w, { iters: 8 });
    progress(`${sms} SMs: tuning bf16 ${JSON.stringify(tf)}`);
    const tb = await dsk.ep.tune(xb, idx, w, { iters: 8 });
    progress(`${sms} SMs: timing ${JSON.stringify(tb)}`);
    const base = await dsk.ep.dispatch(xq, idx, w);
    const h = base.handle;
    recvTokens = h.numRecvTokens;
    rows = h.numRows;
    const tir = (await h.layout.tokensPerRank.toArray()) as Int32Array;
    const fromPeers = (await dsk.dist.allGather(Array.from(tir))).reduce((s, v, src) => s + (src === rank ? 0 : v[rank]), 0);
    recvFromPeers = fromPeers;
    const y = dsk.randn([h.numRows, H], { seed: 5, device }).cast('bf16');
    // The native halves of each op, on buffers reused from call to call.
    const M = h.numRows, Rr = h.numRecvTokens, staged = Rr - h.numOwnTokens;
    const mk = (shape: number[], dtype: dsk.DType) => dsk.empty(shape, { dtype, device });
    const ex = {
      rw: mk([M], 'f32'), rtr: mk([Rr, K], 'i32'), mi: mk([M], 'i32'),
      sq: mk([staged, H], 'fp8e4m3'), ss: mk([staged, H / 128], 'f32'), sb: mk([staged, H], 'bf16'),
      rxq: mk([M, H], 'fp8e4m3'), rs: mk([M, H / 128], 'f32'), rxb: mk([M, H], 'bf16'),
      partial: mk([Rr, H], 'bf16'), returned: mk([h.numSentToPeers, H], 'bf16'), out: mk([T, H], 'bf16'),
    };
    const exchangeDispatch = (fp8: boolean, chunk: number) => () => n.epDispatch(fp8 ? xq.q : xb, fp8 ? xq.scale : null, h.weights,
      h.indices, h.layout.posInExpert, h.layout.sendList, h.plan, h.numExperts, h.channels, chunk, fp8 ? ex.sq : ex.sb,
      fp8 ? ex.ss : null, ex.rw, ex.rtr, true);
    const expand = (fp8: boolean) => () => n.epExpand(fp8 ? xq.q : xb, fp8 ? xq.scale : null, h.weights, h.indices, h.layout.posInExpert,
      h.layout.sendList, h.plan, h.numExperts, h.channels, fp8 ? ex.sq : ex.sb, fp8 ? ex.ss : null, ex.rtr, ex.rw, ex.mi,
      fp8 ? ex.rxq : ex.rxb, fp8 ? ex.rs : null, 0);
    const reduce = () => n.epReduce(y, h.recvWeights, h.recvTokenRows, h.plan, h.numExperts, h.channels, ex.partial, 0);
    const sum = () => n.epSum(ex.partial, ex.returned, h.layout.tokenIdxInRank, h.plan, h.numExperts, h.channels, ex.out);
    const exchangeCombine = (chunk: number) => () => n.epCombine(ex.partial, ex.returned, h.plan, h.numExperts, h.channels, chunk, true);
    const exUs = async (fn: () => void, iters = a.iters) => (await timeKernels(fn, iters, true)) * 1e3;
    const localUs = async (fn: () => void) => (await timeKernels(fn, a.iters, false)) * 1e3;
    const fp8Us = await exUs(exchangeDispatch(true, tf.dispatch));
    const fp8LocalUs = await localUs(expand(true));
    const bf16Us = await exUs(exchangeDispatch(false, tb.dispatch));
    const bf16LocalUs = await localUs(expand(false));
    reduce();
    const combUs = await exUs(exchangeCombine(tb.combine));
    const reduceUs = await localUs(reduce), sumUs = await localUs(sum);
    const combLocalUs = reduceUs + sumUs;
    const fp8OpUs = (await timeBatch(() => dsk.ep.dispatch(xq, h), a.iters, dispose)) * 1e3;
    const bf16OpUs = (await timeBatch(() => dsk.ep.dispatch(xb, h), a.iters, dispose)) * 1e3;
    const combOpUs = (await timeBatch(() => dsk.ep.combine(y, h), a.iters, dispose)) * 1e3;
    // Full dispatch, host wall time (count exchange and host sync included).
    const walls: number[] = [];
    for (let i = 0; i < 6; i++) {
      await dsk.dist.barrier();
      const t0 = process.hrtime.bigint();
      const d = await dsk.ep.dispatch(xq, idx, w);
      await dsk.synchronize(device);
      walls.push(Number(process.hrtime.bigint() - t0) / 1e3);
      dsk.ep.disposeResult(d);
      d.handle.dispose();
    }
    const fullUs = await slowest(median(walls.slice(1)));
    let probes: ProbeResult[] | undefined;
    if (a.probe && sms === a.sms[0]) {
      probes = [];
      for (const v of PROBES) {
        progress(`${sms} SMs: probe ${v.name}`);
        for (const [k, val] of Object.entries(v.env)) process.env[k] = val;
        const r: ProbeResult = { name: v.name };
        try {
          if (v.ops.includes('dispatch')) {
            r.fp8Us = await exUs(exchangeDispatch(true, tf.dispatch), 10);
            r.bf16Us = await exUs(exchangeDispatch(false, tb.dispatch), 10);
          }
          if (v.ops.includes('combine')) r.combineUs = await exUs(exchangeCombine(tb.combine), 10);
        } finally {
          for (const k of Object.keys(v.env)) delete process.env[k];
        }
        probes.push(r);
      }
    }
    const fig = (us: number, local: number, op: number, perToken: number, chunk: number, home = 0): OpFigure => ({
      us,
      localUs: local,
      opUs: op,
      homeUs: home,
      gbpsDeepep: (recvTokens * perToken) / (us * 1e3),
      gbpsNvlink: (fromPeers * perToken) / (us * 1e3),
      chunk,
    });
    bySms.push({
      sms,
      dispatchFp8: fig(fp8Us, fp8LocalUs, fp8OpUs, H + (H / 128) * 4, tf.dispatch),
      dispatchBf16: fig(bf16Us, bf16LocalUs, bf16OpUs, 2 * H, tb.dispatch),
      combine: fig(combUs, combLocalUs, combOpUs, 2 * H, tb.combine, sumUs),
      fullDispatchFp8Us: fullUs,
      tune: { fp8: tf.dispatchTimes, bf16: tb.dispatchTimes, combine: tb.combineTimes },
      probes,
    });
    y.dispose();
    for (const t of Object.values(ex)) t.dispose();
    dsk.ep.disposeResult(base);
    h.dispose();
  }

  progress('peer copy');
  // Peer copy through the copy engines: every rank to the next at once, then one direction alone.
  const bytes = Math.min(32 << 20, Math.floor(n.epGroupInfo().bytes / 2));
  const copy = async (active: boolean) => {
    await dsk.dist.barrier();
    timer.gate(5_000);
    timer.start();
    if (active) n.epPeerCopy((rank + 1) % W, bytes, 20);
    const ms = await timer.stop();
    return active ? (bytes * 20) / (ms * 1e6) : Infinity;
  };
  await copy(W > 1);
  const bidir = Math.min(...(await dsk.dist.allGather(await copy(W > 1))));
  const unidir = (await dsk.dist.allGather(await copy(rank === 0 && W > 1)))[0];

  progress('overlap');
  // Overlap: a compute-bound kernel on the SMs the exchange leaves free, with a cached fp8 dispatch.
  let overlap: RankResult['overlap'];
  {
    const sms = a.sms[0];
    dsk.ep.setNumSMs(sms);
    const base = await dsk.ep.dispatch(xq, idx, w);
    const h = base.handle;
    const smCount = dsk.devices().find((d) => d.id === device)?.smCount ?? 132;
    const out = dsk.empty([smCount - sms], { device });  // one block per SM the exchange leaves free
    const ta = n.epTimerCreate(dev), tb = n.epTimerCreate(dev);
    const onCompute = async (fn: () => Promise<void>) => {
      await dsk.dist.barrier();
      n.epGate(dev, 50_000, false);  // everything below is queued before the GPU reaches it
      dsk.ep.disposeResult(await dsk.ep.dispatch(xq, h), { handle: true });  // lines the ranks up
      n.epTimerRecord(ta, false);
      await fn();
      n.epTimerRecord(tb, false);
      return slowest(await n.epTimerElapsed(ta, tb));
    };
    // Each pattern repeated R times back to back, so rank skew and launch gaps wash out.
    const R = 10;
    let iters = 500;
    const busyMs0 = await onCompute(async () => n.epBusy(out, iters));
    const dMs = bySms[0].dispatchFp8.us / 1e3;
    iters = Math.max(1, Math.round((iters * dMs) / Math.max(busyMs0, 1e-3)));
    const busyMs = (await onCompute(async () => { for (let i = 0; i < R; i++) n.epBusy(out, iters); })) / R;
    const dispMs = (await onCompute(async () => {
      for (let i = 0; i < R; i++) dsk.ep.disposeResult(await dsk.ep.dispatch(xq, h), { handle: true });
    })) / R;
    const seqMs = (await onCompute(async () => {
      for (let i = 0; i < R; i++) {
        const d = await dsk.ep.dispatch(xq, h);
        n.epBusy(out, iters);
        dsk.ep.disposeResult(d, { handle: true });
      }
    })) / R;
    const ovMs = (await onCompute(async () => {
      for (let i = 0; i < R; i++) {
        const d = await dsk.ep.dispatch(xq, h, { async: true });
        n.epBusy(out, iters);
        await dsk.ep.wait();
        dsk.ep.disposeResult(d, { handle: true });
      }
    })) / R;
    overlap = { sms, dispatchUs: dispMs * 1e3, busyUs: busyMs * 1e3, sequentialUs: seqMs * 1e3, overlappedUs: ovMs * 1e3 };
    n.epTimerDestroy(ta);
    n.epTimerDestroy(tb);
    n.epTimerDestroy(ka);
    n.epTimerDestroy(kb);
    out.dispose();
    dsk.ep.disposeResult(base);
    h.dispose();
  }

  const mine: RankResult = { rank, recvTokens, recvFromPeers, rows, bySms, peerCopy: { bidirGBps: bidir, unidirGBps: unidir }, overlap };
  const all = await dsk.dist.allGather(mine);
  if (rank === 0) {
    const info = dsk.devices().find((d) => d.id === device);
    const result = {
      setting: { worldSize: W, tokensPerRank: T, hidden: H, experts: a.experts, topk: K, groups: '4 of 8', gpu: info?.name, smCount: info?.smCount },
      ranks: all,
      date: new Date().toISOString(),
    };
    mkdirSync(dirname(a.out), { recursive: true });
    writeFileSync(a.out, JSON.stringify(result, null, 2));
    printTable(result.setting, all);
    console.log(`\nwrote ${a.out}`);
  }
  timer.dispose();
  await dsk.dist.destroy();
}

function printTable(setting: Record<string, unknown>, ranks: RankResult[]): void {
  const r0 = ranks[0];
  console.log(`\nbench:ep  ${setting.worldSize} x ${setting.gpu}, ${setting.tokensPerRank} tokens/rank, hidden ${setting.hidden}, top-${setting.topk} of ${setting.experts} (4 of 8 groups)`);
  console.log(`received tokens per rank: ${ranks.map((r) => r.recvTokens).join(', ')} (from peers: ${ranks.map((r) => r.recvFromPeers).join(', ')}); rows (per-expert layout): ${ranks.map((r) => r.rows).join(', ')}`);
  console.log(`peer copy (copy engine): ${r0.peerCopy.bidirGBps.toFixed(0)} GB/s per direction with all ranks sending, ${r0.peerCopy.unidirGBps.toFixed(0)} GB/s one direction alone\n`);
  console.log('exchange: the kernel on the comm SMs; local: the per-row work on the compute stream, whole GPU (combine: weighted sums + the sum at home); op: the public op');
  console.log('SMs  op              exchange (us)  GB/s (DeepEP count)  GB/s over NVLink  chunk  local (us)  op (us)');
  for (const s of r0.bySms) {
    const row = (name: string, f: OpFigure) =>
      console.log(`${String(s.sms).padStart(3)}  ${name.padEnd(15)} ${f.us.toFixed(1).padStart(13)}  ${f.gbpsDeepep.toFixed(0).padStart(19)}  ${f.gbpsNvlink.toFixed(0).padStart(16)}  ${String(f.chunk).padStart(5)}  ${f.localUs.toFixed(1).padStart(10)}  ${f.opUs.toFixed(1).padStart(7)}`);
    row('dispatch fp8', s.dispatchFp8);
    row('dispatch bf16', s.dispatchBf16);
    row('combine bf16', s.combine);
    console.log(`     full fp8 dispatch (layout, count exchange, host sync, kernels): ${s.fullDispatchFp8Us.toFixed(0)} us wall`);
    console.log(`     chunk tuning (us): fp8 ${fmtTune(s.tune.fp8)}; bf16 ${fmtTune(s.tune.bf16)}; combine ${fmtTune(s.tune.combine)}`);
    for (const p of s.probes ?? []) {
      const f = (v?: number) => (v === undefined ? '' : v.toFixed(1));
      console.log(`     probe ${p.name.padEnd(36)} fp8 ${f(p.fp8Us).padStart(7)}  bf16 ${f(p.bf16Us).padStart(7)}  combine ${f(p.combineUs).padStart(7)}`);
    }
  }
  if (r0.overlap) {
    const o = r0.overlap;
    console.log(`\noverlap (${o.sms} SMs exchange, compute kernel on the rest): dispatch ${o.dispatchUs.toFixed(0)} us, compute ${o.busyUs.toFixed(0)} us, ` +
      `one after the other ${o.sequentialUs.toFixed(0)} us, overlapped ${o.overlappedUs.toFixed(0)} us`);
  }
}

const fmtTune = (t: Record<number, number>) => Object.entries(t).map(([k, v]) => `${k}:${(v * 1e3).toFixed(0)}`).join(' ');

/** DeepEP's best tuned figures from its intranode test log. */
export function parseDeepep(log: string): { fp8?: number; bf16?: number; combine?: number; sms?: number } {
  const num = (re: RegExp) => {
    const m = re.exec(log);
    return m ? Number(m[1]) : undefined;
  };
  return {
    fp8: num(/Best dispatch \(FP8\):.*?t: ([\d.]+) us/),
    bf16: num(/Best dispatch \(BF16\):.*?t: ([\d.]+) us/),
    combine: num(/Best combine:.*?t: ([\d.]+) us/),
    sms: num(/Best dispatch \(FP8\): SMs (\d+)/),
  };
}

function compare(resultsPath: string, logPath: string): void {
  const res = JSON.parse(readFileSync(resultsPath, 'utf8')) as { ranks: RankResult[]; setting: Record<string, unknown> };
  const dep = existsSync(logPath) ? parseDeepep(readFileSync(logPath, 'utf8')) : {};
  const s = res.ranks[0].bySms.find((x) => x.sms === (dep.sms ?? 24)) ?? res.ranks[0].bySms[0];
  console.log(`\nours (${s.sms} SMs) vs DeepEP (${dep.sms ?? '?'} SMs, its own test and tuner), same machine, same run`);
  console.log('exchange: our kernel on the comm SMs; + home: with the part of the local work that DeepEP does inside its op (the');
  console.log('combine\'s sum at home; ours runs on the compute stream): like for like with DeepEP (one row per (token, rank) in and out);');
  console.log('op: + all the local work (per-expert layout, weighted sums), which DeepEP leaves to its caller');
  console.log('op              exchange (us)  + home (us)  op (us)  DeepEP (us)  (exchange + home)/DeepEP  op/DeepEP');
  const r = (a: number, b?: number) => (b === undefined ? 'n/a' : (a / b).toFixed(3));
  const row = (name: string, f: OpFigure, theirs?: number) =>
    console.log(`${name.padEnd(15)} ${f.us.toFixed(1).padStart(13)}  ${(f.us + f.homeUs).toFixed(1).padStart(11)}  ${f.opUs.toFixed(1).padStart(7)}  ${theirs === undefined ? '        n/a' : theirs.toFixed(1).padStart(11)}  ${r(f.us + f.homeUs, theirs).padStart(24)}  ${r(f.opUs, theirs).padStart(9)}`);
  row('dispatch fp8', s.dispatchFp8, dep.fp8);
  row('dispatch bf16', s.dispatchBf16, dep.bf16);
  row('combine bf16', s.combine, dep.combine);
  const q = (a: number, b?: number) => b && a / b;
  const out = {
    ...res,
    deepep: dep,
    ratio: { dispatchFp8: q(s.dispatchFp8.us, dep.fp8), dispatchBf16: q(s.dispatchBf16.us, dep.bf16), combine: q(s.combine.us + s.combine.homeUs, dep.combine) },
    opRatio: { dispatchFp8: q(s.dispatchFp8.opUs, dep.fp8), dispatchBf16: q(s.dispatchBf16.opUs, dep.bf16), combine: q(s.combine.opUs, dep.combine) },
  };
  writeFileSync(resultsPath, JSON.stringify(out, null, 2));
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.compare) return compare(...a.compare);
  if (process.env.DSK_RANK === undefined) {
    const gpus = a.gpus ?? dsk.cuda.deviceCount();
    if (gpus < 2) {
      console.error(`bench:ep needs at least 2 GPUs (found ${dsk.cuda.deviceCount()}${dsk.cuda.isAvailable() ? '' : `: ${dsk.cuda.status().reason}`})`);
      process.exitCode = 1;
      return;
    }
    const r = await launch({ gpus, script: __filename, args: process.argv.slice(2), prefix: false });
    process.exitCode = r.code;
    return;
  }
  await rankMain(a);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
