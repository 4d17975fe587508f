// loadModel(dir) -> Model: generate() streams tokens and text, logits() for verification, dispose().
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Device, type DeviceLike, deviceName, resolveDevice } from '../device';
import { cuda } from '../cuda';
import { tensor } from '../factory';
import type { Tensor } from '../tensor';
import { Checkpoint } from '../model/checkpoint';
import { type ModelConfig, latentDim } from '../model/config';
import { DeepSeekModel, type ForwardBatch, type ForwardOptions } from '../model/forward';
import { BLOCK_TOKENS, PagedKvCache } from '../model/kv_cache';
import { type ChatMessage, ModelTokenizer } from '../model/tokenizer';
import { type LoadProgress, type ModelWeights, disposeWeights, loadWeights, weightBytes } from '../model/weights';
import { Engine, type FinishReason } from './engine';
import { type SamplingParams, checkSampling } from './sampling';

export interface LoadModelOptions {
  /** Where the weights go (default: cuda:0 when a GPU is present, else cpu). */
  device?: DeviceLike;
  /** Loading progress (bytes read from the checkpoint). */
  onProgress?: (p: LoadProgress) => void;
  /** Aborts loading; what was loaded is freed and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** 'fp8': quantize a bf16 checkpoint's linears to FP8 128x128 blocks on load. */
  quantize?: 'fp8' | null;
  /** Longest sequence (prompt + generated tokens) a request may have (default 4096). */
  maxSeqLen?: number;
  /** Most requests decoded together (default 64; 8 on cpu). */
  maxBatch?: number;
  /** KV cache capacity in tokens over all requests (default: maxBatch * maxSeqLen, less when memory is short). */
  kvCacheTokens?: number;
  /** Load the MTP module for speculative decoding (default true when the checkpoint has one). */
  mtp?: boolean;
  /** Capture decode steps as CUDA graphs (default true on CUDA). */
  cudaGraphs?: boolean;
}

export interface GenerateOptions {
  /** Most tokens to generate (default 256). */
  maxTokens?: number;
  /** 0 = greedy (the default unless the model's generation_config.json says otherwise). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the sampling; the same seed gives the same tokens whatever else runs in the batch. */
  seed?: number | bigint;
  /** Stop strings: generation ends before the first one (it is not part of the text). */
  stop?: string | string[];
  /** Extra stop token ids (the tokenizer's EOS always stops unless ignoreEos). */
  stopTokens?: number[];
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** 'mtp': multi-token prediction drafts checked by the main model (temperature 0 only). */
  speculative?: 'mtp' | null;
}

export interface GenerateEvent {
  token: number;
  /** Text this token completes ('' while a multi-byte character or a possible stop string is pending). */
  text: string;
}

export interface GenerateSummary {
  promptTokens: number;
  /** Generated tokens (the stop token excluded). */
  tokens: number;
  text: string;
  finishReason: FinishReason;
  /** Milliseconds from the call to the first generated token. */
  timeToFirstTokenMs: number;
  totalMs: number;
  /** Generated tokens per second after the first one (decode speed). */
  tokensPerSecond: number;
  /** MTP: drafted tokens accepted / drafted (speculative runs only). */
  acceptanceRate?: number;
  error?: Error;
}

/** A running generation: iterate it for tokens; `summary` resolves when it ends (it never rejects). */
export interface GenerateStream extends AsyncIterable<GenerateEvent> {
  readonly summary: Promise<GenerateSummary>;
  /** All the text, once done (rejects if the generation failed). */
  text(): Promise<string>;
}

/** A loaded model with its tokenizer, KV cache and engine. */
export class Model {
  private disposed = false;

