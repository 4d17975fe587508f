// dsk.ep: expert-parallel dispatch and combine over NVLink, on a fixed budget of SMs.
//
//   await dsk.dist.init({ ep: { numExperts: 256 } });
//   const d = await dsk.ep.dispatch({ q, scale }, indices, weights);     // fp8 tokens, or a bf16 tensor
//   // d.x [M, H], d.scale [M, H/128], d.mIndices [M]: rows sorted by local expert, segments padded to
//   // 128, -1 for padding: the layout of dsk.ops.fp8GroupedGemmContiguous
//   const y = expertsForward(d.x, d.scale, d.mIndices);                 // bf16 [M, H]
//   const out = await dsk.ep.combine(y, d.handle);                       // bf16 [T, H] = sum_k w_k * expert_k(x)
//
// Experts are spread evenly: rank r holds experts [r*E/W, (r+1)*E/W). A token goes once to each rank
// holding any of its experts. Exchange kernels run on the device's comm stream on `getNumSMs()` SMs (two
// per channel: a sender block and a receiver block) and move one row per (token, rank), as DeepEP does;
// the per-row work runs on the compute stream with the whole GPU: after a dispatch's exchange, each
// received token is copied to its rows (one per local expert); before a combine's exchange, each rank
// sums the weighted rows of every token it received in f32 (as bf16), and the token's own rank adds
// these up in f32. The compute stream waits for the exchange unless an op is asked to be `async`, in
// which case `ep.wait()` joins it later (and then writes the dispatch's layout), so a GEMM on the compute
// stream overlaps the exchange.
import type { DType } from '../dtype';
import { getNative } from '../native';
import * as ops from '../ops';
import { Check } from '../ops/validate';
import { Tensor } from '../tensor';
import { epState } from './group';

export const EP_ALIGN = 128;
const MAX_TOPK = 16;

let numSMs = 20;
const tuned = new Map<string, number>();
const DEFAULT_CHUNK = 8;

/** Sets how many SMs the exchange kernels use (even: a sender and a receiver block per channel; default 20). */
export function setNumSMs(n: number): void {
  if (!Number.isInteger(n) || n < 2 || n % 2) throw new RangeError(`ep.setNumSMs: n must be an even integer >= 2, got ${n}`);
  numSMs = n;
}
/** The SM budget of the exchange kernels. */
export function getNumSMs(): number {
  return numSMs;
}

/** Chunk sizes found by `tune`, by shape. */
export function tuneCache(): Record<string, number> {
  return Object.fromEntries(tuned);
}

// ---- layout ----

/** Where each token goes: computed on the token's device, no communication. */
export interface Layout {
  numExperts: number;
  worldSize: number;
  /** i32 [W]: tokens sent to each rank (once per token, whatever its number of experts there). */
  tokensPerRank: Tensor;
  /** i32 [E]: routing entries per expert. */
  tokensPerExpert: Tensor;
  /** u8 [T, W]: 1 if the token goes to the rank. */
  isTokenInRank: Tensor;
  /** i32 [T, W]: the token's position among those sent to the rank, or -1. */
  tokenIdxInRank: Tensor;
  /** i32 [T, K]: rank of entry (t, k) among this rank's entries for its expert, in (t, k) order; -1 if none. */
  posInExpert: Tensor;
  /** i32 [W, T]: the tokens sent to each rank, in order; -1 after the last. */
  sendList: Tensor;
  /** Frees the tensors. */
  dispose(): void;
}

/**
 * The routing layout of `indices` (i32 [T, K], -1 = no expert) over the group's ranks (or
 * `options.worldSize`), each holding numExperts / W consecutive experts. An index outside [-1, E)
 * counts as -1 and makes the next read on the device reject with a RangeError.
 */
