// `npm run demo [-- --model DIR] [--prompt TEXT] [--max-tokens N] [--device D]`: lists devices, then
// runs a DeepSeek model end to end — a random-weight tiny checkpoint in the real Hugging Face layout
// (made on first use) unless --model names one — on the GPU when present, else the CPU, and prints
// the generated tokens and the speed.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as dsk from './index';

function listDevices(): void {
  const devs = dsk.devices();
  for (const d of devs) {
    const extra = d.type === 'cuda'
      ? `${d.smCount} SMs, ${(d.totalMemory! / 2 ** 30).toFixed(1)} GiB, sm_${d.computeCapability!.replace('.', '')}`
      : `${d.threads} threads`;
    console.log(`  ${d.id.padEnd(7)} ${d.name} (${extra})`);
  }
  const st = dsk.cuda.status();
  if (!st.available) console.log(`  (no GPU: ${st.reason})`);
  console.log();
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: { model: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, device: { type: 'string' } },
  });
  console.log('deepseek-kernels demo\n');
  listDevices();

  let dir = v.model;
  if (!dir) {
    dir = join(tmpdir(), 'deepseek-kernels-demo-tiny');
    if (!existsSync(join(dir, 'config.json'))) {
      process.stdout.write(`making a random-weight tiny DeepSeek-V3-layout model in ${dir} ... `);
      const r = await dsk.makeModel({ out: dir, preset: 'tiny', seed: 0 });
      console.log(`${(r.totalBytes / 2 ** 20).toFixed(0)} MiB`);
    }
  }
  const device = (v.device ?? (dsk.cuda.isAvailable() ? 'cuda:0' : 'cpu')) as dsk.Device;
  const t0 = performance.now();
  const model = await dsk.loadModel(dir, { device, maxSeqLen: 1024 });
  console.log(`loaded ${dir} on ${model.device} in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
    `(${model.config.numLayers} layers, ${(model.weightBytes / 2 ** 20).toFixed(0)} MiB of weights)`);
  try {
    const prompt = v.prompt ?? 'The best thing about Node.js is';
    const maxTokens = Number(v['max-tokens'] ?? 32);
    console.log(`\nprompt: ${JSON.stringify(prompt)}`);
    const stream = model.generate(prompt, { maxTokens, temperature: 0, ignoreEos: !v.model });
    const tokens: number[] = [];
    process.stdout.write('text:   ');
    for await (const e of stream) {
      tokens.push(e.token);
      process.stdout.write(e.text);
    }
    const s = await stream.summary;
    console.log(`\ntokens: ${tokens.join(' ')}`);
    console.log(`\n${s.tokens} tokens on ${model.device}: first after ${s.timeToFirstTokenMs.toFixed(0)} ms, ${s.tokensPerSecond.toFixed(1)} tokens/s`);
    if (!v.model) console.log('(random weights: the text is meaningless; pass --model DIR for a real checkpoint)');
  } finally {
    model.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
