// Model configuration: the Hugging Face `config.json` of the deepseek_v3 / deepseek_v2 families, parsed,
// checked against what the kernels support, and turned into the few derived numbers the forward needs.
import { readFileSync } from 'node:fs';
import type { YarnParams } from '../ops/rope';

/** YaRN settings of the config's rope_scaling (type 'yarn'), every field given. */
export type YarnConfig = YarnParams;

/** Everything the runner needs from config.json, validated and normalized. */
export interface ModelConfig {
  modelType: 'deepseek_v3' | 'deepseek_v2';
  vocabSize: number;
  hiddenSize: number;
  /** Dense MLP width (first `firstKDenseReplace` layers). */
  intermediateSize: number;
  /** Main-model layers (the MTP modules come after them in the checkpoint). */
  numLayers: number;
  numHeads: number;
  /** null: queries come straight from the hidden state (V2-Lite); else their low-rank width. */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  ropeTheta: number;
  yarn: YarnConfig | null;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  // MoE
  nRoutedExperts: number;
  nSharedExperts: number;
  moeIntermediateSize: number;
  numExpertsPerTok: number;
  firstKDenseReplace: number;
  moeLayerFreq: number;
  nGroup: number;
  topkGroup: number;
  scoring: 'sigmoid' | 'softmax';
  /** How a group is scored when experts are grouped: V3 sums its top two, V2 takes its best. */
  groupScore: 'top2sum' | 'max';
  topkMethod: 'noaux_tc' | 'greedy' | 'group_limited_greedy';
  normTopkProb: boolean;
  /** Multiplier applied to the routed weights (already folded with the family's rule, see parseConfig). */
  routedScale: number;
  /** Raw routed_scaling_factor from the file. */
  routedScalingFactor: number;
  numNextnPredictLayers: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** The checkpoint stores FP8 e4m3 weights with 128x128 weight_scale_inv blocks. */
  fp8: boolean;
}

/** The config.json fields we read (Hugging Face names). */
export type HfConfig = Record<string, unknown>;

const SUPPORTED_TYPES = ['deepseek_v3', 'deepseek_v2'] as const;

/** Thrown for a config the runner cannot run; names the file and the field. */
export class UnsupportedConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedConfigError';
  }
}

function fail(file: string, msg: string): never {
  throw new UnsupportedConfigError(`${file}: ${msg}`);
}