export function layout(indices: Tensor, numExperts: number, options: { worldSize?: number } = {}): Layout {
  const c = new Check('ep.layout');
  c.tensor(indices, 'indices', { dtypes: ['i32'], ndim: 2 });
  c.number(numExperts, 'numExperts', { integer: true, min: 1 });
  const o = c.options<{ worldSize: number }>(options);
  let W = o.worldSize;
  if (W === undefined) {
    try {
      W = epState('ep.layout').worldSize;
    } catch {
      W = 1;
    }
  }
  c.number(W, 'worldSize', { integer: true, min: 1, max: 16 });
  if (numExperts % W) c.range(`numExperts (${numExperts}) must be a multiple of the world size (${W})`);
  const [T, K] = indices.shape;
  if (K < 1 || K > MAX_TOPK) c.range(`indices must have 1 to ${MAX_TOPK} columns (topk), got shape [${indices.shape.join(', ')}]`);
  const dev = indices.deviceIndex;
  const idx = indices.contiguous();
  const mk = (shape: number[], dtype: DType) => Tensor.alloc(shape, dtype, dev);
  const scratchInts = dev < 0 ? 1 : 2 * Math.ceil(T / 256) * (numExperts + W);
  const out = {
    tokensPerRank: mk([W], 'i32'),
    tokensPerExpert: mk([numExperts], 'i32'),
    isTokenInRank: mk([T, W], 'u8'),
    tokenIdxInRank: mk([T, W], 'i32'),
    posInExpert: mk([T, K], 'i32'),
    sendList: mk([W, T], 'i32'),
  };
  const scratch = mk([Math.max(1, scratchInts)], 'i32');
  try {
    getNative().epLayout(idx, numExperts, W, out.tokensPerRank, out.tokensPerExpert, out.isTokenInRank, out.tokenIdxInRank,
      out.posInExpert, out.sendList, scratch);
  } finally {
    idx.dispose();
    scratch.dispose();
  }
  return {
    numExperts,
    worldSize: W,
    ...out,
    dispose() {
      for (const t of Object.values(out)) t.dispose();
    },
  };
}

// ---- handle ----

/** What a dispatch leaves for its combine (and for cached dispatches of the same routing). */
export class EpHandle {
  /** @internal */
  constructor(
    readonly numExperts: number,
    readonly worldSize: number,
    readonly channels: number,
    /** Rows received (all local experts, padded segments). */
    readonly numRows: number,
    /** Tokens received (once per source token), this rank's own included. */
    readonly numRecvTokens: number,
    /** Of those, this rank's own tokens (the rest come from peers). */
    readonly numOwnTokens: number,
    /** Tokens this rank sends to other ranks (counted once per rank): the sums a combine gets back. */
    readonly numSentToPeers: number,
    /** Real rows per local expert. */
    readonly tokensPerExpert: readonly number[],
    /** @internal */ readonly layout: Layout,
    /** @internal */ readonly indices: Tensor,
    /** @internal */ readonly weights: Tensor,
    /** @internal */ readonly plan: Tensor,
    /** @internal */ readonly recvWeights: Tensor,
    /** @internal */ readonly recvTokenRows: Tensor,
    readonly hidden: number,
  ) {}
  /** Tokens of this rank. */
  get numTokens(): number {
    return this.indices.shape[0];
  }
  get topk(): number {
    return this.indices.shape[1];
  }
  get device(): number {
    return this.indices.deviceIndex;
  }
  /** Frees the handle's tensors (the layout included). */
  dispose(): void {
    this.layout.dispose();
    for (const t of [this.indices, this.weights, this.plan, this.recvWeights, this.recvTokenRows]) t.dispose();
  }
}

// ---- ordering ----

// Exchange ops must be issued in the same order on every rank; dispatch awaits the count exchange
// before its main kernel, so ops are chained: each is enqueued once the previous one has been.
let chain: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => T | Promise<T>): Promise<T> {
  const run = chain.then(fn);
  chain = run.catch(() => undefined);
  return run;
}

// Compute-stream work of `async` ops (a dispatch's per-expert layout, a combine's sum at home), run once
// their exchange is joined.
const pendingFinish: (() => void)[] = [];

/**
 * Makes the compute stream wait for every exchange op issued so far (the end of `async` ops), then
 * enqueues what the async ops still had to do on the compute stream (a dispatch's per-expert layout, a
 * combine's sum at home) and releases their inputs. Resolves once this is enqueued (nothing blocks).
 */
export function wait(): Promise<void> {
  return serial(() => {
    const s = epState('ep.wait');
    getNative().epJoin(s.device);
    for (const f of pendingFinish.splice(0)) f();
  });
}

/** Another reference to t's storage, so that work queued for later keeps it alive. */
function view(t: Tensor): Tensor {
  return t.viewAs(t.shape, t.strides, t.offset);
}

