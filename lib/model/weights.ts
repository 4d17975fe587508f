// Model weights on a device, in the form the forward pass uses: FP8 linears with their 128x128 block
// scales (or bf16 linears), routed experts stacked into [E, N, K] for the grouped GEMMs, and kv_b_proj
// split per head for the absorbed decode (W_UK transposed, W_UV as is). Weights come from a checkpoint
// (streamed shard by shard in bounded chunks, checked before anything is allocated) or are random
// (generated directly on the device, for benchmarks).
import type { DeviceLike } from '../device';
import { resolveDevice, synchronize } from '../device';
import { DTYPE_SIZE, type DType } from '../dtype';
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { type ModelConfig, isMoeLayer, latentDim, qkHeadDim } from './config';
import type { Checkpoint, CheckpointTensor } from './checkpoint';
import { readTensorChunks, SafetensorsError, ST_TO_DTYPE } from './safetensors';
import { type WeightSpec, blockScaleShape, checkpointLayout, fp8Capable, layerPrefix, scaleName } from './layout';
import { scaleTensor, storedDType, weightTensor } from './init';
import { K, assign } from './kernels';

/** A linear layer y = x W^T: FP8 blocks with scales, or bf16. */
export type Linear = { fp8: true; w: Tensor; scale: Tensor } | { fp8: false; w: Tensor };
/** Stacked FP8 weights of a group of linears: w [G, N, K], scale [G, ceil(N/128), K/128]. */
export interface Grouped {
  w: Tensor;
  scale: Tensor;
}
export interface MlpWeights {
  gate: Linear;
  up: Linear;
  down: Linear;
}
export interface AttentionWeights {
  qA?: Linear;
  qANorm?: Tensor;
  qB?: Linear;
  q?: Linear;
  kvA: Linear;
  kvANorm: Tensor;
  kvB: Linear;
  /** Per head W_UK^T [H, kv_lora, nope] for absorbing q_nope into the latent space. */
  wUKt: Grouped;
  /** Per head W_UV [H, v, kv_lora] for projecting the attended latent back to values. */
  wUV: Grouped;
  o: Linear;
}
export interface MoeWeights {
  router: Tensor;
  bias?: Tensor;
  gate: Grouped;
  up: Grouped;
  down: Grouped;
  shared?: MlpWeights;
}
export interface LayerWeights {
  inputNorm: Tensor;
  postAttnNorm: Tensor;
  attn: AttentionWeights;
  mlp?: MlpWeights;
  moe?: MoeWeights;
}
export interface MtpWeights {
  enorm: Tensor;
  hnorm: Tensor;
  ehProj: Linear;
  layer: LayerWeights;
  headNorm: Tensor;
}
export interface ModelWeights {
  embed: Tensor;
  layers: LayerWeights[];
  norm: Tensor;
  lmHead: Tensor;
  mtp: MtpWeights[];
}

export interface LoadProgress {
  /** Bytes of checkpoint data read so far. */
  bytes: number;
  totalBytes: number;
  /** The tensor being loaded. */
  tensor: string;
}

export interface WeightLoadOptions {
  device?: DeviceLike;
  /** 'fp8': quantize bf16 linears to FP8 blocks on load (those whose K is a multiple of 128). */
  quantize?: 'fp8' | null;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Skip the MTP modules. */
  skipMtp?: boolean;
}

/** Where weights come from: a checkpoint directory, or random values. */
interface Source {
  /** A bf16 (or f32 for 'f32') tensor as stored, on the device. */
  plain(name: string, shape: number[], dtype: 'bf16' | 'f32'): Promise<Tensor>;
  linear(name: string, shape: number[]): Promise<Linear>;
  stacked(names: string[], shape: number[]): Promise<Grouped>;
}

const FP8_DTYPES = ['F8_E4M3'];
const FLOAT_DTYPES = ['BF16', 'F16', 'F32'];

/** Streams tensors of a checkpoint onto a device. */
class CheckpointSource implements Source {
  private loaded = 0;
  private sinceSync = 0;
  readonly totalBytes: number;

  constructor(private readonly ck: Checkpoint, private readonly specs: WeightSpec[], private readonly dev: number, private readonly o: WeightLoadOptions) {
    // Check every tensor (dtype, shape, FP8 scales) before anything is allocated or read.
    let total = 0;
    for (const s of specs) {
      if (s.unused) continue;
      const allowed = s.role === 'linear' ? [...FP8_DTYPES, ...FLOAT_DTYPES] : FLOAT_DTYPES;
      const t = ck.expect(s.name, allowed, s.shape);
      total += t.nbytes;
      if (t.dtype === 'F8_E4M3') total += ck.expect(scaleName(s.name), ['F32'], blockScaleShape(s.shape)).nbytes;
    }
    this.totalBytes = total;
  }

