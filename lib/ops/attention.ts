// Attention ops of DeepSeek's Multi-head Latent Attention: variable-length prefill attention, the paged
// latent cache write, and decode over that cache with absorbed queries.
import { DTYPE_SIZE } from '../dtype';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { Check } from './validate';

/** Tokens per block of the MLA latent cache. */
export const MLA_BLOCK_TOKENS = 64;
/** Width of a cached token: 512 latent dims (kv_lora_rank) + 64 rotary dims. */
export const MLA_CACHE_WIDTH = 576;
/** Latent rank: the value width of MLA decode. */
export const MLA_LATENT = 512;
const MAX_SPLITS = 128;

// The CUDA kernels read with 16-byte vector loads: a CUDA input whose view starts off a 16-byte boundary is
// copied (a fresh allocation is aligned). Returns a contiguous tensor to dispose after the call.
function aligned(t: Tensor): Tensor {
  const c = t.contiguous();
  if (t.deviceIndex < 0 || (c.offset * DTYPE_SIZE[c.dtype]) % 16 === 0) return c;
  const copy = c.clone();
  c.dispose();
  return copy;
}

function disposeAll(ts: Tensor[]): void {
  for (const t of ts) t.dispose();
}

export interface AttentionPrefillOptions {
  /** i32 [B + 1]: sequence b is tokens cuSeqlens[b] .. cuSeqlens[b+1]; must run from 0 to T, non-decreasing. */
  cuSeqlens: Tensor;
  /**
   * The longest sequence (sizes the CUDA grid, since cuSeqlens lives on the device). Default T. A longer
   * sequence is skipped and makes the next read on the device reject with a RangeError.
   */
  maxSeqlen?: number;
  /** Each query sees only keys up to its own position (default true). */
  causal?: boolean;
  /** Softmax scale (default Dqk^-0.5; DeepSeek with YaRN: see yarnSoftmaxScale). */
  scale?: number;
}

/**
 * Variable-length attention over a packed batch (MLA prefill): q, k [T, H, Dqk], v [T, H, Dv] -> [T, H, Dv]
 * in q's dtype (bf16 or f32; k and v the same). Row (t, h) attends to the keys of its own sequence (up to
 * itself when causal) with softmax(scale * q.k) in f32, accumulating in f32 (online softmax).
 * Dqk: a multiple of 8 up to 256 (MLA: 192); Dv up to 256 (MLA: 128). Zero-length sequences are allowed.
 * Bad cuSeqlens (an entry outside [0, T], a decrease, a length above maxSeqlen, not starting at 0 or not
 * ending at T) are found by the kernel: the affected rows are skipped and the next read on the device
 * rejects with a RangeError naming attentionPrefill.
 */
export function attentionPrefill(q: Tensor, k: Tensor, v: Tensor, options: AttentionPrefillOptions): Tensor {
  const c = new Check('attentionPrefill');
  c.tensor(q, 'q', { dtypes: ['bf16', 'f32'], ndim: 3 });
  c.tensor(k, 'k', { dtypes: [q.dtype], ndim: 3 });
  c.tensor(v, 'v', { dtypes: [q.dtype], ndim: 3 });
  if (options === undefined) c.type('options with cuSeqlens is required');
  const o = c.options<AttentionPrefillOptions>(options);
  const cu = c.tensor(o.cuSeqlens, 'cuSeqlens', { dtypes: ['i32'], ndim: 1 });
  const [T, H, Dqk] = q.shape;
  c.shape(k, 'k', q.shape, 'the shape of q');
  c.dim(v, 'v', 0, T, 'tokens of q');
  c.dim(v, 'v', 1, H, 'heads of q');
  const Dv = v.shape[2];
  if (Dqk < 8 || Dqk > 256 || Dqk % 8) c.range(`the head dim of q and k must be a multiple of 8 in [8, 256], got ${Dqk}`);
  if (Dv < 1 || Dv > 256) c.range(`the head dim of v must be in [1, 256], got ${Dv}`);
  if (cu.shape[0] < 1) c.range('cuSeqlens must hold B + 1 >= 1 offsets, got shape [0]');
  if (cu.shape[0] === 1 && T > 0) c.range(`cuSeqlens holds no sequence (B = 0) but q has ${T} tokens`);
  const maxSeqlen = c.number(o.maxSeqlen ?? T, 'maxSeqlen', { integer: true, min: 0, max: 2 ** 31 - 1 });
  const causal = c.boolean(o.causal ?? true, 'causal');
  const scale = c.number(o.scale ?? 1 / Math.sqrt(Dqk), 'scale');
  const dev = c.sameDevice([q, 'q'], [k, 'k'], [v, 'v'], [cu, 'cuSeqlens']);
  const args = [aligned(q), aligned(k), aligned(v), cu.contiguous()];
  const out = Tensor.alloc([T, H, Dv], q.dtype, dev);
  try {
    getNative().attentionPrefill(args[0], args[1], args[2], args[3], out, maxSeqlen, causal, scale);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    disposeAll(args);
  }
  return out;
}