// Compute-stream work that must follow an op's exchange: enqueued now behind a join of the comm stream,
// or, for an async op, at ep.wait(). `release` then drops the references the op kept for it.
function afterExchange(async: boolean, device: number, work: () => void, release: () => void): void {
  const run = () => {
    try {
      work();
    } finally {
      release();
    }
  };
  if (async) {
    pendingFinish.push(run);
  } else {
    getNative().epJoin(device);
    run();
  }
}

function chunkFor(kind: string, key: string, override: number | undefined, slots: number): number {
  const c = override ?? tuned.get(`${kind}:${key}`) ?? DEFAULT_CHUNK;
  return Math.max(1, Math.min(c, Math.floor(slots / 2)));
}

// ---- dispatch ----

/** Tokens as fp8 with one f32 scale per 1x128 tile (what dsk.ops.quantizeActivation returns). */
export interface Fp8Tokens {
  q: Tensor;
  scale: Tensor;
}

export interface DispatchOptions {
  /** Experts of the model (default: dist.init's ep.numExperts). */
  numExperts?: number;
  /** A layout already computed for these indices (else computed here). */
  layout?: Layout;
  /** Send bf16 x as fp8: quantized with dsk.ops.quantizeActivation, when that op is available. */
  fp8?: boolean;
  /** Leave the compute stream free: outputs are ready for compute-stream ops after `ep.wait()`. */
  async?: boolean;
  /** Tokens per published chunk (default: tuned for the shape, else 8). */
  chunk?: number;
}

export interface DispatchResult {
  /** [M, H] bf16 or fp8: this rank's rows, by local expert, segments padded to 128 rows. */
  x: Tensor;
  /** [M, H/128] f32 (fp8 dispatch). */
  scale?: Tensor;
  /** i32 [M]: local expert of each row, -1 for padding. */
  mIndices: Tensor;
  /** f32 [M]: routing weight of each row (padding rows: unspecified). */
  weights: Tensor;
  /** Real rows per local expert. */
  tokensPerExpert: readonly number[];
  /** For combine (and for cached dispatches of the same routing). */
  handle: EpHandle;
}

function isFp8Tokens(x: unknown): x is Fp8Tokens {
  return typeof x === 'object' && x !== null && !(x instanceof Tensor) && 'q' in x && 'scale' in x;
}

function key(W: number, T: number, H: number, dtype: string, K: number): string {
  return `${W}:${T}:${H}:${dtype}:${K}:${numSMs}`;
}

/**
 * Sends every token (bf16, or fp8 with its 1x128 scales) with its routing to the ranks holding its
 * experts; resolves with this rank's rows in the contiguous per-expert layout and a handle for
 * `combine`. Collective: every rank calls it, in the same order as the other ep ops. Pass a previous
 * result's handle instead of indices and weights to resend new data along the same routing (no count
 * exchange).
 */