  /** @internal use loadModel(). */
  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly tokenizer: ModelTokenizer,
    readonly network: DeepSeekModel,
    readonly cache: PagedKvCache,
    readonly engine: Engine,
    readonly device: Device,
    private readonly defaults: Partial<SamplingParams>,
  ) {}

  /** Bytes of weights on the device. */
  get weightBytes(): number {
    return weightBytes(this.network.weights);
  }

  /** Prompt ids of a prompt string (BOS added per the tokenizer config) or chat messages (chat template). */
  encodePrompt(prompt: string | readonly ChatMessage[]): number[] {
    if (typeof prompt === 'string') return this.tokenizer.encode(prompt);
    if (Array.isArray(prompt)) return this.tokenizer.encodeChat(prompt);
    throw new TypeError('generate: prompt must be a string or an array of chat messages');
  }

  /**
   * Generates from a prompt string or chat messages. Returns an async iterable of {token, text} and a
   * `summary` promise (tokens, time to first token, tokens/s, finish reason, MTP acceptance rate).
   * Several calls in flight are decoded together.
   */
  generate(prompt: string | readonly ChatMessage[] | readonly number[], opts: GenerateOptions = {}): GenerateStream {
    if (this.disposed) throw new Error('generate: the model has been disposed');
    const t0 = performance.now();
    const ids = Array.isArray(prompt) && prompt.every((x) => typeof x === 'number') ? (prompt as number[]).slice() : this.encodePrompt(prompt as string | ChatMessage[]);
    if (ids.length === 0) throw new RangeError('generate: the prompt is empty');
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) throw new RangeError(`generate: token id ${id} is outside the vocabulary [0, ${this.config.vocabSize})`);
    const maxTokens = opts.maxTokens ?? 256;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new RangeError(`generate: maxTokens must be a positive integer, got ${maxTokens}`);
    const sampling = checkSampling(opts, this.defaults);
    const speculative = opts.speculative === 'mtp';
    if (opts.speculative !== undefined && opts.speculative !== null && !speculative) throw new RangeError(`generate: speculative must be 'mtp' or null, got ${JSON.stringify(opts.speculative)}`);
    if (speculative) {
      if (!this.engine.hasMtp) throw new RangeError('generate: speculative "mtp" needs a checkpoint with an MTP module (num_nextn_predict_layers > 0), loaded with mtp: true');
      if (sampling.temperature !== 0) throw new RangeError('generate: speculative "mtp" decodes greedily; use temperature 0');
    }
    const stops = opts.stop === undefined ? [] : Array.isArray(opts.stop) ? opts.stop : [opts.stop];
    if (stops.some((s) => typeof s !== 'string' || s.length === 0)) throw new TypeError('generate: stop must be a non-empty string or an array of them');
    const stopIds = new Set<number>(opts.stopTokens ?? []);
    if (!opts.ignoreEos) {
      if (this.config.eosTokenId !== null) stopIds.add(this.config.eosTokenId);
      if (this.tokenizer.eosId !== null) stopIds.add(this.tokenizer.eosId);
    }

    // Events flow from the engine into a queue the iterator drains.
    const queue: GenerateEvent[] = [];
    let wake: (() => void) | null = null;
    let ended = false;
    let failure: Error | undefined;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    const dec = this.tokenizer.streamDecoder();
    let text = '', held = '', count = 0, tFirst = 0, tLast = 0, stopMatched = false;
    let resolveSummary!: (s: GenerateSummary) => void;
    const summary = new Promise<GenerateSummary>((r) => (resolveSummary = r));
    const stats = this.engine.submit({
      prompt: ids,
      maxTokens,
      sampling,
      speculative,
      signal: opts.signal,
      sink: {
        tokens: (toks) => {
          for (const tok of toks) {
            const now = performance.now();
            if (count === 0) tFirst = now;
            tLast = now;
            if (stopIds.has(tok)) return true;
            count++;
            held += dec.push(tok);
            // Stop strings: cut at the first match; hold back a tail that may still become one.
            let cut = -1;
            for (const s of stops) {
              const k = held.indexOf(s);
              if (k >= 0 && (cut < 0 || k < cut)) cut = k;
            }
            if (cut >= 0) {
              stopMatched = true;
              const out = held.slice(0, cut);
              text += out;
              held = '';
              queue.push({ token: tok, text: out });
              notify();
              return true;
            }
            let keep = 0;
            for (const s of stops) for (let l = Math.min(s.length - 1, held.length); l > keep; l--) if (s.startsWith(held.slice(held.length - l))) keep = l;
            const out = held.slice(0, held.length - keep);
            held = held.slice(held.length - keep);
            text += out;
            queue.push({ token: tok, text: out });
          }
          notify();
          return false;
        },
        finish: (reason, error) => {
          if (!stopMatched) {
            const rest = held + dec.flush();
            if (rest && queue.length) queue[queue.length - 1] = { ...queue[queue.length - 1], text: queue[queue.length - 1].text + rest };
            text += rest;
            held = '';
          }
          ended = true;
          failure = reason === 'abort' ? abortError(opts.signal) : error;
          const now = performance.now();
          resolveSummary({
            promptTokens: ids.length,
            tokens: count,
            text,
            finishReason: reason,
            timeToFirstTokenMs: count || tFirst ? tFirst - t0 : now - t0,
            totalMs: now - t0,
            tokensPerSecond: count > 1 && tLast > tFirst ? ((count - 1) * 1000) / (tLast - tFirst) : 0,
            acceptanceRate: speculative ? (stats.drafts ? stats.accepted / stats.drafts : 0) : undefined,
            error: reason === 'error' ? error : undefined,
          });
          notify();
        },
      },
    });
    const iterate = async function* (): AsyncGenerator<GenerateEvent> {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (ended) break;
        await new Promise<void>((r) => (wake = r));
      }
      while (queue.length) yield queue.shift()!;
      if (failure) throw failure;
    };
    return {
      summary,
      [Symbol.asyncIterator]: iterate,
      async text() {
        for await (const _ of iterate()) void _;
        return text;
      },
    };
  }

  /**
   * Logits f32 [ids.length, vocab] of every position of `ids` (one prefill; the cache blocks it uses are
   * freed afterwards). For verification; `onLayer` sees each layer's hidden state.
   */
  logits(ids: readonly number[], opts: ForwardOptions = {}): Tensor {
    if (this.disposed) throw new Error('logits: the model has been disposed');
    if (!ids.length) throw new RangeError('logits: ids is empty');
    const seq = -1 - Math.floor(Math.random() * 1e9);
    this.cache.reserve(seq, ids.length);
    try {
      const mk = (a: ArrayLike<number>) => tensor(Int32Array.from(a), { dtype: 'i32', device: this.device });
      const b: ForwardBatch = {
        mode: 'prefill',
        ids: mk(ids),
        positions: mk(ids.map((_, i) => i)),
        slots: mk(ids.map((_, i) => this.cache.slot(seq, i))),
        cuSeqlens: mk([0, ids.length]),
        maxSeqlen: ids.length,
      };
      const h = this.network.forward(b, this.cache.caches, opts);
      const l = this.network.logits(h);
      [b.ids, b.positions, b.slots, b.cuSeqlens!, h].forEach((t) => t.dispose());
      return l;
    } finally {
      this.cache.free(seq);
    }
  }

  /** Frees weights, cache and graphs; requests in flight end with finishReason 'abort'. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.dispose();
    this.cache.dispose();
    disposeWeights(this.network.weights);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function abortError(signal?: AbortSignal): Error {
  const r = signal?.reason;
  if (r instanceof Error) return r;
  const e = new Error('generate: aborted');
  e.name = 'AbortError';
  return e;
}

function defaultDevice(d: DeviceLike | undefined): Device {
  if (d !== undefined) return deviceName(resolveDevice(d));
  return cuda.isAvailable() ? 'cuda:0' : 'cpu';
}

function generationDefaults(dir: string): Partial<SamplingParams> {
  const p = join(dir, 'generation_config.json');
  if (!existsSync(p)) return {};
  try {
    const g = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    if (g.do_sample === false) return { temperature: 0 };
    const out: Partial<SamplingParams> = {};
    if (typeof g.temperature === 'number') out.temperature = g.temperature;
    if (typeof g.top_p === 'number') out.topP = g.top_p;
    if (typeof g.top_k === 'number') out.topK = g.top_k;
    return out;
  } catch {
    return {};
  }
}

/** Builds a Model from weights already on a device (used by loadModel and by benchmarks with random weights). */
export function modelFromWeights(
  config: ModelConfig,
  weights: ModelWeights,
  tokenizer: ModelTokenizer,
  device: Device,
  o: Omit<LoadModelOptions, 'device' | 'onProgress' | 'signal' | 'quantize'> & { dir?: string; defaults?: Partial<SamplingParams> } = {},
): Model {
  const maxSeqLen = o.maxSeqLen ?? Math.min(4096, config.maxPositionEmbeddings);
  const maxBatch = o.maxBatch ?? (device === 'cpu' ? 8 : 64);
  const layers = config.numLayers + weights.mtp.length;
  const bytesPerToken = layers * latentDim(config) * 2;
  let tokens = o.kvCacheTokens ?? maxBatch * maxSeqLen;
  if (o.kvCacheTokens === undefined && device !== 'cpu') {
    // Leave room for activations and graphs: the cache takes at most 60% of what is free.
    const free = cuda.memoryStats(device).free;
    tokens = Math.min(tokens, Math.floor((0.6 * free) / bytesPerToken));
  }
  tokens = Math.max(tokens, 2 * BLOCK_TOKENS);
  const cache = new PagedKvCache({ layers, numBlocks: Math.ceil(tokens / BLOCK_TOKENS) + 1, width: latentDim(config), device });
  const network = new DeepSeekModel(config, weights);
  const engine = new Engine(network, cache, device, { maxBatch, maxSeqLen, graphs: o.cudaGraphs });
  return new Model(o.dir ?? '', config, tokenizer, network, cache, engine, device, o.defaults ?? {});
}

/**
 * Loads a Hugging Face DeepSeek-V3 / V2 checkpoint directory onto a device: validates config and every
 * shard header first, then streams the weights (onProgress, signal), reads the tokenizer, and sizes the
 * paged KV cache.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Model> {
  if (typeof dir !== 'string' || !dir) throw new TypeError('loadModel: dir must be a model directory path');
  const device = defaultDevice(opts.device);
  const ck = Checkpoint.open(dir);
  const tokenizer = ModelTokenizer.load(dir);
  opts.signal?.throwIfAborted();
  const skipMtp = opts.mtp === false || ck.config.numNextnPredictLayers === 0;
  const weights = await loadWeights(ck, { device, quantize: opts.quantize, onProgress: opts.onProgress, signal: opts.signal, skipMtp });
  return modelFromWeights(ck.config, weights, tokenizer, device, { ...opts, dir, defaults: generationDefaults(dir) });
}
