// `dsk inspect DIR`: what a checkpoint holds and what running it takes, from config.json and the shard
// headers alone (no tensor data is read).
import { Checkpoint } from './checkpoint';
import { type ModelConfig, latentDim } from './config';
import { type WeightGroup, checkpointLayout, numel } from './layout';

export interface InspectReport {
  dir: string;
  config: ModelConfig;
  shards: number;
  /** Bytes of tensor data in the files. */
  fileBytes: number;
  /** Parameters per group (scales not counted). */
  params: Record<WeightGroup | 'other', number>;
  totalParams: number;
  /** Parameters one token uses (routed experts counted at top-k / E). */
  activeParams: number;
  /** Bytes per stored dtype (weights and scales). */
  bytesByDtype: Record<string, number>;
  /** Bytes of weights the runner keeps on the device (MTP copies of embedding/head skipped, per-head kv_b copies added). */
  deviceWeightBytes: number;
  /** Bytes of weights read per decode step at batch 1 (routed experts at top-k / E). */
  decodeBytesPerToken: number;
  kvBytesPerToken: number;
  /** deviceWeightBytes + KV cache for `contextTokens` tokens. */
  memoryNeeded: number;
  contextTokens: number;
}

/** Reads and checks a checkpoint's config and headers and reports its contents and needs. */
export function inspectCheckpoint(dir: string, opts: { contextTokens?: number } = {}): InspectReport {
  const ck = Checkpoint.open(dir);
  const c = ck.config;
  const specs = new Map(checkpointLayout(c).map((s) => [s.name, s]));
  const params = { embed: 0, head: 0, attention: 0, mlp: 0, experts: 0, shared_experts: 0, router: 0, norm: 0, mtp: 0, mtp_copy: 0, other: 0 };
  const bytesByDtype: Record<string, number> = {};
  let device = 0, active = 0, decodeBytes = 0;
  const frac = c.nRoutedExperts ? c.numExpertsPerTok / c.nRoutedExperts : 1;
  for (const t of ck.tensors.values()) {
    bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.nbytes;
    const isScale = t.name.endsWith('_scale_inv');
    const spec = specs.get(isScale ? t.name.slice(0, -'_scale_inv'.length) : t.name);
    const group: WeightGroup | 'other' = spec?.group ?? 'other';
    if (!isScale) params[group] += numel(t.shape);
    if (group === 'mtp_copy') continue;
    const dupe = spec?.name.endsWith('kv_b_proj.weight') ? 2 : 1; // plus W_UK^T / W_UV per head
    device += t.nbytes * dupe;
    const f = group === 'experts' ? frac : 1;
    if (!isScale) active += numel(t.shape) * f;
    // A decode step reads every weight once except the embedding (one row per token) and unchosen experts.
    if (group !== 'embed') decodeBytes += t.nbytes * f;
  }
  if (c.tieWordEmbeddings) decodeBytes += c.vocabSize * c.hiddenSize * 2;
  const totalParams = Object.entries(params).reduce((a, [k, v]) => (k === 'mtp_copy' ? a : a + v), 0);
  const kvBytesPerToken = (c.numLayers + c.numNextnPredictLayers) * latentDim(c) * 2;
  const contextTokens = opts.contextTokens ?? Math.min(4096, c.maxPositionEmbeddings);
  return {
    dir,
    config: c,
    shards: ck.shards.length,
    fileBytes: ck.totalBytes,
    params,
    totalParams,
    activeParams: Math.round(active),
    bytesByDtype,
    deviceWeightBytes: device,
    decodeBytesPerToken: Math.round(decodeBytes),
    kvBytesPerToken,
    memoryNeeded: device + kvBytesPerToken * contextTokens,
    contextTokens,
  };
}

export function formatBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? (n < 10 ? 2 : 1) : 0)} ${u[i]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

/** The report as the CLI prints it. */
export function formatInspect(r: InspectReport): string {
  const c = r.config;
  const lines: string[] = [];
  const kv = (k: string, v: string | number): void => void lines.push(`  ${k.padEnd(28)} ${v}`);
  lines.push(`${r.dir}`);
  lines.push('config');
  kv('model_type', c.modelType);
  kv('layers', `${c.numLayers} (${Math.min(c.firstKDenseReplace, c.numLayers)} dense, ${c.numLayers - Math.min(c.firstKDenseReplace, c.numLayers)} MoE) + ${c.numNextnPredictLayers} MTP`);
  kv('hidden / heads', `${c.hiddenSize} / ${c.numHeads}`);
  kv('q_lora / kv_lora / rope', `${c.qLoraRank ?? 'none'} / ${c.kvLoraRank} / ${c.qkRopeHeadDim}`);
  kv('dense intermediate', c.intermediateSize);
  if (c.nRoutedExperts)
    kv('experts', `${c.nRoutedExperts} routed + ${c.nSharedExperts} shared, top-${c.numExpertsPerTok}, ${c.nGroup} groups / ${c.topkGroup}, ${c.scoring}, width ${c.moeIntermediateSize}`);
  kv('vocab', c.vocabSize);
  kv('rope', c.yarn ? `theta ${c.ropeTheta}, YaRN x${c.yarn.factor} over ${c.yarn.originalMaxPosition}` : `theta ${c.ropeTheta}`);
  kv('weights', c.fp8 ? 'FP8 e4m3, 128x128 block scales' : 'bf16');
  lines.push('parameters');
  for (const [k, v] of Object.entries(r.params)) if (v) kv(k === 'mtp_copy' ? 'mtp copies (not loaded)' : k, formatCount(v));
  kv('total (without copies)', formatCount(r.totalParams));
  kv('active per token', formatCount(r.activeParams));
  lines.push('storage');
  kv('files', `${r.shards} shard(s), ${formatBytes(r.fileBytes)}`);
  for (const [k, v] of Object.entries(r.bytesByDtype)) kv(k, formatBytes(v));
  lines.push('running it');
  kv('weights on the device', formatBytes(r.deviceWeightBytes));
  kv('weights read per decode step', formatBytes(r.decodeBytesPerToken));
  kv('KV cache per token', `${formatBytes(r.kvBytesPerToken)} (${c.numLayers + c.numNextnPredictLayers} layers x ${latentDim(c)} bf16)`);
  kv(`memory for ${r.contextTokens} tokens`, `${formatBytes(r.memoryNeeded)} + activations`);
  return lines.join('\n');
}
