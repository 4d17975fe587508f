// The engine: requests -> batches -> steps.
//
// One loop serves every request in flight (continuous batching). Each iteration: drop aborted
// requests; admit waiting ones whose whole KV budget (prompt + maxTokens) fits in the paged cache and
// prefill them together; then one decode step for all running requests, batched — plain requests one
// token each, MTP-speculative requests two (the last token and the MTP draft, verified by the main
// model in one mlaDecode call with Sq = 2). Finished or aborted requests free their cache blocks at
// once. On CUDA each decode step is a captured CUDA graph per padded batch size, replayed with new
// inputs; elsewhere it runs eagerly.
import { cuda } from '../cuda';
import type { Device } from '../device';
import { tensor } from '../factory';
import { graph as captureGraph, type CudaGraph } from '../graph';
import { Tensor } from '../tensor';
import type { DeepSeekModel, ForwardBatch } from '../model/forward';
import { K } from '../model/kernels';
import { BLOCK_TOKENS, KvCacheFullError, type PagedKvCache } from '../model/kv_cache';
import { type SamplingParams, stepSeed } from './sampling';

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** What the engine reports about a request as it runs. */
export interface SequenceSink {
  /** Committed tokens, in order. Returns true when the request is done (a stop condition matched). */
  tokens(ids: number[]): boolean;
  /** The request ended (after its last tokens). */
  finish(reason: FinishReason, error?: Error): void;
}

export interface SequenceRequest {
  prompt: number[];
  maxTokens: number;
  sampling: SamplingParams;
  speculative: boolean;
  signal?: AbortSignal;
  sink: SequenceSink;
}

interface Seq extends SequenceRequest {
  id: number;
  /** Tokens in the cache: also the position of `last`. */
  n: number;
  /** Last committed token, not yet in the cache. */
  last: number;
  /** MTP draft of the token after `last`. */
  draft: number;
  generated: number;
  drafts: number;
  accepted: number;
  done: boolean;
  onAbort?: () => void;
}

export interface EngineOptions {
  device: Device;
  /** Most sequences decoded together (default 64). */
  maxBatch: number;
  /** Longest sequence (prompt + generated) (default 4096). */
  maxSeqLen: number;
  /** Most prompt tokens prefilled in one step (default 8192). */
  maxPrefillTokens: number;
  /** Capture decode steps as CUDA graphs (default: on CUDA). */
  graphs: boolean;
}

/** Statistics of one request, filled by the engine. */
export interface SeqStats {
  drafts: number;
  accepted: number;
}

const BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Inputs of a decode step, as host arrays. */
interface DecodeInputs {
  ids: Int32Array;
  positions: Int32Array;
  slots: Int32Array;
  blockTable: Int32Array;
  seqLens: Int32Array;
}

interface DecodeOutputs {
  hidden: Tensor;
  logits: Tensor;
  argmax: Tensor;
}

/** Runs decode steps of one shape (padded batch B, sq tokens each), eagerly or through a graph. */
class DecodeRunner {
  private graph?: CudaGraph<DecodeOutputs>;
  private mtpGraph?: CudaGraph<Tensor>;
  private statics?: { ids: Tensor; mtpIds: Tensor; positions: Tensor; slots: Tensor; blockTable: Tensor; seqLens: Tensor };

  constructor(private readonly e: Engine, readonly B: number, readonly sq: number) {}

  private batch(t: { ids: Tensor; positions: Tensor; slots: Tensor; blockTable: Tensor; seqLens: Tensor }): ForwardBatch {
    return { mode: 'decode', ids: t.ids, positions: t.positions, slots: t.slots, blockTable: t.blockTable, seqLens: t.seqLens, batch: this.B, sq: this.sq };
  }

  private compute(b: ForwardBatch): DecodeOutputs {
    const m = this.e.model;
    const hidden = m.forward(b, this.e.cache.caches);
    const logits = m.logits(hidden);
    return { hidden, logits, argmax: K.argmax(logits) };
  }

  private computeMtp(b: ForwardBatch, hidden: Tensor): Tensor {
    const m = this.e.model;
    const h = m.mtpForward(0, hidden, b, this.e.cache.caches[m.config.numLayers]);
    const logits = m.logits(h);
    h.dispose();
    const am = K.argmax(logits);
    logits.dispose();
    return am;
  }

