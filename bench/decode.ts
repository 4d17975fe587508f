// `npm run bench:decode [-- --device D] [--preset P] [--layers N] [--context C] [--prefill 1024,4096]
// [--no-decode] [--profile] [--profile-decode B]`: end-to-end decode tokens/s at batch 1, 8 and 64 and prefill tokens/s of the
// model runner, each next to its floor. --profile adds a per-op device-time breakdown of one prefill of the
// longest length (bench/op_profile.ts: CUDA events around every native call, eager); --profile-decode B the
// same for 32 eager decode steps of B requests.
//
// The model is the v3-shape preset (DeepSeek-V3's per-layer shapes) with as many layers as fit in
// device memory (random weights generated on the device, MTP skipped); on the CPU the small preset.
// Decode floor of one step: (bytes of weights the step touches + KV bytes it reads) / measured copy
// bandwidth, with the routed experts touched counted as the expected number of distinct experts that
// B*topk uniform picks hit. Prefill floor: the larger of its FP8 flops over the measured FP8 matmul rate
// and its weight bytes over the bandwidth. Figures are what generate() delivers (graphs, sampling and
// host round trips included), from the per-request summaries.
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import * as dsk from '../lib/index';
import { parseConfig, type ModelConfig, isMoeLayer, latentDim } from '../lib/model/config';
import { checkpointLayout, blockScaleShape, numel, type WeightSpec } from '../lib/model/layout';
import { presetConfig, type Preset } from '../lib/model/presets';
import { ModelTokenizer, tokenizerSourceFiles } from '../lib/model/tokenizer';
import { randomWeights } from '../lib/model/weights';
import { storedDType } from '../lib/model/init';
import { modelFromWeights, type Model } from '../lib/runner/model';
import { Report, benchDevice, floorUs, measureCeilings, median } from './harness';
import { OpProfiler, printBreakdown } from './op_profile';
import { deviceIndex } from '../lib/device';

const GiB = 2 ** 30;

/** Device bytes of one spec as the runner stores it (FP8 + scales, or bf16/f32; kv_b twice for the absorbed copies). */
function specBytes(s: WeightSpec, c: ModelConfig): number {
  const dt = storedDType(s);
  let b = numel(s.shape) * dsk.DTYPE_SIZE[dt];
  if (dt === 'fp8e4m3') b += numel(blockScaleShape(s.shape)) * 4;
  if (s.name.endsWith('kv_b_proj.weight')) b *= 2;
  void c;
  return b;
}

interface Sizes {
  fixed: number;
  dense: number;
  moe: number;
  /** Per MoE layer: bytes of the routed experts (the rest of the layer is always read). */
  experts: number;
}

function sizes(c: ModelConfig): Sizes {
  const specs = checkpointLayout(c).filter((s) => !s.unused && (s.layer === undefined || s.layer < c.numLayers));
  const perLayer = (i: number, f: (s: WeightSpec) => boolean = () => true) =>
    specs.filter((s) => s.layer === i && f(s)).reduce((a, s) => a + specBytes(s, c), 0);
  const firstMoe = [...Array(c.numLayers).keys()].find((i) => isMoeLayer(c, i));
  const firstDense = [...Array(c.numLayers).keys()].find((i) => !isMoeLayer(c, i));
  return {
    fixed: specs.filter((s) => s.layer === undefined).reduce((a, s) => a + specBytes(s, c), 0),
    dense: firstDense !== undefined ? perLayer(firstDense) : 0,
    moe: firstMoe !== undefined ? perLayer(firstMoe) : 0,
    experts: firstMoe !== undefined ? perLayer(firstMoe, (s) => s.group === 'experts') : 0,
  };
}

/** Bytes of weights one decode step at batch B reads: everything except the embedding table and unchosen experts. */
function decodeWeightBytes(c: ModelConfig, B: number): number {
  const z = sizes(c);
  const nMoe = [...Array(c.numLayers).keys()].filter((i) => isMoeLayer(c, i)).length;
  const E = c.nRoutedExperts, k = c.numExpertsPerTok;
  const touched = E ? 1 - (1 - k / E) ** B : 0; // expected fraction of experts hit by B*k uniform picks
  const embed = c.vocabSize * c.hiddenSize * 2;
  return z.fixed - embed + (c.numLayers - nMoe) * z.dense + nMoe * (z.moe - z.experts + z.experts * touched);
}