  /** Copies a tensor's bytes into `dst` (raw, same dtype) at byte offset `at`, chunk by chunk. */
  private async stream(info: CheckpointTensor, dst: Tensor, at = 0): Promise<void> {
    const n = getNative();
    for await (const c of readTensorChunks(info.file, info, { signal: this.o.signal, path: info.file })) {
      n.write(dst.storage, dst.offset * DTYPE_SIZE[dst.dtype] + at + c.offset, c.bytes);
      this.loaded += c.bytes.byteLength;
      this.sinceSync += c.bytes.byteLength;
      this.o.onProgress?.({ bytes: this.loaded, totalBytes: this.totalBytes, tensor: info.name });
    }
    // Bound what is in flight (pinned staging / queued host copies) to a few hundred MB.
    if (this.sinceSync > 512 << 20) {
      this.sinceSync = 0;
      await synchronize(this.dev);
    }
  }

  private async raw(info: CheckpointTensor): Promise<Tensor> {
    const dt = ST_TO_DTYPE[info.dtype];
    if (!dt) throw new SafetensorsError(info.file, `dtype ${info.dtype} cannot be loaded`, info.name);
    const t = Tensor.alloc(info.shape, dt, this.dev);
    try {
      await this.stream(info, t);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  async plain(name: string, _shape: number[], dtype: 'bf16' | 'f32'): Promise<Tensor> {
    const t = await this.raw(this.ck.get(name));
    if (t.dtype === dtype) return t;
    const c = t.cast(dtype);
    t.dispose();
    return c;
  }

  async linear(name: string, shape: number[]): Promise<Linear> {
    const info = this.ck.get(name);
    if (info.dtype === 'F8_E4M3') {
      const w = await this.raw(info);
      const scale = await this.raw(this.ck.get(scaleName(name)));
      return { fp8: true, w, scale };
    }
    const w = await this.plain(name, shape, 'bf16');
    if (this.o.quantize === 'fp8' && fp8Capable(shape)) return quantizeLinear(w);
    return { fp8: false, w };
  }

  async stacked(names: string[], shape: number[]): Promise<Grouped> {
    const G = names.length;
    const first = this.ck.get(names[0]);
    if (first.dtype === 'F8_E4M3') {
      const w = Tensor.alloc([G, ...shape], 'fp8e4m3', this.dev);
      const bs = blockScaleShape(shape);
      const scale = Tensor.alloc([G, ...bs], 'f32', this.dev);
      try {
        const per = shape[0] * shape[1], perS = bs[0] * bs[1] * 4;
        for (let g = 0; g < G; g++) {
          const info = this.ck.get(names[g]);
          if (info.dtype !== 'F8_E4M3') throw new SafetensorsError(info.file, `is ${info.dtype} but ${names[0]} is F8_E4M3; experts must share one dtype`, info.name);
          await this.stream(info, w, g * per);
          await this.stream(this.ck.get(scaleName(names[g])), scale, g * perS);
        }
      } catch (e) {
        w.dispose();
        scale.dispose();
        throw e;
      }
      return { w, scale };
    }
    // bf16 experts: the grouped GEMMs are FP8, so each expert is quantized to 128x128 blocks on load.
    return stackQuantized(G, shape, async (g) => this.plain(names[g], shape, 'bf16'), this.dev);
  }
}

/** Random weights generated on the device (same init as make-model). */
class RandomSource implements Source {
  constructor(private readonly c: ModelConfig, private readonly seed: number, private readonly dev: number, private readonly specs: Map<string, WeightSpec>) {}
  private spec(name: string): WeightSpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`random weights: no spec for ${name}`);
    return s;
  }
  async plain(name: string, _shape: number[], dtype: 'bf16' | 'f32'): Promise<Tensor> {
    const t = weightTensor(this.spec(name), this.c, this.seed, this.dev);
    if (t.dtype === dtype) return t;
    const c = t.cast(dtype);
    t.dispose();
    return c;
  }
  async linear(name: string): Promise<Linear> {
    const s = this.spec(name);
    const w = weightTensor(s, this.c, this.seed, this.dev);
    if (storedDType(s) === 'fp8e4m3') return { fp8: true, w, scale: scaleTensor(s, this.c, this.seed, this.dev) };
    return { fp8: false, w };
  }
  async stacked(names: string[], shape: number[]): Promise<Grouped> {
    // Expert by expert into the stack (bounded temporaries; the same values as the file writer).
    const G = names.length;
    const w = Tensor.alloc([G, ...shape], 'fp8e4m3', this.dev);
    const scale = Tensor.alloc([G, ...blockScaleShape(shape)], 'f32', this.dev);
    for (let g = 0; g < G; g++) {
      const s = { ...this.spec(names[g]), fp8: true };
      const t = weightTensor(s, this.c, this.seed, this.dev);
      const sc = scaleTensor(s, this.c, this.seed, this.dev);
      assign(w.select(0, g), t);
      assign(scale.select(0, g), sc);
      t.dispose();
      sc.dispose();
    }
    return { w, scale };
  }
}