  private host(inp: DecodeInputs, dev: Device) {
    const mk = (a: Int32Array, shape: number[]) => tensor(a, { dtype: 'i32', device: dev, shape });
    return {
      ids: mk(inp.ids, [inp.ids.length]),
      positions: mk(inp.positions, [inp.positions.length]),
      slots: mk(inp.slots, [inp.slots.length]),
      blockTable: mk(inp.blockTable, [this.B, this.e.maxBlocks]),
      seqLens: mk(inp.seqLens, [this.B]),
    };
  }

  /** Main-model step. The returned tensors belong to the runner in graph mode: read them, don't dispose. */
  run(inp: DecodeInputs): { out: DecodeOutputs; release: () => void } {
    const dev = this.e.device;
    if (!this.e.opts.graphs) {
      const t = this.host(inp, dev);
      const out = this.compute(this.batch(t));
      return {
        out,
        release: () => {
          Object.values(t).forEach((x) => x.dispose());
          Object.values(out).forEach((x) => x.dispose());
        },
      };
    }
    if (!this.statics) {
      const t = this.host(inp, dev);
      this.statics = { ...t, mtpIds: tensor(inp.ids, { dtype: 'i32', device: dev }) };
    } else {
      this.statics.ids.write(inp.ids);
      this.statics.positions.write(inp.positions);
      this.statics.slots.write(inp.slots);
      this.statics.blockTable.write(inp.blockTable);
      this.statics.seqLens.write(inp.seqLens);
    }
    const s = this.statics;
    this.graph ??= captureGraph(dev, () => this.compute(this.batch(s)));
    this.graph.replay();
    return { out: this.graph.outputs, release: () => {} };
  }

  /** MTP step over the same positions as the last main step, with `ids` as the following tokens. */
  runMtp(inp: DecodeInputs, ids: Int32Array, hidden: Tensor): { argmax: Tensor; release: () => void } {
    const dev = this.e.device;
    if (!this.e.opts.graphs) {
      const t = this.host({ ...inp, ids }, dev);
      const am = this.computeMtp(this.batch(t), hidden);
      return { argmax: am, release: () => { Object.values(t).forEach((x) => x.dispose()); am.dispose(); } };
    }
    const s = this.statics!;
    s.mtpIds.write(ids);
    this.mtpGraph ??= captureGraph(dev, () => this.computeMtp(this.batch({ ...s, ids: s.mtpIds }), this.graph!.outputs.hidden));
    this.mtpGraph.replay();
    return { argmax: this.mtpGraph.outputs, release: () => {} };
  }

  dispose(): void {
    if (this.graph) {
      Object.values(this.graph.outputs).forEach((x) => x.dispose());
      this.graph.dispose();
    }
    if (this.mtpGraph) {
      this.mtpGraph.outputs.dispose();
      this.mtpGraph.dispose();
    }
    if (this.statics) Object.values(this.statics).forEach((x) => x.dispose());
  }
}

export class Engine {
  readonly maxBlocks: number;
  readonly opts: EngineOptions;
  private waiting: Seq[] = [];
  private running: Seq[] = [];
  private nextId = 1;
  private loop: Promise<void> | null = null;
  private runners = new Map<string, DecodeRunner>();
  private disposed = false;

  constructor(readonly model: DeepSeekModel, readonly cache: PagedKvCache, readonly device: Device, opts: Partial<EngineOptions> = {}) {
    this.opts = {
      device,
      maxBatch: opts.maxBatch ?? 64,
      maxSeqLen: opts.maxSeqLen ?? 4096,
      maxPrefillTokens: opts.maxPrefillTokens ?? 8192,
      graphs: opts.graphs ?? (device !== 'cpu' && cuda.isAvailable()),
    };
    this.maxBlocks = Math.ceil(this.opts.maxSeqLen / BLOCK_TOKENS);
  }

  get hasMtp(): boolean {
    return this.model.weights.mtp.length > 0;
  }