/** FP8 flops of a prefill of T tokens (linears at top-k experts, attention causal). */
function prefillFlops(c: ModelConfig, T: number): number {
  const specs = checkpointLayout(c).filter((s) => !s.unused && s.role === 'linear' && (s.layer === undefined || s.layer < c.numLayers));
  const frac = c.nRoutedExperts ? c.numExpertsPerTok / c.nRoutedExperts : 1;
  let params = 0;
  for (const s of specs) params += numel(s.shape) * (s.group === 'experts' ? frac : 1);
  const head = 2 * c.vocabSize * c.hiddenSize; // logits of the last row only
  const attn = c.numLayers * c.numHeads * (T * (T + 1)) / 2 * (192 + 128) * 2;
  return 2 * params * T + attn + head;
}

function pickLayers(preset: Preset, device: dsk.Device, want?: number): number {
  if (want) return want;
  if (device === 'cpu') return parseConfig(presetConfig(preset)).numLayers;
  const one = parseConfig(presetConfig(preset, { layers: 4, mtp: false }));
  const z = sizes(one);
  const free = dsk.cuda.memoryStats(device).free;
  const headroom = 14 * GiB; // KV cache, activations (prefill of 4096 tokens), graphs
  const dense = Math.min(one.firstKDenseReplace, 3);
  const room = free - headroom - z.fixed - dense * z.dense;
  const moe = Math.max(1, Math.floor(room / z.moe));
  return dense + moe;
}

/**
 * B requests of `prompt` random tokens, `tokens` generated each. Returns the decode rate with all B in
 * the batch: tokens delivered between the last request's first token and the first request's last
 * token (prefills of late-admitted requests fall outside that window), per second.
 */
