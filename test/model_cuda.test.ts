// The CUDA forward against the CPU forward on the same generated checkpoint: logits within 2e-2, greedy
// tokens equal but at near ties (through CUDA-graph decode steps), plus MTP and batching on the GPU.
// Skipped without a GPU (a failure under DSK_REQUIRE_CUDA=1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import type { GenerateEvent, Model } from '../lib/runner/model';
import { hasCuda } from './helpers/devices';
import { relErr } from './helpers/deepseek_reference';
import { testModel } from './helpers/tiny_model';

async function collect(s: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of s) out.push(e.token);
  return out;
}

describe.runIf(hasCuda).each(['tiny', 'tiny-v2'] as const)('CUDA forward of %s against the CPU', (preset) => {
  let cpu: Model, gpu: Model, eager: Model;
  beforeAll(async () => {
    const dir = await testModel({ preset, seed: 5 });
    cpu = await dsk.loadModel(dir, { device: 'cpu', maxSeqLen: 512, kvCacheTokens: 2048 });
    gpu = await dsk.loadModel(dir, { device: 'cuda:0', maxSeqLen: 512, kvCacheTokens: 8192 });
    eager = await dsk.loadModel(dir, { device: 'cuda:0', maxSeqLen: 512, kvCacheTokens: 2048, cudaGraphs: false });
  });
  afterAll(() => [cpu, gpu, eager].forEach((m) => m?.dispose()));

  // Hopper's FP8 tensor cores add each k32 step with ~14-bit alignment (the reason for DeepSeek's fp32
  // promotion), so an FP8 GEMM on the GPU differs from the exact-f32 CPU reference by ~7e-4 (about 5% of
  // bf16 outputs one ulp apart; measured, bench/NOTES.md). Every layer re-quantizes its activations to
  // FP8, which turns some of those ulps into FP8 steps: the layers drift apart by ~2% per layer on the
  // FP8 preset. The logits bound is the issue's; the per-layer bound allows that drift.
  it('gives the same logits (prefill) and layer outputs', async () => {
    const ids = cpu.tokenizer.encode('Compare the devices: 0123456789 abcdefghij, and more text to make it longer.');
    const lc: dsk.Tensor[] = [], lg: dsk.Tensor[] = [];
    const a = (await cpu.logits(ids, { onLayer: (_, h) => lc.push(h) }).toArray()) as Float32Array;
    const b = (await gpu.logits(ids, { onLayer: (_, h) => lg.push(h) }).toArray()) as Float32Array;
    const layerErr: number[] = [];
    for (let i = 0; i < lc.length; i++) layerErr.push(relErr(await lg[i].toArray(), await lc[i].toArray()));
    console.log(`${preset}: CPU/GPU relative difference per layer ${layerErr.map((e) => e.toExponential(2)).join(', ')}; logits ${relErr(b, a).toExponential(2)}`);
    layerErr.forEach((e, i) => expect(e, `layer ${i}`).toBeLessThan(5e-2));
    expect(relErr(b, a)).toBeLessThan(2e-2);
  });

  it('generates the same greedy tokens as the CPU but where the two devices are within their rounding of a tie', async () => {
    for (const p of ['Once upon a time', 'GPU vs CPU']) {
      const want = await collect(cpu.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }));
      const graphs = await collect(gpu.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }));
      // One device, the same kernels: CUDA-graph decode steps and eager ones agree exactly.
      expect(await collect(eager.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }))).toEqual(graphs);
      // Teacher-forced along the CPU's tokens: at every step the GPU's greedy choice is the CPU's, or the two
      // candidates are closer on the CPU than 4x the CPU/GPU logit noise of that very row (a near tie).
      const prompt = cpu.tokenizer.encode(p);
      const ids = [...prompt, ...want.slice(0, 31)];
      const V = cpu.config.vocabSize;
      const lc = (await cpu.logits(ids).toArray()) as Float32Array;
      const lg = (await gpu.logits(ids).toArray()) as Float32Array;
      let agree = 0;
      for (let s = 0; s < 32; s++) {
        const row = (prompt.length - 1 + s) * V;
        let gArg = 0, d2 = 0;
        for (let v = 0; v < V; v++) {
          if (lg[row + v] > lg[row + gArg]) gArg = v;
          d2 += (lg[row + v] - lc[row + v]) ** 2;
        }
        if (gArg === want[s]) { agree++; continue; }
        const noise = Math.sqrt(d2 / V);
        expect(lc[row + want[s]] - lc[row + gArg], `step ${s}: GPU picks ${gArg}, CPU ${want[s]}`).toBeLessThan(4 * noise);
      }
      // The free-running GPU sequence follows the CPU's until the first such near tie.
      let same = 0;
      while (same < 32 && graphs[same] === want[same]) same++;
      console.log(`${preset} '${p}': teacher-forced agreement ${agree}/32; free-running sequences equal for ${same} tokens`);
      expect(agree).toBeGreaterThanOrEqual(24);
    }
  });

  it('batches on the GPU like one at a time, and MTP matches greedy', async () => {
    const prompts = ['a', 'bb bb', 'The quick brown fox', 'x y z'];
    const alone = [];
    for (const p of prompts) alone.push(await collect(gpu.generate(p, { maxTokens: 20, temperature: 0, ignoreEos: true })));
    expect(await Promise.all(prompts.map((p) => collect(gpu.generate(p, { maxTokens: 20, temperature: 0, ignoreEos: true }))))).toEqual(alone);
    if (gpu.engine.hasMtp) {
      const spec = await Promise.all(prompts.map((p) => collect(gpu.generate(p, { maxTokens: 20, temperature: 0, ignoreEos: true, speculative: 'mtp' }))));
      expect(spec).toEqual(alone);
    }
    expect(gpu.cache.freeBlocks).toBe(gpu.cache.usableBlocks);
  });
});