export function dispatch(x: Tensor | Fp8Tokens, indices: Tensor, weights: Tensor, options?: DispatchOptions): Promise<DispatchResult>;
export function dispatch(x: Tensor | Fp8Tokens, handle: EpHandle, options?: DispatchOptions): Promise<DispatchResult>;
export function dispatch(x: Tensor | Fp8Tokens, indices: Tensor | EpHandle, weights?: Tensor | DispatchOptions, options?: DispatchOptions): Promise<DispatchResult> {
  const c = new Check('ep.dispatch');
  const o = c.options<DispatchOptions>(indices instanceof EpHandle ? weights : options);
  // Validate everything before anything is queued.
  let q: Tensor, scale: Tensor | undefined;
  if (isFp8Tokens(x)) {
    q = c.tensor(x.q, 'x.q', { dtypes: ['fp8e4m3'], ndim: 2 });
    scale = c.tensor(x.scale, 'x.scale', { dtypes: ['f32'], ndim: 2 });
    if (q.shape[1] % 128) c.range(`x.q needs a hidden size that is a multiple of 128, got [${q.shape.join(', ')}]`);
    c.shape(scale, 'x.scale', [q.shape[0], q.shape[1] / 128], 'one scale per 1x128 tile of x.q');
  } else {
    q = c.tensor(x, 'x', { dtypes: ['bf16'], ndim: 2 });
    if (o.fp8) {
      const quant = (ops as Record<string, unknown>).quantizeActivation;
      if (typeof quant !== 'function')
        c.type('fp8: true needs x as { q, scale } (fp8e4m3 and its 1x128 f32 scales) or dsk.ops.quantizeActivation');
      const r = (quant as (t: Tensor) => Fp8Tokens)(q);
      const p = indices instanceof EpHandle ? dispatch(r, indices, { ...o, fp8: false }) : dispatch(r, indices, weights as Tensor, { ...o, fp8: false });
      return p.finally(() => { r.q.dispose(); r.scale.dispose(); });
    }
    if (q.shape[1] % 8) c.range(`x needs a hidden size that is a multiple of 8, got [${q.shape.join(', ')}]`);
  }
  const [T, H] = q.shape;
  const s = epState('ep.dispatch');
  if (q.deviceIndex !== s.device) c.type(`x is on ${q.device} but this rank's group lives on ${s.device < 0 ? 'cpu' : `cuda:${s.device}`}`);
  if (scale) c.sameDevice([q, 'x.q'], [scale, 'x.scale']);
  if (indices instanceof EpHandle) {
    const h = indices;
    if (h.numTokens !== T || h.hidden !== H) c.range(`x has shape [${T}, ${H}] but the handle was made for [${h.numTokens}, ${h.hidden}]`);
    return serial(() => dispatchCached(q, scale, h, o, s));
  }
  const idx = c.tensor(indices, 'indices', { dtypes: ['i32'], ndim: 2 });
  const w = c.tensor(weights, 'weights', { dtypes: ['f32'], ndim: 2 });
  c.shape(idx, 'indices', [T, idx.shape[1]], 'one row per token of x');
  if (idx.shape[1] < 1 || idx.shape[1] > MAX_TOPK) c.range(`indices must have 1 to ${MAX_TOPK} columns, got ${idx.shape[1]}`);
  c.shape(w, 'weights', idx.shape, 'like indices');
  c.sameDevice([q, 'x'], [idx, 'indices'], [w, 'weights']);
  const E = o.numExperts ?? o.layout?.numExperts ?? s.numExperts;
  if (E === undefined) c.type('numExperts is unknown: pass it in the options or to dist.init({ ep: { numExperts } })');
  c.number(E, 'numExperts', { integer: true, min: s.worldSize });
  if (E! % s.worldSize) c.range(`numExperts (${E}) must be a multiple of the world size (${s.worldSize})`);
  if (o.layout && (o.layout.numExperts !== E || o.layout.worldSize !== s.worldSize || o.layout.posInExpert.shape[0] !== T))
    c.range('layout was computed for other indices, numExperts or world size');
  const C = numSMs / 2;
  if (numSMs > s.maxSMs) c.range(`${numSMs} SMs exceed the group's maxSMs (${s.maxSMs}); raise ep.maxSMs in dist.init`);
  const chunk = chunkFor('dispatch', key(s.worldSize, T, H, q.dtype, idx.shape[1]), o.chunk, s.slots);
  return serial(async () => {
    const lay = o.layout ? cloneLayout(o.layout) : layout(idx, E!, { worldSize: s.worldSize });
    const idxC = idx.contiguous(), wC = w.contiguous();
    const Eloc = E! / s.worldSize;
    const n = getNative();
    const planLen = planSize(E!, s.worldSize, C);
    const plan = Tensor.alloc([planLen], 'i32', s.device);
    const summaryT = Tensor.alloc([4 + Eloc], 'i32', s.device);
    let summary: Int32Array;
    try {
      summary = await n.epNotify(s.nextEpoch(), E!, H, q.dtype === 'fp8e4m3', C, idxC, lay.tokensPerExpert, lay.tokensPerRank,
        lay.sendList, plan, summaryT);
    } catch (e) {
      lay.dispose(); idxC.dispose(); wC.dispose(); plan.dispose();
      throw e;
    } finally {
      summaryT.dispose();
    }
    const M = summary[0], R = summary[1], own = summary[2], sent = summary[3];
    const recvWeights = Tensor.alloc([M], 'f32', s.device);
    const recvTokenRows = Tensor.alloc([R, idx.shape[1]], 'i32', s.device);
    const handle = new EpHandle(E!, s.worldSize, C, M, R, own, sent, Array.from(summary.subarray(4)), lay, idxC, wC, plan, recvWeights,
      recvTokenRows, H);
    return launchDispatch(q, scale, handle, chunk, !!o.async, recvWeights, recvTokenRows);
  });
}