/**
 * Writes latent rows into the paged MLA cache, in place: `cache[slot / 64, slot % 64, :] = latent[t]` with
 * slot = slots[t]. cache: bf16 [numBlocks, 64, 576]; latent: [T, 576] bf16 or f32 (rounded to bf16, nearest
 * even); slots: i32 [T]. A slot outside [0, numBlocks * 64) is skipped and makes the next read on the device
 * reject with a RangeError naming mlaCacheWrite.
 */
export function mlaCacheWrite(cache: Tensor, latent: Tensor, slots: Tensor): void {
  const c = new Check('mlaCacheWrite');
  checkCache(c, cache);
  c.tensor(latent, 'latent', { dtypes: ['bf16', 'f32'], ndim: 2 });
  c.tensor(slots, 'slots', { dtypes: ['i32'], ndim: 1 });
  c.dim(latent, 'latent', 1, MLA_CACHE_WIDTH, 'the cache row width');
  c.dim(slots, 'slots', 0, latent.shape[0], 'one slot per row of latent');
  c.sameDevice([cache, 'cache'], [latent, 'latent'], [slots, 'slots']);
  const args = [aligned(latent), slots.contiguous()];
  try {
    getNative().mlaCacheWrite(cache, args[0], args[1]);
  } finally {
    disposeAll(args);
  }
}

function checkCache(c: Check, cache: unknown): Tensor {
  const t = c.tensor(cache, 'cache', { dtypes: ['bf16'], ndim: 3 });
  c.dim(t, 'cache', 1, MLA_BLOCK_TOKENS, 'tokens per cache block');
  c.dim(t, 'cache', 2, MLA_CACHE_WIDTH, 'latent + rope dims');
  if (!t.isContiguous()) c.range('cache must be contiguous');
  if (t.deviceIndex >= 0 && (t.offset * 2) % 16) c.range('cache must start at a 16-byte boundary (offset a multiple of 8 elements)');
  return t;
}

export interface MlaDecodeOptions {
  /** Softmax scale of the absorbed scores (DeepSeek-V3: yarnSoftmaxScale(192, yarn), the pre-absorption head dim). */
  scale: number;
  /** Value width: the first dv dims of each cached token. Must be 512, the latent rank (default). */
  dv?: number;
  /** Query j of Sq sees positions < seqLen - Sq + j + 1 (default true); otherwise all < seqLen. */
  causal?: boolean;
  /**
   * CUDA only: sequence splits (flash-decoding), 1..128. Default: enough to fill the GPU's SMs, bounded so
   * each split reads at least mlaMinSplitTokens cached tokens. A tuning and testing knob.
   */
  numSplits?: number;
}

/** The fewest cached tokens a decode split reads for a group of `rows` query rows (native/math/attention_common.h). */
function mlaMinSplitTokens(rows: number): number {
  return Math.max(128, Math.ceil((rows * 4) / 32) * 32);
}

const smCounts = new Map<number, number>();
function smCount(device: number): number {
  let n = smCounts.get(device);
  if (n === undefined) {
    n = getNative().deviceInfo(device).smCount;
    smCounts.set(device, n);
  }
  return n;
}

/** Default split count: blocks (B x row groups x splits) about one per SM, each split long enough to pay off. */
function defaultSplits(device: number, B: number, rows: number, groupRows: number, maxTokens: number): number {
  const groups = Math.ceil(rows / groupRows);
  const bySm = Math.ceil(smCount(device) / Math.max(1, B * groups));
  const byLen = Math.ceil(maxTokens / mlaMinSplitTokens(Math.min(rows, groupRows)));
  return Math.max(1, Math.min(bySm, byLen, MAX_SPLITS));
}

