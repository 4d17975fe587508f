// Generation on the CPU with a generated tiny checkpoint: streaming, determinism, seeds, continuous
// batching of concurrent requests, aborts and the cache blocks they free, stop conditions, MTP
// speculative decoding identical to greedy, the CLI.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import type { GenerateEvent, Model } from '../lib/runner/model';
import { testModel } from './helpers/tiny_model';

async function collect(s: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of s) out.push(e.token);
  return out;
}

describe('generation on cpu (tiny preset)', () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = await testModel({ preset: 'tiny', seed: 5 });
    model = await dsk.loadModel(dir, { device: 'cpu', maxSeqLen: 256, kvCacheTokens: 2048, maxBatch: 8 });
  });
  afterAll(() => model?.dispose());

  it('streams varied tokens and text with a summary', async () => {
    const s = model.generate('Once upon a time', { maxTokens: 24, temperature: 0, ignoreEos: true });
    const events: GenerateEvent[] = [];
    for await (const e of s) events.push(e);
    const sum = await s.summary;
    expect(events.length).toBe(24);
    expect(new Set(events.map((e) => e.token)).size).toBeGreaterThan(4);
    expect(events.every((e) => Number.isInteger(e.token) && e.token >= 0 && e.token < model.config.vocabSize)).toBe(true);
    expect(sum).toMatchObject({ tokens: 24, finishReason: 'length', promptTokens: model.tokenizer.encode('Once upon a time').length });
    expect(sum.text).toBe(events.map((e) => e.text).join(''));
    expect(sum.text).toBe(model.tokenizer.decode(events.map((e) => e.token)));
    expect(sum.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(sum.tokensPerSecond).toBeGreaterThan(0);
    expect(model.cache.freeBlocks).toBe(model.cache.usableBlocks);
  });

  it('is deterministic: greedy always, sampling for a given seed', async () => {
    const a = await collect(model.generate('Hello', { maxTokens: 12, temperature: 0, ignoreEos: true }));
    const b = await collect(model.generate('Hello', { maxTokens: 12, temperature: 0, ignoreEos: true }));
    expect(a).toEqual(b);
    const s1 = await collect(model.generate('Hello', { maxTokens: 12, temperature: 1, seed: 7, ignoreEos: true }));
    const s2 = await collect(model.generate('Hello', { maxTokens: 12, temperature: 1, seed: 7, ignoreEos: true }));
    const s3 = await collect(model.generate('Hello', { maxTokens: 12, temperature: 1, seed: 8, ignoreEos: true }));
    expect(s1).toEqual(s2);
    expect(s1).not.toEqual(s3);
  });

  it('batches concurrent requests: each gets what it gets alone', async () => {
    const prompts = ['The sky is', 'One two three four five six', 'x', 'Deep learning'];
    const alone = [];
    for (const p of prompts) alone.push(await collect(model.generate(p, { maxTokens: 10 + p.length % 5, temperature: 0, ignoreEos: true })));
    const seeded = await collect(model.generate('Sampled', { maxTokens: 8, temperature: 0.8, seed: 3, ignoreEos: true }));
    const together = await Promise.all([
      ...prompts.map((p) => collect(model.generate(p, { maxTokens: 10 + p.length % 5, temperature: 0, ignoreEos: true }))),
      collect(model.generate('Sampled', { maxTokens: 8, temperature: 0.8, seed: 3, ignoreEos: true })),
    ]);
    expect(together.slice(0, 4)).toEqual(alone);
    expect(together[4]).toEqual(seeded);
    expect(model.cache.freeBlocks).toBe(model.cache.usableBlocks);
  });

  it('an aborted request stops at once, frees its blocks, and the others go on', async () => {
    const ac = new AbortController();
    const long = model.generate('Keep going', { maxTokens: 200, temperature: 0, ignoreEos: true, signal: ac.signal });
    const other = model.generate('Other', { maxTokens: 30, temperature: 0, ignoreEos: true });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of long) {
          if (++n === 5) {
            const free0 = model.cache.freeBlocks;
            ac.abort();
            // Freed synchronously by the abort, while the other request still holds its blocks.
            expect(model.cache.freeBlocks).toBeGreaterThan(free0);
          }
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    const s = await long.summary;
    expect(s.finishReason).toBe('abort');
    expect(s.tokens).toBeLessThan(12);
    expect((await collect(other)).length).toBe(30);
    expect(model.cache.freeBlocks).toBe(model.cache.usableBlocks);
  });

  it('stops at stop strings and stop tokens, and refuses requests that can never fit', async () => {
    const ref = await model.generate('Stop test', { maxTokens: 20, temperature: 0, ignoreEos: true }).summary;
    // A stop string taken from the middle of the greedy text ends the text right before it.
    let cut = Math.floor(ref.text.length / 2);
    while (ref.text.indexOf(ref.text.slice(cut, cut + 3)) !== cut) cut++;
    const stop = ref.text.slice(cut, cut + 3);
    expect(stop.length).toBe(3);
    const st = model.generate('Stop test', { maxTokens: 20, temperature: 0, ignoreEos: true, stop: ['\u0000never', stop] });
    let streamed = '';
    for await (const e of st) streamed += e.text;
    const s = await st.summary;
    expect(s.finishReason).toBe('stop');
    expect(s.text).toBe(ref.text.slice(0, cut));
    expect(streamed).toBe(s.text);
    const tok = await collect(model.generate('Stop test', { maxTokens: 20, temperature: 0, ignoreEos: true }));
    const s2 = await model.generate('Stop test', { maxTokens: 20, temperature: 0, stopTokens: [tok[3]], ignoreEos: true }).summary;
    expect(s2.finishReason).toBe('stop');
    expect(s2.tokens).toBe(tok.indexOf(tok[3]));
    const big = model.generate('x', { maxTokens: 300 });
    await expect(big.text()).rejects.toThrow(/exceeds maxSeqLen 256/);
    expect((await big.summary).finishReason).toBe('error');
    expect(() => model.generate('x', { temperature: -1 })).toThrow(/temperature/);
    expect(() => model.generate([{ role: 'user', content: 'hi' }], { speculative: 'mtp', temperature: 0.5 })).toThrow(/use temperature 0/);
  });

  it('reports a full cache clearly when a request can never fit', async () => {
    const small = await dsk.loadModel(dir, { device: 'cpu', maxSeqLen: 4096, kvCacheTokens: 128, mtp: false });
    try {
      const s = small.generate('hello', { maxTokens: 500 });
      await expect(s.text()).rejects.toThrow(/KV cache full/);
    } finally {
      small.dispose();
    }
  });

  it('chats through the chat template', async () => {
    const s = model.generate([{ role: 'user', content: 'Hi!' }], { maxTokens: 5, temperature: 0, ignoreEos: true });
    const toks = await collect(s);
    expect(toks.length).toBe(5);
    expect((await s.summary).promptTokens).toBe(model.tokenizer.encodeChat([{ role: 'user', content: 'Hi!' }]).length);
  });

  it('MTP speculative decoding gives exactly the greedy tokens, and reports its acceptance rate', async () => {
    for (const p of ['Once upon a time', 'A', 'The numbers 1 2 3 4 5 6 7 8 9 are']) {
      const greedy = await collect(model.generate(p, { maxTokens: 33, temperature: 0, ignoreEos: true }));
      const s = model.generate(p, { maxTokens: 33, temperature: 0, ignoreEos: true, speculative: 'mtp' });
      expect(await collect(s)).toEqual(greedy);
      const sum = await s.summary;
      expect(sum.acceptanceRate).toBeGreaterThanOrEqual(0);
      expect(sum.acceptanceRate).toBeLessThanOrEqual(1);
    }
    // Concurrent speculative and plain requests together.
    const [a, b] = await Promise.all([
      collect(model.generate('Twin', { maxTokens: 17, temperature: 0, ignoreEos: true, speculative: 'mtp' })),
      collect(model.generate('Twin', { maxTokens: 17, temperature: 0, ignoreEos: true })),
    ]);
    expect(a).toEqual(b);
    expect(model.cache.freeBlocks).toBe(model.cache.usableBlocks);
  });

  it('loading reports progress, can be aborted, and refuses a truncated shard before reading data', async () => {
    const seen: number[] = [];
    let total = 0;
    const m = await dsk.loadModel(dir, { device: 'cpu', maxSeqLen: 128, kvCacheTokens: 256, onProgress: (p) => { seen.push(p.bytes); total = p.totalBytes; } });
    m.dispose();
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.every((b, i) => i === 0 || b >= seen[i - 1])).toBe(true);
    expect(seen[seen.length - 1]).toBe(total);
    const ac = new AbortController();
    const p = dsk.loadModel(dir, { device: 'cpu', signal: ac.signal, onProgress: (x) => { if (x.bytes > total / 3) ac.abort(); } });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    // A copy of the checkpoint whose largest shard lost its tail.
    const bad = mkdtempSync(join(tmpdir(), 'dsk-trunc-'));
    try {
      const files = readdirSync(dir);
      const shard = files.filter((f) => f.endsWith('.safetensors')).sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
      for (const f of files) if (f !== shard) symlinkSync(join(dir, f), join(bad, f));
      copyFileSync(join(dir, shard), join(bad, shard));
      truncateSync(join(bad, shard), statSync(join(dir, shard)).size - 1000);
      let progressed = false;
      await expect(dsk.loadModel(bad, { device: 'cpu', onProgress: () => (progressed = true) })).rejects.toThrow(new RegExp(`${shard}: tensor "[^"]+": data_offsets .* file truncated`));
      expect(progressed).toBe(false);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  it('the dsk CLI makes, inspects and runs a model', () => {
    const bin = join(__dirname, '../dist/lib/cli/main.js');
    const out = execFileSync(process.execPath, [bin, 'inspect', dir], { encoding: 'utf8' });
    expect(out).toMatch(/deepseek_v3/);
    expect(out).toMatch(/KV cache per token\s+3\.38 KiB/);
    const gen = execFileSync(process.execPath, [bin, 'generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '6', '--temperature', '0', '--device', 'cpu'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(gen.length).toBeGreaterThan(1);
    expect(() => execFileSync(process.execPath, [bin, 'inspect', join(dir, 'nope')], { stdio: 'pipe' })).toThrow(/no config\.json/);
  });
});
