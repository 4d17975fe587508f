#!/usr/bin/env node
// The `dsk` command: make-model, inspect, generate, chat, launch.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { makeModel } from '../model/make_model';
import { PRESETS, type Preset } from '../model/presets';
import { formatBytes, formatInspect, inspectCheckpoint } from '../model/inspect';
import type { ChatMessage } from '../model/tokenizer';
import { type GenerateOptions, type LoadModelOptions, type Model, loadModel } from '../runner/model';
import { ProgressBar } from './progress';
import { launchCommand } from '../dist/launch';

const USAGE = `usage: dsk <command> [options]

commands:
  make-model --out DIR --preset ${PRESETS.join('|')} [--layers N] [--experts E] [--seed S] [--dtype fp8|bf16] [--no-mtp] [--shard-size BYTES]
      write a random-weight checkpoint in the Hugging Face DeepSeek layout, with DeepSeek-V3's tokenizer
  inspect DIR [--context TOKENS] [--json]
      config, parameter counts, FP8/bf16 bytes, KV bytes per token and memory needed
  generate --model DIR --prompt TEXT [generation options]
      stream a completion of TEXT (--chat: TEXT is a user message rendered with the chat template)
  chat --model DIR [generation options]
      interactive chat on stdin (empty line or Ctrl-D ends)
  launch --gpus N script.js [args...]
      start one process per GPU of a script that calls dsk.dist.init() (expert parallelism; see docs/expert-parallel.md)

generation options:
  --device cpu|cuda|cuda:N   --max-tokens N   --temperature T   --top-k K   --top-p P   --seed S
  --stop TEXT (repeatable)   --speculative mtp   --quantize fp8   --max-seq-len N   --no-graphs   --system TEXT
`;

function fail(msg: string): never {
  process.stderr.write(`dsk: ${msg}\n`);
  process.exit(2);
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) fail(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}
function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

const genOptions = {
  model: { type: 'string' },
  device: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  speculative: { type: 'string' },
  quantize: { type: 'string' },
  'max-seq-len': { type: 'string' },
  'no-graphs': { type: 'boolean' },
  system: { type: 'string' },
  chat: { type: 'boolean' },
  prompt: { type: 'string' },
} as const;

type GenValues = { [K in keyof typeof genOptions]?: (typeof genOptions)[K] extends { multiple: true } ? string[] : (typeof genOptions)[K] extends { type: 'boolean' } ? boolean : string };

async function openModel(v: GenValues): Promise<Model> {
  if (!v.model) fail('--model DIR is required');
  if (v.quantize !== undefined && v.quantize !== 'fp8') fail(`--quantize must be fp8, got ${JSON.stringify(v.quantize)}`);
  const bar = new ProgressBar('loading');
  const ac = new AbortController();
  const onSig = (): void => ac.abort();
  process.once('SIGINT', onSig);
  const o: LoadModelOptions = {
    device: v.device as LoadModelOptions['device'],
    quantize: v.quantize as 'fp8' | undefined,
    maxSeqLen: int(v['max-seq-len'], 'max-seq-len'),
    cudaGraphs: v['no-graphs'] ? false : undefined,
    onProgress: (p) => bar.update(p.bytes, p.totalBytes),
    signal: ac.signal,
  };
  try {
    const m = await loadModel(v.model, o);
    bar.done(`${formatBytes(m.weightBytes)} of weights on ${m.device}`);
    return m;
  } finally {
    process.off('SIGINT', onSig);
  }
}

function generateOptions(v: GenValues, signal: AbortSignal): GenerateOptions {
  if (v.speculative !== undefined && v.speculative !== 'mtp') fail(`--speculative must be mtp, got ${JSON.stringify(v.speculative)}`);
  return {
    maxTokens: int(v['max-tokens'], 'max-tokens'),
    temperature: num(v.temperature, 'temperature') ?? (v.speculative ? 0 : undefined),
    topK: int(v['top-k'], 'top-k'),
    topP: num(v['top-p'], 'top-p'),
    seed: int(v.seed, 'seed'),
    stop: v.stop,
    speculative: v.speculative as 'mtp' | undefined,
    signal,
  };
}

function summaryLine(s: { tokens: number; timeToFirstTokenMs: number; tokensPerSecond: number; finishReason: string; acceptanceRate?: number }): string {
  const acc = s.acceptanceRate !== undefined ? `, MTP acceptance ${(s.acceptanceRate * 100).toFixed(0)}%` : '';
  return `[${s.tokens} tokens, first after ${s.timeToFirstTokenMs.toFixed(0)} ms, ${s.tokensPerSecond.toFixed(1)} tokens/s, ${s.finishReason}${acc}]`;
}

