// Paged MLA latent cache: per layer one tensor [numBlocks, 64, 576] bf16 (512 latent + 64 rope dims),
// shared by all sequences through per-sequence block lists. Block 0 is reserved as scratch for padding
// rows of fixed-size (graph-captured) batches, so a padded row never touches a live sequence.
import { resolveDevice, type DeviceLike } from '../device';
import { Tensor } from '../tensor';
import { full } from '../factory';

export const BLOCK_TOKENS = 64;

/** The cache has too few free blocks for a request. */
export class KvCacheFullError extends Error {
  constructor(readonly neededBlocks: number, readonly freeBlocks: number, readonly totalBlocks: number) {
    super(
      `KV cache full: needs ${neededBlocks} more block(s) of ${BLOCK_TOKENS} tokens, ${freeBlocks} of ${totalBlocks - 1} free ` +
        `(raise kvCacheTokens when loading the model, or lower maxTokens / concurrency)`,
    );
    this.name = 'KvCacheFullError';
  }
}

export interface KvCacheOptions {
  layers: number;
  /** Cache capacity in blocks (block 0 is scratch; numBlocks - 1 are usable). */
  numBlocks: number;
  /** Values per token per layer (576). */
  width: number;
  device?: DeviceLike;
}

export class PagedKvCache {
  readonly caches: Tensor[];
  readonly numBlocks: number;
  private readonly freeList: number[];
  private readonly tables = new Map<number, number[]>();

  constructor(o: KvCacheOptions) {
    if (!Number.isSafeInteger(o.numBlocks) || o.numBlocks < 2) throw new RangeError(`kv cache: numBlocks must be an integer >= 2, got ${o.numBlocks}`);
    const dev = resolveDevice(o.device);
    this.numBlocks = o.numBlocks;
    // Zero-filled: a padded row attending to scratch block 0 reads finite values.
    this.caches = Array.from({ length: o.layers }, () => full([o.numBlocks, BLOCK_TOKENS, o.width], 0, { dtype: 'bf16', device: dev }));
    this.freeList = Array.from({ length: o.numBlocks - 1 }, (_, i) => o.numBlocks - 1 - i);
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }
  get usableBlocks(): number {
    return this.numBlocks - 1;
  }

  /** Blocks needed to hold `tokens` tokens. */
  static blocksFor(tokens: number): number {
    return Math.ceil(tokens / BLOCK_TOKENS);
  }

  /** Whether a sequence of `tokens` could ever fit (in an empty cache). */
  fitsEver(tokens: number): boolean {
    return PagedKvCache.blocksFor(tokens) <= this.usableBlocks;
  }

  /** Grows sequence `id`'s blocks to hold `tokens` tokens; throws KvCacheFullError (allocating nothing) when short. */
  reserve(id: number, tokens: number): void {
    const t = this.tables.get(id) ?? [];
    const need = PagedKvCache.blocksFor(tokens) - t.length;
    if (need <= 0) {
      this.tables.set(id, t);
      return;
    }
    if (need > this.freeList.length) throw new KvCacheFullError(need, this.freeList.length, this.numBlocks);
    for (let i = 0; i < need; i++) t.push(this.freeList.pop()!);
    this.tables.set(id, t);
  }

  /** Whether `reserve(id, tokens)` would succeed now. */
  canReserve(id: number, tokens: number): boolean {
    const have = this.tables.get(id)?.length ?? 0;
    return PagedKvCache.blocksFor(tokens) - have <= this.freeList.length;
  }

  /** Frees every block of sequence `id` (no-op for an unknown id). */
  free(id: number): void {
    const t = this.tables.get(id);
    if (!t) return;
    this.tables.delete(id);
    for (let i = t.length - 1; i >= 0; i--) this.freeList.push(t[i]);
  }

  has(id: number): boolean {
    return this.tables.has(id);
  }

  blocks(id: number): readonly number[] {
    const t = this.tables.get(id);
    if (!t) throw new RangeError(`kv cache: sequence ${id} has no blocks`);
    return t;
  }

  /** Cache slot (block * 64 + offset) of position `pos` of sequence `id`. */
  slot(id: number, pos: number): number {
    const t = this.blocks(id);
    const b = Math.floor(pos / BLOCK_TOKENS);
    if (b >= t.length) throw new RangeError(`kv cache: position ${pos} of sequence ${id} is beyond its ${t.length} block(s)`);
    return t[b] * BLOCK_TOKENS + (pos % BLOCK_TOKENS);
  }

  dispose(): void {
    for (const c of this.caches) c.dispose();
    this.tables.clear();
  }
}