class Fields {
  constructor(readonly raw: HfConfig, readonly file: string) {}
  int(name: string, dflt?: number, min = 0): number {
    const v = this.raw[name] ?? dflt;
    if (v === undefined) fail(this.file, `${name} is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      fail(this.file, `${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  }
  intOrNull(name: string): number | null {
    const v = this.raw[name];
    return v === undefined || v === null ? null : this.int(name, undefined, 1);
  }
  num(name: string, dflt?: number): number {
    const v = this.raw[name] ?? dflt;
    if (v === undefined) fail(this.file, `${name} is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(this.file, `${name} must be a finite number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(name: string, dflt: boolean): boolean {
    const v = this.raw[name] ?? dflt;
    if (typeof v !== 'boolean') fail(this.file, `${name} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str<T extends string>(name: string, allowed: readonly T[], dflt?: T): T {
    const v = this.raw[name] ?? dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T))
      fail(this.file, `${name} ${JSON.stringify(v)} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
    return v as T;
  }
  tokenId(name: string): number | null {
    const v = this.raw[name];
    if (v === undefined || v === null) return null;
    if (Array.isArray(v)) return typeof v[0] === 'number' ? v[0] : null;
    return typeof v === 'number' ? v : null;
  }
}

/**
 * Parses and checks a Hugging Face config.json object of the DeepSeek-V3 / V2 families. Unknown model
 * types and values the kernels do not support are refused with an UnsupportedConfigError naming the
 * file and the field.
 */
export function parseConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(file, 'must hold a JSON object');
  const f = new Fields(raw as HfConfig, file);
  const modelType = (raw as HfConfig).model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_TYPES as readonly string[]).includes(modelType))
    fail(file, `model_type ${JSON.stringify(modelType)} is not supported; this runner reads ${SUPPORTED_TYPES.join(' and ')} checkpoints`);
  const v3 = modelType === 'deepseek_v3';

  f.str('hidden_act', ['silu'], 'silu');
  if (f.bool('attention_bias', false)) fail(file, 'attention_bias true is not supported (DeepSeek MLA has no attention bias)');

  const hiddenSize = f.int('hidden_size', undefined, 1);
  const numHeads = f.int('num_attention_heads', undefined, 1);
  const kvHeads = f.int('num_key_value_heads', numHeads, 1);
  if (kvHeads !== numHeads) fail(file, `num_key_value_heads (${kvHeads}) must equal num_attention_heads (${numHeads}) for MLA`);
  const kvLoraRank = f.int('kv_lora_rank', undefined, 1);
  const qkRopeHeadDim = f.int('qk_rope_head_dim', undefined, 1);
  const qkNopeHeadDim = f.int('qk_nope_head_dim', undefined, 1);
  const vHeadDim = f.int('v_head_dim', undefined, 1);
  if (kvLoraRank !== 512 || qkRopeHeadDim !== 64)
    fail(file, `kv_lora_rank ${kvLoraRank} / qk_rope_head_dim ${qkRopeHeadDim}: the MLA kernels need 512 and 64 (a 576-wide latent cache)`);
  if (qkNopeHeadDim !== 128 || vHeadDim !== 128)
    fail(file, `qk_nope_head_dim ${qkNopeHeadDim} / v_head_dim ${vHeadDim}: the attention kernels need 128 and 128`);
  if (hiddenSize % 128) fail(file, `hidden_size ${hiddenSize} must be a multiple of 128 (FP8 blocks)`);

  const qLoraRank = f.intOrNull('q_lora_rank');
  if (qLoraRank !== null && qLoraRank % 128) fail(file, `q_lora_rank ${qLoraRank} must be a multiple of 128`);

  // Quantization: only DeepSeek's fine-grained FP8 (e4m3, 128x128 weight blocks, dynamic 1x128 activations).
  const q = (raw as HfConfig).quantization_config as Record<string, unknown> | undefined | null;
  let fp8 = false;
  if (q !== undefined && q !== null) {
    if (typeof q !== 'object') fail(file, 'quantization_config must be an object');
    if (q.quant_method !== 'fp8') fail(file, `quantization_config.quant_method ${JSON.stringify(q.quant_method)} is not supported (only "fp8")`);
    if (q.fmt !== undefined && q.fmt !== 'e4m3') fail(file, `quantization_config.fmt ${JSON.stringify(q.fmt)} is not supported (only "e4m3")`);
    if (q.activation_scheme !== undefined && q.activation_scheme !== 'dynamic')
      fail(file, `quantization_config.activation_scheme ${JSON.stringify(q.activation_scheme)} is not supported (only "dynamic")`);
    const bs = q.weight_block_size;
    if (!Array.isArray(bs) || bs.length !== 2 || bs[0] !== 128 || bs[1] !== 128)
      fail(file, `quantization_config.weight_block_size ${JSON.stringify(bs)} is not supported (only [128, 128])`);
    fp8 = true;
  }

  // Rotary embedding.
  let yarn: YarnConfig | null = null;
  const rs = (raw as HfConfig).rope_scaling as Record<string, unknown> | undefined | null;
  if (rs !== undefined && rs !== null) {
    const type = rs.type ?? rs.rope_type;
    if (type !== 'yarn') fail(file, `rope_scaling.type ${JSON.stringify(type)} is not supported (only "yarn")`);
    const rf = new Fields(rs, `${file} rope_scaling`);
    yarn = {
      factor: rf.num('factor'),
      originalMaxPosition: rf.int('original_max_position_embeddings', undefined, 1),
      betaFast: rf.num('beta_fast', 32),
      betaSlow: rf.num('beta_slow', 1),
      mscale: rf.num('mscale', 1),
      mscaleAllDim: rf.num('mscale_all_dim', 0),
    };
    if (yarn.factor < 1) fail(file, `rope_scaling.factor must be >= 1, got ${yarn.factor}`);
  }

  // Mixture of experts.
  const nRoutedExperts = f.int('n_routed_experts', 0);
  const numLayers = f.int('num_hidden_layers', undefined, 1);
  const firstKDenseReplace = f.int('first_k_dense_replace', 0);
  const moeLayerFreq = f.int('moe_layer_freq', 1, 1);
  const intermediateSize = f.int('intermediate_size', undefined, 1);
  let topkMethod: ModelConfig['topkMethod'] = 'greedy';
  let scoring: ModelConfig['scoring'] = 'softmax';
  let nGroup = 1, topkGroup = 1, numExpertsPerTok = 0, moeIntermediateSize = 0, nSharedExperts = 0;
  let normTopkProb = false, routedScalingFactor = 1;
  if (nRoutedExperts > 0) {
    topkMethod = f.str('topk_method', ['noaux_tc', 'greedy', 'group_limited_greedy'], v3 ? 'noaux_tc' : 'greedy');
    scoring = f.str('scoring_func', ['sigmoid', 'softmax'], v3 ? 'sigmoid' : 'softmax');
    numExpertsPerTok = f.int('num_experts_per_tok', undefined, 1);
    moeIntermediateSize = f.int('moe_intermediate_size', undefined, 1);
    nSharedExperts = f.int('n_shared_experts', 0);
    nGroup = f.int('n_group', 1, 1);
    topkGroup = f.int('topk_group', 1, 1);
    normTopkProb = f.bool('norm_topk_prob', false);
    routedScalingFactor = f.num('routed_scaling_factor', 1);
    if (numExpertsPerTok > nRoutedExperts) fail(file, `num_experts_per_tok (${numExpertsPerTok}) exceeds n_routed_experts (${nRoutedExperts})`);
    if (nRoutedExperts % nGroup) fail(file, `n_routed_experts (${nRoutedExperts}) must be a multiple of n_group (${nGroup})`);
    if (topkGroup > nGroup) fail(file, `topk_group (${topkGroup}) exceeds n_group (${nGroup})`);
    if (topkMethod === 'greedy') { nGroup = 1; topkGroup = 1; }
    if (topkGroup * (nRoutedExperts / nGroup) < numExpertsPerTok)
      fail(file, `topk_group ${topkGroup} of ${nGroup} groups leaves fewer than num_experts_per_tok (${numExpertsPerTok}) experts`);
    if (moeIntermediateSize % 128) fail(file, `moe_intermediate_size ${moeIntermediateSize} must be a multiple of 128 (the grouped FP8 GEMMs)`);
    if (topkMethod === 'noaux_tc' && scoring !== 'sigmoid') fail(file, 'topk_method "noaux_tc" needs scoring_func "sigmoid"');
  }
  // V3 scales the routed weights always; V2 only when they are not normalized (its MoEGate's rule).
  const routedScale = v3 ? routedScalingFactor : normTopkProb ? 1 : routedScalingFactor;

  return {
    modelType: modelType as ModelConfig['modelType'],
    vocabSize: f.int('vocab_size', undefined, 1),
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    qLoraRank,
    kvLoraRank,
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim,
    ropeTheta: f.num('rope_theta', 10000),
    yarn,
    maxPositionEmbeddings: f.int('max_position_embeddings', 4096, 1),
    rmsNormEps: f.num('rms_norm_eps', 1e-6),
    nRoutedExperts,
    nSharedExperts,
    moeIntermediateSize,
    numExpertsPerTok,
    firstKDenseReplace,
    moeLayerFreq,
    nGroup,
    topkGroup,
    scoring,
    groupScore: topkMethod === 'noaux_tc' ? 'top2sum' : 'max',
    topkMethod,
    normTopkProb,
    routedScale,
    routedScalingFactor,
    numNextnPredictLayers: f.int('num_nextn_predict_layers', 0),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: f.tokenId('bos_token_id'),
    eosTokenId: f.tokenId('eos_token_id'),
    fp8,
  };
}

/** Reads and parses `file` (a config.json). */
export function readConfig(file: string): ModelConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UnsupportedConfigError(`${file}: cannot be read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UnsupportedConfigError(`${file}: is not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}

/** Whether layer `i` (0-based; the MTP layer counts as MoE like the last main layers) has routed experts. */
export function isMoeLayer(c: ModelConfig, i: number): boolean {
  return c.nRoutedExperts > 0 && i >= c.firstKDenseReplace && i % c.moeLayerFreq === 0;
}

export function qkHeadDim(c: ModelConfig): number {
  return c.qkNopeHeadDim + c.qkRopeHeadDim;
}

/** YaRN's attention-temperature correction: 0.1 * m * ln(scale) + 1 for scale > 1. */
export function yarnMscale(scale: number, m: number): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** Softmax scale of the attention: 1/sqrt(qk head dim), times mscale(factor, mscale_all_dim)^2 under YaRN. */
export function softmaxScale(c: ModelConfig): number {
  let s = 1 / Math.sqrt(qkHeadDim(c));
  if (c.yarn && c.yarn.mscaleAllDim) {
    const m = yarnMscale(c.yarn.factor, c.yarn.mscaleAllDim);
    s *= m * m;
  }
  return s;
}

/** Values of the MLA latent cache per token per layer (kv_lora_rank + rope dims = 576). */
export function latentDim(c: ModelConfig): number {
  return c.kvLoraRank + c.qkRopeHeadDim;
}