  /** Requests waiting for cache space or running. */
  get load(): { waiting: number; running: number } {
    return { waiting: this.waiting.length, running: this.running.length };
  }

  /** Queues a request; its sink hears about tokens and the end. Returns the request's statistics. */
  submit(r: SequenceRequest): SeqStats {
    if (this.disposed) throw new Error('generate: the model has been disposed');
    const s: Seq = { ...r, id: this.nextId++, n: 0, last: -1, draft: -1, generated: 0, drafts: 0, accepted: 0, done: false };
    const total = r.prompt.length + r.maxTokens + (r.speculative ? 1 : 0);
    if (total > this.opts.maxSeqLen) {
      queueMicrotask(() => this.end(s, 'error', new RangeError(`generate: prompt (${r.prompt.length} tokens) + maxTokens (${r.maxTokens}) exceeds maxSeqLen ${this.opts.maxSeqLen} of this model instance`)));
      return s;
    }
    if (!this.cache.fitsEver(total)) {
      queueMicrotask(() => this.end(s, 'error', new KvCacheFullError(Math.ceil(total / BLOCK_TOKENS), this.cache.freeBlocks, this.cache.numBlocks)));
      return s;
    }
    if (r.signal) {
      if (r.signal.aborted) {
        queueMicrotask(() => this.end(s, 'abort'));
        return s;
      }
      s.onAbort = () => this.end(s, 'abort');
      r.signal.addEventListener('abort', s.onAbort, { once: true });
    }
    this.waiting.push(s);
    this.loop ??= this.runLoop().finally(() => {
      this.loop = null;
      if (this.waiting.length || this.running.length) this.kick();
    });
    return s;
  }

  private kick(): void {
    this.loop ??= this.runLoop().finally(() => {
      this.loop = null;
      if (this.waiting.length || this.running.length) this.kick();
    });
  }

  /** Ends a request: frees its blocks at once and tells its sink. Idempotent. */
  private end(s: Seq, reason: FinishReason, error?: Error): void {
    if (s.done) return;
    s.done = true;
    this.cache.free(s.id);
    if (s.onAbort) s.signal?.removeEventListener('abort', s.onAbort);
    this.waiting = this.waiting.filter((x) => x !== s);
    this.running = this.running.filter((x) => x !== s);
    s.sink.finish(reason, error);
  }

  /** Commits tokens to a request; ends it on a stop condition or at maxTokens. */
  private commit(s: Seq, ids: number[]): void {
    if (s.done) return;
    const room = s.maxTokens - s.generated;
    const take = ids.slice(0, Math.max(0, room));
    s.generated += take.length;
    const stop = take.length ? s.sink.tokens(take) : false;
    if (stop) this.end(s, 'stop');
    else if (s.generated >= s.maxTokens) this.end(s, 'length');
  }