function quantizeLinear(w: Tensor): Linear {
  const { q, scale } = K.quantizeWeight(w);
  w.dispose();
  return { fp8: true, w: q, scale };
}

async function stackQuantized(G: number, shape: number[], get: (g: number) => Promise<Tensor>, dev: number): Promise<Grouped> {
  const bs = blockScaleShape(shape);
  const w = Tensor.alloc([G, ...shape], 'fp8e4m3', dev);
  const scale = Tensor.alloc([G, ...bs], 'f32', dev);
  for (let g = 0; g < G; g++) {
    const b = await get(g);
    const { q, scale: s } = K.quantizeWeight(b);
    b.dispose();
    assign(w.select(0, g), q);
    assign(scale.select(0, g), s);
    q.dispose();
    s.dispose();
  }
  return { w, scale };
}

/** Per-head pieces of kv_b_proj [H*(nope+v), kv_lora] for the absorbed decode. */
function absorbWeights(c: ModelConfig, kvB: Linear): { wUKt: Grouped; wUV: Grouped } {
  const H = c.numHeads, nope = c.qkNopeHeadDim, dv = c.vHeadDim, r = c.kvLoraRank;
  let q: Linear & { fp8: true };
  let own = false;
  if (kvB.fp8) q = kvB;
  else {
    const t = K.quantizeWeight(kvB.w);
    q = { fp8: true, w: t.q, scale: t.scale };
    own = true;
  }
  // Rows of head h: [h*(nope+dv), +nope) are W_UK, the next dv rows W_UV; both 128-row aligned, so
  // each is whole 128x128 blocks and its scales are rows of the block-scale matrix.
  const w3 = q.w.view([H, nope + dv, r]);
  const s3 = q.scale.view([H, (nope + dv) / 128, r / 128]);
  const wUKt = { w: w3.slice(1, 0, nope).transpose(1, 2).contiguous(), scale: s3.slice(1, 0, nope / 128).transpose(1, 2).contiguous() };
  const wUV = { w: w3.slice(1, nope, nope + dv).contiguous(), scale: s3.slice(1, nope / 128, (nope + dv) / 128).contiguous() };
  w3.dispose();
  s3.dispose();
  if (own) {
    q.w.dispose();
    q.scale.dispose();
  }
  return { wUKt, wUV };
}

async function loadLayer(c: ModelConfig, src: Source, i: number): Promise<LayerWeights> {
  const p = layerPrefix(i);
  const a = `${p}self_attn.`;
  const H = c.hiddenSize, nh = c.numHeads;
  const attn: Partial<AttentionWeights> = {};
  if (c.qLoraRank !== null) {
    attn.qA = await src.linear(`${a}q_a_proj.weight`, [c.qLoraRank, H]);
    attn.qANorm = await src.plain(`${a}q_a_layernorm.weight`, [c.qLoraRank], 'bf16');
    attn.qB = await src.linear(`${a}q_b_proj.weight`, [nh * qkHeadDim(c), c.qLoraRank]);
  } else {
    attn.q = await src.linear(`${a}q_proj.weight`, [nh * qkHeadDim(c), H]);
  }
  attn.kvA = await src.linear(`${a}kv_a_proj_with_mqa.weight`, [latentDim(c), H]);
  attn.kvANorm = await src.plain(`${a}kv_a_layernorm.weight`, [c.kvLoraRank], 'bf16');
  attn.kvB = await src.linear(`${a}kv_b_proj.weight`, [nh * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank]);
  Object.assign(attn, absorbWeights(c, attn.kvB));
  attn.o = await src.linear(`${a}o_proj.weight`, [H, nh * c.vHeadDim]);
  const lw: LayerWeights = {
    inputNorm: await src.plain(`${p}input_layernorm.weight`, [H], 'bf16'),
    postAttnNorm: await src.plain(`${p}post_attention_layernorm.weight`, [H], 'bf16'),
    attn: attn as AttentionWeights,
  };
  const m = `${p}mlp.`;
  const mlp = async (q: string, inter: number): Promise<MlpWeights> => ({
    gate: await src.linear(`${q}gate_proj.weight`, [inter, H]),
    up: await src.linear(`${q}up_proj.weight`, [inter, H]),
    down: await src.linear(`${q}down_proj.weight`, [H, inter]),
  });
  if (isMoeLayer(c, i)) {
    const E = c.nRoutedExperts, I = c.moeIntermediateSize;
    const names = (proj: string): string[] => Array.from({ length: E }, (_, e) => `${m}experts.${e}.${proj}.weight`);
    lw.moe = {
      router: await src.plain(`${m}gate.weight`, [E, H], 'bf16'),
      bias: c.topkMethod === 'noaux_tc' ? await src.plain(`${m}gate.e_score_correction_bias`, [E], 'f32') : undefined,
      gate: await src.stacked(names('gate_proj'), [I, H]),
      up: await src.stacked(names('up_proj'), [I, H]),
      down: await src.stacked(names('down_proj'), [H, I]),
      shared: c.nSharedExperts > 0 ? await mlp(`${m}shared_experts.`, I * c.nSharedExperts) : undefined,
    };
  } else {
    lw.mlp = await mlp(m, c.intermediateSize);
  }
  return lw;
}