function planSize(E: number, W: number, C: number): number {
  return E + W * (C + 1) + 2 * W * C + (W + 1) + (E / W + 1) + E / W;
}

function cloneLayout(l: Layout): Layout {
  const out = {
    tokensPerRank: view(l.tokensPerRank),
    tokensPerExpert: view(l.tokensPerExpert),
    isTokenInRank: view(l.isTokenInRank),
    tokenIdxInRank: view(l.tokenIdxInRank),
    posInExpert: view(l.posInExpert),
    sendList: view(l.sendList),
  };
  return { numExperts: l.numExperts, worldSize: l.worldSize, ...out, dispose() { for (const t of Object.values(out)) t.dispose(); } };
}

// The exchange on the comm stream (the peers' tokens land in a staging buffer, one row each), then the
// per-expert layout on the compute stream (epExpand): now, or at ep.wait() for an async dispatch.
function launchDispatch(q: Tensor, scale: Tensor | undefined, h: EpHandle, chunk: number, async: boolean, recvWeights: Tensor,
  recvTokenRows: Tensor): DispatchResult {
  const M = h.numRows, H = q.shape[1], staged = h.numRecvTokens - h.numOwnTokens;
  const dev = h.device, n = getNative();
  const recvX = Tensor.alloc([M, H], q.dtype, dev);
  const recvScale = scale ? Tensor.alloc([M, H / 128], 'f32', dev) : undefined;
  const mIndices = Tensor.alloc([M], 'i32', dev);
  const stagedX = Tensor.alloc([staged, H], q.dtype, dev);
  const stagedScale = scale ? Tensor.alloc([staged, H / 128], 'f32', dev) : undefined;
  const qc = q.contiguous(), sc = scale?.contiguous();
  // What the expansion reads and writes, as its own references: an async one runs at ep.wait(), after
  // the caller may have dropped the handle or the result.
  const uses = [qc, sc, stagedX, stagedScale, view(h.weights), view(h.indices), view(h.layout.posInExpert), view(h.layout.sendList),
    view(h.plan), view(recvTokenRows), view(recvWeights), view(mIndices), view(recvX), recvScale && view(recvScale)];
  const [ux, us, usx, uss, uw, uidx, upos, usend, uplan, urows, urw, umi, urx, urs] = uses;
  const expand = (part: 0 | 1 | 2) => n.epExpand(ux!, us ?? null, uw!, uidx!, upos!, usend!, uplan!, h.numExperts, h.channels, usx!,
    uss ?? null, urows!, urw!, umi!, urx!, urs ?? null, part);
  const release = () => { for (const t of uses) t?.dispose(); };
  let launched = false;
  try {
    n.epDispatch(qc, sc ?? null, h.weights, h.indices, h.layout.posInExpert, h.layout.sendList, h.plan, h.numExperts,
      h.channels, chunk, stagedX, stagedScale ?? null, recvWeights, recvTokenRows, false);
    launched = true;
  } finally {
    if (!launched) release();
  }
  if (async) {
    afterExchange(true, dev, () => expand(0), release);
  } else {
    // The own tokens' part needs nothing from the exchange: it runs on the compute SMs meanwhile.
    try {
      expand(1);
    } finally {
      afterExchange(false, dev, () => expand(2), release);
    }
  }
  return { x: recvX, scale: recvScale, mIndices, weights: recvWeights, tokensPerExpert: h.tokensPerExpert, handle: h };
}

function dispatchCached(q: Tensor, scale: Tensor | undefined, h: EpHandle, o: Partial<DispatchOptions>, s: ReturnType<typeof epState>): DispatchResult {
  if (h.channels * 2 > s.maxSMs) throw new RangeError('ep.dispatch: the handle uses more SMs than the group allows');
  const chunk = chunkFor('dispatch', key(s.worldSize, h.numTokens, q.shape[1], q.dtype, h.topk), o.chunk, s.slots);
  const recvWeights = Tensor.alloc([h.numRows], 'f32', h.device);
  const recvTokenRows = Tensor.alloc([h.numRecvTokens, h.topk], 'i32', h.device);
  const nh = new EpHandle(h.numExperts, h.worldSize, h.channels, h.numRows, h.numRecvTokens, h.numOwnTokens, h.numSentToPeers,
    h.tokensPerExpert, cloneLayout(h.layout),
    view(h.indices), view(h.weights), view(h.plan), recvWeights, recvTokenRows, q.shape[1]);
  return launchDispatch(q, scale, nh, chunk, !!o.async, recvWeights, recvTokenRows);
}