  private async runLoop(): Promise<void> {
    // Let the caller finish submitting (several generate() calls in the same tick share a prefill).
    await new Promise((r) => setImmediate(r));
    while (!this.disposed && (this.waiting.length || this.running.length)) {
      const admitted = this.admit();
      const before = this.running.filter((s) => !admitted.includes(s));
      try {
        if (admitted.length) await this.prefill(admitted);
      } catch (e) {
        for (const s of admitted) this.end(s, 'error', e as Error);
      }
      const plain = before.filter((s) => !s.done && !s.speculative);
      const spec = before.filter((s) => !s.done && s.speculative);
      for (const group of [plain, spec]) {
        for (let i = 0; i < group.length; i += this.opts.maxBatch) {
          const part = group.slice(i, i + this.opts.maxBatch).filter((s) => !s.done);
          if (!part.length) continue;
          try {
            await (part[0].speculative ? this.specStep(part) : this.decodeStep(part));
          } catch (e) {
            for (const s of part) this.end(s, 'error', e as Error);
          }
        }
      }
      if (!admitted.length && !before.length && this.waiting.length) {
        // Nothing runs and nothing could be admitted: wait for cache space can never come.
        for (const s of [...this.waiting]) this.end(s, 'error', new KvCacheFullError(Math.ceil((s.prompt.length + s.maxTokens) / BLOCK_TOKENS), this.cache.freeBlocks, this.cache.numBlocks));
      }
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Moves waiting requests into the running set while their KV budget fits. */
  private admit(): Seq[] {
    const out: Seq[] = [];
    let tokens = 0;
    while (this.waiting.length && this.running.length < this.opts.maxBatch) {
      const s = this.waiting[0];
      const need = s.prompt.length + s.maxTokens + (s.speculative ? 1 : 0);
      if (out.length && tokens + s.prompt.length > this.opts.maxPrefillTokens) break;
      if (!this.cache.canReserve(s.id, need)) break;
      this.cache.reserve(s.id, need);
      this.waiting.shift();
      this.running.push(s);
      out.push(s);
      tokens += s.prompt.length;
    }
    return out;
  }

  private async prefill(seqs: Seq[]): Promise<void> {
    const dev = this.device;
    const T = seqs.reduce((a, s) => a + s.prompt.length, 0);
    const ids = new Int32Array(T), pos = new Int32Array(T), slots = new Int32Array(T), cu = new Int32Array(seqs.length + 1), rows = new Int32Array(seqs.length);
    let o = 0, maxLen = 0;
    seqs.forEach((s, i) => {
      for (let p = 0; p < s.prompt.length; p++) {
        ids[o + p] = s.prompt[p];
        pos[o + p] = p;
        slots[o + p] = this.cache.slot(s.id, p);
      }
      o += s.prompt.length;
      cu[i + 1] = o;
      rows[i] = o - 1;
      maxLen = Math.max(maxLen, s.prompt.length);
    });
    const mk = (a: Int32Array) => tensor(a, { dtype: 'i32', device: dev });
    const b: ForwardBatch = { mode: 'prefill', ids: mk(ids), positions: mk(pos), slots: mk(slots), cuSeqlens: mk(cu), maxSeqlen: maxLen };
    const rowT = mk(rows);
    const hidden = this.model.forward(b, this.cache.caches);
    const logits = this.model.logits(hidden, rowT);
    try {
      const first = await this.sampleRows(logits, seqs.map((s) => ({ s, pos: s.prompt.length })));
      seqs.forEach((s, i) => {
        s.n = s.prompt.length;
        s.last = first[i];
      });
      const spec = seqs.filter((s) => s.speculative);
      if (spec.length) {
        // The MTP module's cache: positions 0..P-1 from (h_i, t_{i+1}); its last row drafts t_{P+1}.
        const next = new Int32Array(T);
        let q = 0;
        seqs.forEach((s) => {
          for (let p = 0; p < s.prompt.length; p++) next[q + p] = p + 1 < s.prompt.length ? s.prompt[p + 1] : s.last;
          q += s.prompt.length;
        });
        const nb: ForwardBatch = { ...b, ids: mk(next) };
        const h = this.model.mtpForward(0, hidden, nb, this.cache.caches[this.model.config.numLayers]);
        const ml = this.model.logits(h, rowT);
        const am = K.argmax(ml);
        const d = (await am.toArray()) as Int32Array;
        seqs.forEach((s, i) => (s.draft = d[i]));
        [nb.ids, h, ml, am].forEach((t) => t.dispose());
      }
    } finally {
      [b.ids, b.positions, b.slots, b.cuSeqlens!, rowT, hidden, logits].forEach((t) => t.dispose());
    }
    for (const s of seqs) this.commit(s, [s.last]);
  }

  /** Samples one token per row of logits [R, V] for (request, position) pairs. */
  private async sampleRows(logits: Tensor, rows: { s: Seq; pos: number }[], argmax?: Tensor): Promise<number[]> {
    const am = argmax ?? K.argmax(logits);
    const sampled: (Promise<number> | null)[] = rows.map(({ s, pos }, i) => {
      if (s.sampling.temperature === 0) return null;
      const row = logits.slice(0, i, i + 1);
      const t = K.sample(row, { temperature: s.sampling.temperature, topK: s.sampling.topK || undefined, topP: s.sampling.topP, seed: stepSeed(s.sampling.seed, pos) });
      row.dispose();
      return t.toArray().then((a) => {
        t.dispose();
        return (a as Int32Array)[0];
      });
    });
    const greedy = (await am.toArray()) as Int32Array;
    if (!argmax) am.dispose();
    const out: number[] = [];
    for (let i = 0; i < rows.length; i++) out.push(sampled[i] ? await sampled[i]! : greedy[i]);
    return out;
  }

  private runner(B: number, sq: number): DecodeRunner {
    const Bp = this.opts.graphs ? BUCKETS.find((x) => x >= B) ?? B : B;
    const key = `${Bp}x${sq}`;
    let r = this.runners.get(key);
    if (!r) this.runners.set(key, (r = new DecodeRunner(this, Bp, sq)));
    return r;
  }

  /** Host inputs for B sequences of sq tokens starting at each one's `n`; padding rows use scratch block 0. */
  private inputs(seqs: Seq[], Bp: number, sq: number, tok: (s: Seq, j: number) => number): DecodeInputs {
    const mb = this.maxBlocks;
    const inp: DecodeInputs = {
      ids: new Int32Array(Bp * sq),
      positions: new Int32Array(Bp * sq),
      slots: new Int32Array(Bp * sq),
      blockTable: new Int32Array(Bp * mb),
      seqLens: new Int32Array(Bp).fill(sq),
    };
    for (let i = 0; i < Bp * sq; i++) inp.slots[i] = i % BLOCK_TOKENS; // padding: scratch block 0
    seqs.forEach((s, i) => {
      for (let j = 0; j < sq; j++) {
        inp.ids[i * sq + j] = tok(s, j);
        inp.positions[i * sq + j] = s.n + j;
        inp.slots[i * sq + j] = this.cache.slot(s.id, s.n + j);
      }
      inp.blockTable.set(this.cache.blocks(s.id), i * mb);
      inp.seqLens[i] = s.n + sq;
    });
    return inp;
  }

  private async decodeStep(seqs: Seq[]): Promise<void> {
    const r = this.runner(seqs.length, 1);
    const inp = this.inputs(seqs, r.B, 1, (s) => s.last);
    const { out, release } = r.run(inp);
    try {
      const next = await this.sampleRows(out.logits, seqs.map((s) => ({ s, pos: s.n + 1 })), out.argmax);
      seqs.forEach((s, i) => {
        if (s.done) return;
        s.n += 1;
        s.last = next[i];
        this.commit(s, [next[i]]);
      });
    } finally {
      release();
    }
  }

  /** Verify [last, draft] with the main model, accept the draft if it is what greedy decoding picks, draft again with MTP. */
  private async specStep(seqs: Seq[]): Promise<void> {
    const r = this.runner(seqs.length, 2);
    const inp = this.inputs(seqs, r.B, 2, (s, j) => (j === 0 ? s.last : s.draft));
    const main = r.run(inp);
    let mtp: { argmax: Tensor; release: () => void } | undefined;
    try {
      const am = (await main.out.argmax.toArray()) as Int32Array;
      const accept = seqs.map((s, i) => am[2 * i] === s.draft);
      const ids = new Int32Array(r.B * 2);
      seqs.forEach((s, i) => {
        ids[2 * i] = accept[i] ? s.draft : am[2 * i];
        ids[2 * i + 1] = accept[i] ? am[2 * i + 1] : am[2 * i];
      });
      mtp = r.runMtp(inp, ids, main.out.hidden);
      const d = (await mtp.argmax.toArray()) as Int32Array;
      seqs.forEach((s, i) => {
        if (s.done) return;
        s.drafts++;
        if (accept[i]) {
          s.accepted++;
          s.n += 2;
          s.last = am[2 * i + 1];
          s.draft = d[2 * i + 1];
          this.commit(s, [am[2 * i], am[2 * i + 1]]);
        } else {
          s.n += 1;
          s.last = am[2 * i];
          s.draft = d[2 * i];
          this.commit(s, [am[2 * i]]);
        }
      });
    } finally {
      main.release();
      mtp?.release();
    }
  }

  /** Waits for the loop to go idle. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  dispose(): void {
    this.disposed = true;
    for (const s of [...this.waiting, ...this.running]) this.end(s, 'abort');
    for (const r of this.runners.values()) r.dispose();
    this.runners.clear();
  }
}