async function decodeRun(model: Model, B: number, prompt: number, tokens: number, seed: number): Promise<{ tokensPerSec: number; steps: number }> {
  const rng = (i: number) => 1000 + ((i * 7919 + seed * 104729) % 100000);
  const times = await Promise.all(
    Array.from({ length: B }, async (_, b) => {
      const ts: number[] = [];
      const s = model.generate(Array.from({ length: prompt }, (_, i) => rng(i + b * prompt)), { maxTokens: tokens, temperature: 0, ignoreEos: true });
      for await (const _e of s) ts.push(performance.now());
      return ts;
    }),
  );
  const start = Math.max(...times.map((t) => t[0]));
  const end = Math.min(...times.map((t) => t[t.length - 1]));
  let n = 0;
  for (const t of times) for (const x of t) if (x > start && x <= end) n++;
  return { tokensPerSec: end > start ? (n * 1000) / (end - start) : 0, steps: n / B };
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({ options: {
      device: { type: 'string' }, preset: { type: 'string' }, layers: { type: 'string' }, context: { type: 'string' }, tokens: { type: 'string' },
      prefill: { type: 'string' }, 'no-decode': { type: 'boolean' }, profile: { type: 'boolean' },
      'profile-decode': { type: 'string' },
    },
  });
  const device = (v.device as dsk.Device | undefined) ?? benchDevice();
  const onGpu = device !== 'cpu';
  const preset = (v.preset ?? (onGpu ? 'v3-shape' : 'small')) as Preset;
  const ceilings = await measureCeilings(device);
  console.log(`ceilings on ${device}: copy ${ceilings.copyGBps.toFixed(0)} GB/s` + (ceilings.fp8Tflops ? `, fp8 matmul ${ceilings.fp8Tflops.toFixed(0)} TFLOP/s` : ''));
  const layers = pickLayers(preset, device, v.layers ? Number(v.layers) : undefined);
  const raw = presetConfig(preset, { layers, mtp: false });
  const c = parseConfig(raw, `preset ${preset}`);
  const ctx = Number(v.context ?? (onGpu ? 1024 : 128));
  const gen = Number(v.tokens ?? (onGpu ? 64 : 16));
  const batches = v['no-decode'] ? [] : onGpu ? [1, 8, 64] : [1, 8];
  const prefills = v.prefill ? v.prefill.split(',').map(Number) : onGpu ? [1024, 4096] : [128];
  console.log(`model: ${preset}, ${c.numLayers} layers (${c.firstKDenseReplace} dense), hidden ${c.hiddenSize}, ${c.nRoutedExperts} experts; context ${ctx}, ${gen} tokens per request`);

  const t0 = performance.now();
  const weights = await randomWeights(c, { device, seed: 1, skipMtp: true });
  const tok = ModelTokenizer.load(dirname(tokenizerSourceFiles().tokenizer));
  const maxBatch = Math.max(1, ...batches);
  const longest = Math.max(...prefills);
  const model = modelFromWeights(c, weights, tok, device, { maxSeqLen: Math.max(longest + 8, ctx + gen + 8), maxBatch, kvCacheTokens: maxBatch * (ctx + gen + 64) + longest });
  console.log(`weights: ${(model.weightBytes / GiB).toFixed(2)} GiB on ${device} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const report = new Report('decode', { ceilings, preset, layers: c.numLayers, config: raw, context: ctx, tokens: gen });
  const kvPerToken = c.numLayers * latentDim(c) * 2;
  try {
    if (batches.length) await decodeRun(model, 1, 16, 4, 0); // warm-up: lazy modules, graph capture for B = 1
    for (const B of batches) {
      await decodeRun(model, B, 16, 3, 1); // capture the graph of this batch size
      const r = await decodeRun(model, B, ctx, gen, 2);
      const stepMs = (B * 1000) / r.tokensPerSec;
      const bytes = decodeWeightBytes(c, B) + B * (ctx + gen / 2) * kvPerToken;
      const floorMs = floorUs({ flops: 0, bytes }, ceilings) / 1000;
      report.add({ phase: 'decode', batch: B, 'tokens/s': r.tokensPerSec, step_ms: stepMs, floor_ms: floorMs, 'floor tokens/s': (B * 1000) / floorMs, 'x floor': stepMs / floorMs, GB_per_step: bytes / 1e9 });
    }
    for (const T of prefills) {
      const ids = Array.from({ length: T }, (_, i) => 1000 + ((i * 31) % 90000));
      await model.generate(ids.slice(0, 64), { maxTokens: 1, temperature: 0 }).text();
      const ttft: number[] = [];
      for (let r = 0; r < 3; r++) {
        const s = model.generate(ids, { maxTokens: 1, temperature: 0, ignoreEos: true });
        await s.text();
        ttft.push((await s.summary).timeToFirstTokenMs);
      }
      const ms = median(ttft);
      const flops = prefillFlops(c, T);
      const bytes = decodeWeightBytes(c, T) + T * kvPerToken;
      const floorMs = floorUs({ flops, bytes, rate: 'fp8' }, ceilings) / 1000;
      report.add({ phase: 'prefill', batch: T, 'tokens/s': (T * 1000) / ms, step_ms: ms, floor_ms: floorMs, 'floor tokens/s': (T * 1000) / floorMs, 'x floor': ms / floorMs, GB_per_step: bytes / 1e9 });
    }
    if (v.profile && onGpu) {
      // One more prefill of the longest length with every native call bracketed by events (eager anyway).
      const ids = Array.from({ length: longest }, (_, i) => 1000 + ((i * 31) % 90000));
      const prof = new OpProfiler(deviceIndex(device));
      try {
        prof.start();
        await model.generate(ids, { maxTokens: 1, temperature: 0, ignoreEos: true }).text();
        prof.stop();
        const b = await prof.collect();
        printBreakdown(`prefill ${longest} tokens, per-op device time`, b);
        report.meta.prefillBreakdown = { tokens: longest, spanMs: b.spanMs, opsMs: b.opsMs, byOp: b.byOp, byShape: b.byShape };
      } finally {
        prof.dispose();
      }
    }
    if (v['profile-decode'] && onGpu) {
      // B requests decoding eagerly (a second runner over the same weights, without CUDA graphs, so every
      // native call can be bracketed by events): 32 steps after a 16-token prefill, grouped by op and shape.
      const B = Number(v['profile-decode']);
      const eager = modelFromWeights(c, weights, tok, device, { maxSeqLen: 64, maxBatch: B, kvCacheTokens: B * 64, cudaGraphs: false });
      const prof = new OpProfiler(deviceIndex(device));
      try {
        await decodeRun(eager, B, 16, 4, 3);
        prof.start();
        await decodeRun(eager, B, 16, 33, 4);
        prof.stop();
        const b = await prof.collect();
        printBreakdown(`decode B=${B}, 32 eager steps (+ one 16-token prefill per request), per-op device time`, b);
        report.meta.decodeBreakdown = { batch: B, spanMs: b.spanMs, opsMs: b.opsMs, byOp: b.byOp, byShape: b.byShape };
      } finally {
        prof.dispose();
        eager.dispose(); // frees the shared weights too: last use of them (tensor dispose is idempotent)
      }
    }
  } finally {
    model.dispose();
  }
  report.write();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