/**
 * Multi-head Latent Attention decode over the paged latent cache, with absorbed queries:
 * q [B, Sq, H, 576] (bf16 or f32), cache bf16 [numBlocks, 64, 576], blockTable i32 [B, maxBlocks] (block ids of
 * each sequence's positions 0-63, 64-127, ...), seqLens i32 [B] (cached tokens, the Sq new ones included).
 * Keys are all 576 dims of each cached token, values its first 512. Query j (0..Sq-1, Sq <= 4 for speculative
 * tokens) of sequence b sees positions < seqLens[b] - Sq + j + 1 when causal.
 * Returns `out` [B, Sq, H, 512] in q's dtype and `lse` f32 [B, H, Sq], the natural-log sum-exp of the scaled
 * scores. A query that sees no position (seqLens[b] = 0, or seqLens[b] < Sq when causal) gets out = 0 and
 * lse = -Infinity. Only the block-table entries covering [0, seqLens[b]) are read; a seqLen outside
 * [0, maxBlocks * 64] or a block id outside [0, numBlocks) skips that sequence and makes the next read on the
 * device reject with a RangeError naming mlaDecode.
 */
export function mlaDecode(q: Tensor, cache: Tensor, blockTable: Tensor, seqLens: Tensor, options: MlaDecodeOptions): { out: Tensor; lse: Tensor } {
  const c = new Check('mlaDecode');
  c.tensor(q, 'q', { dtypes: ['bf16', 'f32'], ndim: 4 });
  checkCache(c, cache);
  c.tensor(blockTable, 'blockTable', { dtypes: ['i32'], ndim: 2 });
  c.tensor(seqLens, 'seqLens', { dtypes: ['i32'], ndim: 1 });
  if (options === undefined) c.type('options with scale is required');
  const o = c.options<MlaDecodeOptions>(options);
  const [B, Sq, H] = q.shape;
  c.dim(q, 'q', 3, MLA_CACHE_WIDTH, 'absorbed query width: 512 latent + 64 rope');
  if (Sq < 1 || Sq > 4) c.range(`q.shape[1] (Sq, new tokens per sequence) must be in [1, 4], got ${Sq}`);
  c.dim(blockTable, 'blockTable', 0, B, 'one row per sequence of q');
  c.dim(seqLens, 'seqLens', 0, B, 'one length per sequence of q');
  const scale = c.number(o.scale, 'scale');
  const dv = c.number(o.dv ?? MLA_LATENT, 'dv', { integer: true });
  if (dv !== MLA_LATENT) c.range(`dv must be ${MLA_LATENT} (the latent rank of the cache), got ${dv}`);
  const causal = c.boolean(o.causal ?? true, 'causal');
  const dev = c.sameDevice([q, 'q'], [cache, 'cache'], [blockTable, 'blockTable'], [seqLens, 'seqLens']);
  const maxBlocks = blockTable.shape[1];
  const groupRows = q.dtype === 'bf16' ? 64 : 16;
  let nsplit = 1;
  if (dev >= 0) {
    nsplit = o.numSplits === undefined
      ? defaultSplits(dev, B, Sq * H, groupRows, maxBlocks * MLA_BLOCK_TOKENS)
      : c.number(o.numSplits, 'numSplits', { integer: true, min: 1, max: MAX_SPLITS });
  } else if (o.numSplits !== undefined) {
    c.number(o.numSplits, 'numSplits', { integer: true, min: 1, max: MAX_SPLITS });
  }
  const args = [aligned(q), blockTable.contiguous(), seqLens.contiguous()];
  const out = Tensor.alloc([B, Sq, H, MLA_LATENT], q.dtype, dev);
  const lse = Tensor.alloc([B, H, Sq], 'f32', dev);
  const workspace = nsplit > 1 ? Tensor.alloc([B * nsplit * Sq * H * (MLA_LATENT + 1)], 'f32', dev) : null;
  try {
    getNative().mlaDecode(args[0], cache, args[1], args[2], out, lse, workspace, nsplit, scale, causal);
  } catch (e) {
    out.dispose();
    lse.dispose();
    throw e;
  } finally {
    disposeAll(args);
    workspace?.dispose();
  }
  return { out, lse };
}