async function build(c: ModelConfig, src: Source, o: WeightLoadOptions): Promise<ModelWeights> {
  const H = c.hiddenSize;
  const embed = await src.plain('model.embed_tokens.weight', [c.vocabSize, H], 'bf16');
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    o.signal?.throwIfAborted();
    layers.push(await loadLayer(c, src, i));
  }
  const mtp: MtpWeights[] = [];
  if (!o.skipMtp) {
    for (let k = 0; k < c.numNextnPredictLayers; k++) {
      const i = c.numLayers + k, p = layerPrefix(i);
      mtp.push({
        enorm: await src.plain(`${p}enorm.weight`, [H], 'bf16'),
        hnorm: await src.plain(`${p}hnorm.weight`, [H], 'bf16'),
        ehProj: await src.linear(`${p}eh_proj.weight`, [H, 2 * H]),
        layer: await loadLayer(c, src, i),
        headNorm: await src.plain(`${p}shared_head.norm.weight`, [H], 'bf16'),
      });
    }
  }
  const norm = await src.plain('model.norm.weight', [H], 'bf16');
  const lmHead = c.tieWordEmbeddings ? embed : await src.plain('lm_head.weight', [c.vocabSize, H], 'bf16');
  return { embed, layers, norm, lmHead, mtp };
}

/** Every tensor held by a ModelWeights (each once). */
export function weightTensors(w: ModelWeights): Tensor[] {
  const out = new Set<Tensor>();
  const walk = (v: unknown): void => {
    if (v instanceof Tensor) out.add(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(w);
  return [...out];
}

export function disposeWeights(w: ModelWeights): void {
  for (const t of weightTensors(w)) t.dispose();
}

/** Bytes of device memory the weights occupy. */
export function weightBytes(w: ModelWeights): number {
  return weightTensors(w).reduce((a, t) => a + t.nbytes, 0);
}

function specsFor(c: ModelConfig, skipMtp: boolean): WeightSpec[] {
  return checkpointLayout(c).filter((s) => !(skipMtp && s.layer !== undefined && s.layer >= c.numLayers));
}

/**
 * Loads a checkpoint's weights onto a device. Every tensor is checked (present, dtype, shape, FP8
 * scales) before anything is allocated; data streams in bounded chunks; `signal` aborts between chunks
 * (what was loaded is freed).
 */
export async function loadWeights(ck: Checkpoint, o: WeightLoadOptions = {}): Promise<ModelWeights> {
  const dev = resolveDevice(o.device);
  const src = new CheckpointSource(ck, specsFor(ck.config, !!o.skipMtp), dev, o);
  return buildDisposingOnError(ck.config, src, o, dev);
}

/** Random weights (make-model's init) generated directly on the device. */
export async function randomWeights(c: ModelConfig, o: { device?: DeviceLike; seed?: number; skipMtp?: boolean } = {}): Promise<ModelWeights> {
  const dev = resolveDevice(o.device);
  const specs = new Map(specsFor(c, !!o.skipMtp).map((s) => [s.name, s]));
  return buildDisposingOnError(c, new RandomSource(c, o.seed ?? 0, dev, specs), { skipMtp: o.skipMtp }, dev);
}

async function buildDisposingOnError(c: ModelConfig, src: Source, o: WeightLoadOptions, dev: number): Promise<ModelWeights> {
  // Track allocations so a failure or an abort frees everything loaded so far.
  const made: Tensor[] = [];
  const track = <T>(v: T): T => {
    const walk = (x: unknown): void => {
      if (x instanceof Tensor) made.push(x);
      else if (x && typeof x === 'object') Object.values(x).forEach(walk);
    };
    walk(v);
    return v;
  };
  const tracked: Source = {
    plain: async (...a) => track(await src.plain(...a)),
    linear: async (...a) => track(await src.linear(...a)),
    stacked: async (...a) => track(await src.stacked(...a)),
  };
  try {
    const w = await build(c, tracked, o);
    await synchronize(dev);
    return w;
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
}

export type { DType };