// ---- combine ----

export interface CombineOptions {
  /** Leave the compute stream free: the output is ready for compute-stream ops after `ep.wait()`. */
  async?: boolean;
  /** Tokens per published chunk (default: tuned for the shape, else 8). */
  chunk?: number;
}

/**
 * Sends the expert outputs y (bf16 [M, H], the rows of `handle`'s dispatch) back to the tokens' ranks
 * and reduces them there: out[t] = sum over the token's experts of weight * y[row], as bf16 [T, H]. Each
 * rank first sums, in f32, the weighted rows of every token it received (on the compute stream) and
 * rounds the sum to bf16; the sums go back to the tokens' ranks (comm stream), which add them in f32
 * (their own first, then the other ranks' in rank order; compute stream). A token routed nowhere gets
 * zeros. Collective. With `async`, the output is written at `ep.wait()`.
 */
export function combine(y: Tensor, handle: EpHandle, options?: CombineOptions): Promise<Tensor> {
  const c = new Check('ep.combine');
  c.tensor(y, 'y', { dtypes: ['bf16'], ndim: 2 });
  if (!(handle instanceof EpHandle)) c.type('handle must be the handle of an ep.dispatch result');
  const o = c.options<CombineOptions>(options);
  c.shape(y, 'y', [handle.numRows, handle.hidden], 'the rows of the dispatch, at its hidden size');
  const s = epState('ep.combine');
  if (y.deviceIndex !== handle.device) c.type(`y is on ${y.device} but the handle's tensors are on cuda:${handle.device}`);
  const chunk = chunkFor('combine', key(s.worldSize, handle.numTokens, handle.hidden, 'bf16', handle.topk), o.chunk, s.slots);
  return serial(() => {
    const n = getNative(), h = handle;
    const out = Tensor.alloc([h.numTokens, h.hidden], 'bf16', h.device);
    const partial = Tensor.alloc([h.numRecvTokens, h.hidden], 'bf16', h.device);
    const staged = Tensor.alloc([h.numSentToPeers, h.hidden], 'bf16', h.device);
    const yc = y.contiguous();
    // The sum at home reads these after the exchange: its own references (an async one runs at ep.wait(),
    // after the caller may have dropped the handle or the output).
    const uses = [partial, staged, view(h.layout.tokenIdxInRank), view(h.plan), view(out)];
    const release = () => { for (const t of uses) t.dispose(); };
    const sum = () => n.epSum(uses[0], uses[1], uses[2], uses[3], h.numExperts, h.channels, uses[4]);
    let launched = false;
    try {
      // The weighted sum over this rank's experts of every received token, on the compute stream: first the
      // peers' tokens, which the exchange of one row per (token, rank) sends back on the comm stream, then
      // this rank's own, meanwhile; then the sums added up on the compute stream.
      n.epReduce(yc, h.recvWeights, h.recvTokenRows, h.plan, h.numExperts, h.channels, partial, 2);
      n.epCombine(partial, staged, h.plan, h.numExperts, h.channels, chunk, false);
      launched = true;
      n.epReduce(yc, h.recvWeights, h.recvTokenRows, h.plan, h.numExperts, h.channels, partial, 1);
    } finally {
      yc.dispose();
      if (launched) {
        afterExchange(!!o.async, h.device, sum, release);
      } else {
        release();
        out.dispose();
      }
    }
    return out;
  });
}

// ---- tuning ----

// The comm stream is held this long before a timed batch, longer than the host needs to queue it.
const TUNE_GATE_US = 20_000;

export interface TuneResult {
  dispatch: number;
  combine: number;
  /** ms per call for each candidate chunk (slowest rank). */
  dispatchTimes: Record<number, number>;
  combineTimes: Record<number, number>;
}

/**
 * Times dispatch and combine of this routing for each candidate chunk size (collective: every rank
 * runs the same trials, and the slowest rank's time decides) and caches the best per shape; later ops
 * of the same shape and SM count use it.
 */
