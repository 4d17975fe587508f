// The CUDA forward against the CPU forward on the same generated checkpoint: logits within 2e-2 and the
// same greedy tokens for 32 steps (through CUDA-graph decode steps), plus MTP and batching on the GPU.
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

  it('gives the same logits (prefill) and layer outputs', async () => {
    const ids = cpu.tokenizer.encode('Compare the devices: 0123456789 abcdefghij, and more text to make it longer.');
    const lc: dsk.Tensor[] = [], lg: dsk.Tensor[] = [];
    const a = (await cpu.logits(ids, { onLayer: (_, h) => lc.push(h) }).toArray()) as Float32Array;
    const b = (await gpu.logits(ids, { onLayer: (_, h) => lg.push(h) }).toArray()) as Float32Array;
    for (let i = 0; i < lc.length; i++) expect(relErr(await lg[i].toArray(), await lc[i].toArray()), `layer ${i}`).toBeLessThan(2e-2);
    expect(relErr(b, a)).toBeLessThan(2e-2);
  });

  it('generates the same 32 greedy tokens (graphs and eager)', async () => {
    for (const p of ['Once upon a time', 'GPU vs CPU']) {
      const want = await collect(cpu.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }));
      expect(await collect(gpu.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }))).toEqual(want);
      expect(await collect(eager.generate(p, { maxTokens: 32, temperature: 0, ignoreEos: true }))).toEqual(want);
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
