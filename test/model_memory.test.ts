// The forward pass disposes every tensor it makes: after a request the device holds exactly the buffers
// it held before. The garbage collector is kept out of it (every Tensor object made during the request
// stays reachable, so a forgotten one cannot be released by its finalizer): a tensor the model forgets
// to dispose shows up here as a live buffer, instead of living on until V8 happens to collect it, which
// it may not do soon, since device bytes reach V8 with a slack (native/addon/addon.cc).
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { Tensor } from '../lib/tensor';
import { parseConfig } from '../lib/model/config';
import { presetConfig } from '../lib/model/presets';
import { ModelTokenizer, tokenizerSourceFiles } from '../lib/model/tokenizer';
import { randomWeights } from '../lib/model/weights';
import { modelFromWeights, type Model } from '../lib/runner/model';
import { testDevices } from './helpers/devices';

type Dev = 'cpu' | 'cuda:0';

/** Greedy, sampled, batched and speculative requests, prefill and decode. */
async function requests(m: Model): Promise<void> {
  const ids = (n: number, s: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 37 + s) % 5000));
  await m.generate(ids(150, 1), { maxTokens: 3, temperature: 0, ignoreEos: true }).text();
  await Promise.all([
    m.generate(ids(90, 2), { maxTokens: 3, temperature: 0.8, topP: 0.9, seed: 7, ignoreEos: true }).text(),
    m.generate(ids(60, 3), { maxTokens: 3, temperature: 0, ignoreEos: true }).text(),
  ]);
  await m.generate(ids(70, 4), { maxTokens: 4, temperature: 0, ignoreEos: true, speculative: 'mtp' }).text();
}

describe.each(testDevices)('a request leaves no tensor behind on %s', (device: Dev) => {
  it('prefill, decode, sampling, a batch of two and MTP speculation', async () => {
    const c = parseConfig(presetConfig('tiny'));
    const w = await randomWeights(c, { device, seed: 1 });
    const tok = ModelTokenizer.load(dirname(tokenizerSourceFiles().tokenizer));
    const m = modelFromWeights(c, w, tok, device, { maxSeqLen: 256, maxBatch: 4, kvCacheTokens: 2048 });
    const held: Tensor[] = [];
    const T = Tensor as unknown as { alloc: (...a: unknown[]) => Tensor; prototype: { viewAs: (...a: unknown[]) => Tensor } };
    const alloc = T.alloc, viewAs = T.prototype.viewAs;
    T.alloc = function (this: unknown, ...a: unknown[]) {
      const t = alloc.apply(this, a);
      held.push(t);
      return t;
    };
    T.prototype.viewAs = function (this: unknown, ...a: unknown[]) {
      const t = viewAs.apply(this, a);
      held.push(t);
      return t;
    };
    try {
      await requests(m); // the first round builds what stays: decode graphs on CUDA, lazily made state
      await dsk.synchronize(device);
      held.length = 0;
      const before = dsk.memoryStats(device).liveBuffers;
      await requests(m);
      await dsk.synchronize(device);
      const made = held.length;
      expect(made, 'the requests made tensors').toBeGreaterThan(100);
      expect(dsk.memoryStats(device).liveBuffers, `live buffers after the same requests again (${made} tensors made)`).toBe(before);
    } finally {
      T.alloc = alloc;
      T.prototype.viewAs = viewAs;
      held.length = 0;
      m.dispose();
    }
  }, 120_000);
});