export async function tune(x: Tensor | Fp8Tokens, indices: Tensor, weights: Tensor, options: { numExperts?: number; candidates?: number[]; iters?: number } = {}): Promise<TuneResult> {
  const s = epState('ep.tune');
  const { allGather } = await import('./group');
  const cands = (options.candidates ?? [4, 8, 12, 16, 24, 32, 48, 64]).filter((v) => v >= 1 && v <= s.slots / 2);
  const iters = options.iters ?? 10;
  const first = await dispatch(x, indices, weights, { numExperts: options.numExperts });
  const h = first.handle;
  const q = isFp8Tokens(x) ? x.q : x;
  const y = Tensor.alloc([h.numRows, h.hidden], 'bf16', h.device);
  getNative().fill(y, 0.5);
  const timer = createTimer(h.device);
  const dTimes: Record<number, number> = {}, cTimes: Record<number, number> = {};
  try {
    // Results are freed as soon as the next call is queued (ops are joined to the compute stream, so the
    // memory is reused stream-ordered).
    for (const ch of cands) {
      for (let i = 0; i < 2; i++) disposeResult(await dispatch(x, h, { chunk: ch }), { handle: true });
      await allGather(0);
      timer.gate(TUNE_GATE_US);
      disposeResult(await dispatch(x, h, { chunk: ch }), { handle: true });
      timer.start();
      for (let i = 0; i < iters; i++) disposeResult(await dispatch(x, h, { chunk: ch }), { handle: true });
      const ms = (await timer.stop()) / iters;
      dTimes[ch] = Math.max(...(await allGather(ms)));
      for (let i = 0; i < 2; i++) (await combine(y, h, { chunk: ch })).dispose();
      await allGather(0);
      timer.gate(TUNE_GATE_US);
      (await combine(y, h, { chunk: ch })).dispose();
      timer.start();
      for (let i = 0; i < iters; i++) (await combine(y, h, { chunk: ch })).dispose();
      const cms = (await timer.stop()) / iters;
      cTimes[ch] = Math.max(...(await allGather(cms)));
    }
  } finally {
    timer.dispose();
    y.dispose();
    disposeResult(first);
    h.dispose();
  }
  const best = (t: Record<number, number>) => Number(Object.entries(t).sort((a, b) => a[1] - b[1])[0][0]);
  const r = { dispatch: best(dTimes), combine: best(cTimes), dispatchTimes: dTimes, combineTimes: cTimes };
  tuned.set(`dispatch:${key(s.worldSize, q.shape[0], q.shape[1], q.dtype, indices.shape[1])}`, r.dispatch);
  tuned.set(`combine:${key(s.worldSize, q.shape[0], q.shape[1], 'bf16', indices.shape[1])}`, r.combine);
  return r;
}

/** Frees a dispatch result's tensors, and its handle too with `{ handle: true }`. */
export function disposeResult(r: DispatchResult, options: { handle?: boolean } = {}): void {
  r.x.dispose();
  r.scale?.dispose();
  r.mIndices.dispose();
  r.weights.dispose();
  if (options.handle) r.handle.dispose();
}

// ---- timing (benchmarks) ----

export interface CommTimer {
  /**
   * Holds the comm stream for `us` microseconds: the calls queued meanwhile then run back to back, so a
   * timing measures the GPU, not the host's enqueue rate. Queue one call after the gate and before
   * start(): it absorbs the ranks' skew (every rank waits for the slowest in it).
   */
  gate(us: number): void;
  /** Records the start on the comm stream. */
  start(): void;
  /** Records the end and resolves with the ms in between. */
  stop(): Promise<number>;
  dispose(): void;
}

/** CUDA-event timer on the comm stream of `device` (benchmarks). */
export function createTimer(device: number): CommTimer {
  const n = getNative();
  const a = n.epTimerCreate(device), b = n.epTimerCreate(device);
  return {
    gate: (us: number) => n.epGate(device, us, true),
    start: () => n.epTimerRecord(a, true),
    stop: async () => {
      n.epTimerRecord(b, true);
      return n.epTimerElapsed(a, b);
    },
    dispose: () => { n.epTimerDestroy(a); n.epTimerDestroy(b); },
  };
}
