// A Hugging Face checkpoint directory: config.json, model.safetensors.index.json and its shards (or a
// single model.safetensors). Opening one validates the config and every shard's header, so a
// truncated or corrupt file is refused before any tensor data is read.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelConfig, readConfig } from './config';
import { SafetensorsError, SafetensorsFile, type TensorInfo } from './safetensors';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** A tensor of the checkpoint: where it lives and what it is. */
export interface CheckpointTensor extends TensorInfo {
  /** Absolute path of the shard holding it. */
  file: string;
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export class Checkpoint {
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;
  readonly shards: readonly SafetensorsFile[];

  private constructor(readonly dir: string, readonly config: ModelConfig, readonly rawConfig: Record<string, unknown>, shards: SafetensorsFile[], tensors: Map<string, CheckpointTensor>) {
    this.shards = shards;
    this.tensors = tensors;
  }

  /** Opens `dir`, reading config.json and validating every shard header named by the index. */
  static open(dir: string): Checkpoint {
    const cfgPath = join(dir, 'config.json');
    if (!existsSync(cfgPath)) throw new CheckpointError(`${dir}: no config.json (is this a Hugging Face model directory?)`);
    const config = readConfig(cfgPath);
    const rawConfig = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    const indexPath = join(dir, INDEX_FILE);
    let files: string[];
    let weightMap: Record<string, string> | null = null;
    if (existsSync(indexPath)) {
      let idx: unknown;
      try {
        idx = JSON.parse(readFileSync(indexPath, 'utf8'));
      } catch (e) {
        throw new CheckpointError(`${indexPath}: is not valid JSON (${(e as Error).message})`);
      }
      const wm = (idx as { weight_map?: unknown })?.weight_map;
      if (!wm || typeof wm !== 'object' || Array.isArray(wm) || Object.values(wm).some((v) => typeof v !== 'string'))
        throw new CheckpointError(`${indexPath}: weight_map must map tensor names to shard file names`);
      weightMap = wm as Record<string, string>;
      for (const [name, f] of Object.entries(weightMap))
        if (f.includes('/') || f.includes('\\') || f.startsWith('.'))
          throw new CheckpointError(`${indexPath}: tensor ${JSON.stringify(name)} points at ${JSON.stringify(f)}, which is not a file name in this directory`);
      files = [...new Set(Object.values(weightMap))].sort();
    } else if (existsSync(join(dir, SINGLE_FILE))) {
      files = [SINGLE_FILE];
    } else {
      throw new CheckpointError(`${dir}: neither ${INDEX_FILE} nor ${SINGLE_FILE} found`);
    }
    const shards = files.map((f) => {
      const p = join(dir, f);
      if (!existsSync(p)) throw new SafetensorsError(p, `is named by ${INDEX_FILE} but does not exist`);
      return SafetensorsFile.open(p);
    });
    const byFile = new Map(files.map((f, i) => [f, shards[i]]));
    const tensors = new Map<string, CheckpointTensor>();
    if (weightMap) {
      for (const [name, f] of Object.entries(weightMap)) {
        const shard = byFile.get(f)!;
        const info = shard.tensors.get(name);
        if (!info) throw new SafetensorsError(shard.path, `is listed in ${INDEX_FILE} for this file but missing from its header`, name);
        tensors.set(name, { ...info, file: shard.path });
      }
      for (const s of shards)
        for (const name of s.tensors.keys())
          if (!tensors.has(name)) throw new SafetensorsError(s.path, `is in this shard but not in ${INDEX_FILE}`, name);
    } else {
      for (const [name, info] of shards[0].tensors) tensors.set(name, { ...info, file: shards[0].path });
    }
    return new Checkpoint(dir, config, rawConfig, shards, tensors);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The tensor `name`; a CheckpointError naming the directory and tensor when absent. */
  get(name: string): CheckpointTensor {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`${this.dir}: tensor ${JSON.stringify(name)} is missing from the checkpoint`);
    return t;
  }

  /** Checks that `name` exists with `dtype` (one of) and `shape`; errors name the shard and the tensor. */
  expect(name: string, dtypes: readonly string[], shape: readonly number[]): CheckpointTensor {
    const t = this.get(name);
    if (!dtypes.includes(t.dtype)) throw new SafetensorsError(t.file, `has dtype ${t.dtype}, expected ${dtypes.join(' or ')}`, name);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i]))
      throw new SafetensorsError(t.file, `has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`, name);
    return t;
  }

  /** Total bytes of tensor data. */
  get totalBytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.nbytes;
    return n;
  }
}