async function cmdGenerate(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: genOptions, allowPositionals: false });
  if (v.prompt === undefined) fail('--prompt TEXT is required');
  const model = await openModel(v as GenValues);
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  try {
    const messages: ChatMessage[] = [];
    if (v.system) messages.push({ role: 'system', content: v.system });
    messages.push({ role: 'user', content: v.prompt });
    const stream = model.generate(v.chat ? messages : v.prompt, generateOptions(v as GenValues, ac.signal));
    try {
      for await (const e of stream) process.stdout.write(e.text);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
    }
    const s = await stream.summary;
    process.stdout.write('\n');
    process.stderr.write(summaryLine(s) + '\n');
    if (s.error) throw s.error;
  } finally {
    model.dispose();
  }
}

async function cmdChat(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: genOptions, allowPositionals: false });
  const model = await openModel(v as GenValues);
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: !!process.stdin.isTTY });
  const history: ChatMessage[] = v.system ? [{ role: 'system', content: v.system }] : [];
  let ac: AbortController | null = null;
  rl.on('SIGINT', () => (ac ? ac.abort() : rl.close()));
  process.stdout.write(`chatting with ${model.dir} on ${model.device} (empty line or Ctrl-D to quit)\n`);
  try {
    process.stdout.write('> ');
    for await (const line of rl) {
      if (line.trim() === '') break;
      history.push({ role: 'user', content: line });
      ac = new AbortController();
      const stream = model.generate(history, generateOptions(v as GenValues, ac.signal));
      let reply = '';
      try {
        for await (const e of stream) {
          process.stdout.write(e.text);
          reply += e.text;
        }
      } catch (e) {
        if ((e as Error).name !== 'AbortError') throw e;
      }
      ac = null;
      const s = await stream.summary;
      process.stdout.write('\n');
      process.stderr.write(summaryLine(s) + '\n');
      history.push({ role: 'assistant', content: reply });
      process.stdout.write('> ');
    }
  } finally {
    rl.close();
    model.dispose();
  }
}

async function cmdMakeModel(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      preset: { type: 'string' },
      layers: { type: 'string' },
      experts: { type: 'string' },
      seed: { type: 'string' },
      'no-mtp': { type: 'boolean' },
      'shard-size': { type: 'string' },
      dtype: { type: 'string' },
    },
  });
  if (v.dtype !== undefined && v.dtype !== 'fp8' && v.dtype !== 'bf16') fail('--dtype must be fp8 or bf16');
  if (!v.out) fail('--out DIR is required');
  if (!v.preset || !(PRESETS as readonly string[]).includes(v.preset)) fail(`--preset must be one of ${PRESETS.join(', ')}`);
  const bar = new ProgressBar('writing');
  const r = await makeModel({
    out: v.out,
    preset: v.preset as Preset,
    layers: int(v.layers, 'layers'),
    experts: int(v.experts, 'experts'),
    seed: int(v.seed, 'seed'),
    mtp: v['no-mtp'] ? false : undefined,
    dtype: v.dtype as 'fp8' | 'bf16' | undefined,
    shardBytes: int(v['shard-size'], 'shard-size'),
    onProgress: (p) => bar.update(p.bytes, p.totalBytes, p.file),
  });
  bar.done(`${formatBytes(r.totalBytes)} in ${r.files.filter((f) => f.endsWith('.safetensors')).length} shard(s) to ${r.dir}`);
}

async function cmdInspect(argv: string[]): Promise<void> {
  const { values: v, positionals } = parseArgs({ args: argv, options: { context: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true });
  if (positionals.length !== 1) fail('inspect takes one model directory');
  const r = inspectCheckpoint(positionals[0], { contextTokens: int(v.context, 'context') });
  process.stdout.write(v.json ? JSON.stringify(r, null, 2) + '\n' : formatInspect(r) + '\n');
}

/** Runs the CLI with `argv` (without node and script). */
export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'make-model':
      return cmdMakeModel(rest);
    case 'inspect':
      return cmdInspect(rest);
    case 'generate':
      return cmdGenerate(rest);
    case 'chat':
      return cmdChat(rest);
    case 'launch':  // lib/dist/launch.ts
      process.exitCode = await launchCommand(rest);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`dsk: ${e.message}\n`);
    process.exit(1);
  });
}
