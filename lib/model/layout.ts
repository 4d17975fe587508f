// The tensors of a DeepSeek-V3 / V2 checkpoint in the Hugging Face layout, derived from the config:
// names, shapes, which linears are FP8 (with their weight_scale_inv), and what each one is. Used to
// write random checkpoints, to check a checkpoint before loading it, and to count parameters.
import { type ModelConfig, isMoeLayer, qkHeadDim, latentDim } from './config';

export type WeightRole = 'linear' | 'norm' | 'embed' | 'head' | 'router' | 'bias';
export type WeightGroup = 'embed' | 'head' | 'attention' | 'mlp' | 'experts' | 'shared_experts' | 'router' | 'norm' | 'mtp' | 'mtp_copy';

/** One logical weight. Linears stored in FP8 have a companion `${name}_scale_inv` (see scaleName). */
export interface WeightSpec {
  name: string;
  shape: number[];
  role: WeightRole;
  group: WeightGroup;
  /** Stored as F8_E4M3 with 128x128 weight_scale_inv blocks (FP8 checkpoints' linears). */
  fp8: boolean;
  /** Layer index (main layers 0..L-1, MTP modules L..), when the weight belongs to one. */
  layer?: number;
  /** MTP copies of the embedding / head that the runner shares with the main model and never loads. */
  unused?: boolean;
}

export const scaleName = (weight: string): string => `${weight}_scale_inv`;

/** Shape of the 128x128-block scales of an [N, K] FP8 weight. */
export const blockScaleShape = (shape: readonly number[]): number[] => [Math.ceil(shape[0] / 128), Math.ceil(shape[1] / 128)];

export const layerPrefix = (i: number): string => `model.layers.${i}.`;

/** Whether an [N, K] linear can be stored in FP8 blocks: K must be a multiple of 128 (activation tiles). */
export const fp8Capable = (shape: readonly number[]): boolean => shape[1] % 128 === 0;

function mlpSpecs(p: string, hidden: number, inter: number, group: WeightGroup, fp8: boolean, layer: number): WeightSpec[] {
  return [
    { name: `${p}gate_proj.weight`, shape: [inter, hidden], role: 'linear', group, fp8, layer },
    { name: `${p}up_proj.weight`, shape: [inter, hidden], role: 'linear', group, fp8, layer },
    { name: `${p}down_proj.weight`, shape: [hidden, inter], role: 'linear', group, fp8: fp8 && fp8Capable([hidden, inter]), layer },
  ];
}

/** The weights of decoder layer `i` (attention + dense MLP or MoE). */
export function layerSpecs(c: ModelConfig, i: number, groupOverride?: WeightGroup): WeightSpec[] {
  const p = layerPrefix(i);
  const H = c.hiddenSize, nh = c.numHeads, fp8 = c.fp8;
  const g = (x: WeightGroup): WeightGroup => groupOverride ?? x;
  const out: WeightSpec[] = [
    { name: `${p}input_layernorm.weight`, shape: [H], role: 'norm', group: g('norm'), fp8: false, layer: i },
    { name: `${p}post_attention_layernorm.weight`, shape: [H], role: 'norm', group: g('norm'), fp8: false, layer: i },
  ];
  const a = `${p}self_attn.`;
  if (c.qLoraRank !== null) {
    out.push(
      { name: `${a}q_a_proj.weight`, shape: [c.qLoraRank, H], role: 'linear', group: g('attention'), fp8, layer: i },
      { name: `${a}q_a_layernorm.weight`, shape: [c.qLoraRank], role: 'norm', group: g('norm'), fp8: false, layer: i },
      { name: `${a}q_b_proj.weight`, shape: [nh * qkHeadDim(c), c.qLoraRank], role: 'linear', group: g('attention'), fp8, layer: i },
    );
  } else {
    out.push({ name: `${a}q_proj.weight`, shape: [nh * qkHeadDim(c), H], role: 'linear', group: g('attention'), fp8, layer: i });
  }
  out.push(
    { name: `${a}kv_a_proj_with_mqa.weight`, shape: [latentDim(c), H], role: 'linear', group: g('attention'), fp8, layer: i },
    { name: `${a}kv_a_layernorm.weight`, shape: [c.kvLoraRank], role: 'norm', group: g('norm'), fp8: false, layer: i },
    { name: `${a}kv_b_proj.weight`, shape: [nh * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank], role: 'linear', group: g('attention'), fp8, layer: i },
    { name: `${a}o_proj.weight`, shape: [H, nh * c.vHeadDim], role: 'linear', group: g('attention'), fp8, layer: i },
  );
  const m = `${p}mlp.`;
  if (isMoeLayer(c, i)) {
    out.push({ name: `${m}gate.weight`, shape: [c.nRoutedExperts, H], role: 'router', group: g('router'), fp8: false, layer: i });
    if (c.topkMethod === 'noaux_tc')
      out.push({ name: `${m}gate.e_score_correction_bias`, shape: [c.nRoutedExperts], role: 'bias', group: g('router'), fp8: false, layer: i });
    for (let e = 0; e < c.nRoutedExperts; e++) out.push(...mlpSpecs(`${m}experts.${e}.`, H, c.moeIntermediateSize, g('experts'), fp8, i));
    if (c.nSharedExperts > 0) out.push(...mlpSpecs(`${m}shared_experts.`, H, c.moeIntermediateSize * c.nSharedExperts, g('shared_experts'), fp8, i));
  } else {
    out.push(...mlpSpecs(m, H, c.intermediateSize, g('mlp'), fp8, i));
  }
  return out;
}

/** The weights of MTP module k (checkpoint layer numLayers + k): its own block plus enorm/hnorm/eh_proj. */
export function mtpSpecs(c: ModelConfig, k: number): WeightSpec[] {
  const i = c.numLayers + k;
  const p = layerPrefix(i);
  const H = c.hiddenSize;
  return [
    { name: `${p}embed_tokens.weight`, shape: [c.vocabSize, H], role: 'embed', group: 'mtp_copy', fp8: false, layer: i, unused: true },
    { name: `${p}enorm.weight`, shape: [H], role: 'norm', group: 'mtp', fp8: false, layer: i },
    { name: `${p}hnorm.weight`, shape: [H], role: 'norm', group: 'mtp', fp8: false, layer: i },
    { name: `${p}eh_proj.weight`, shape: [H, 2 * H], role: 'linear', group: 'mtp', fp8: c.fp8, layer: i },
    ...layerSpecs(c, i, 'mtp'),
    { name: `${p}shared_head.norm.weight`, shape: [H], role: 'norm', group: 'mtp', fp8: false, layer: i },
    { name: `${p}shared_head.head.weight`, shape: [c.vocabSize, H], role: 'head', group: 'mtp_copy', fp8: false, layer: i, unused: true },
  ];
}

/** Every weight of a checkpoint for config `c`, in the order the Hugging Face layout lists them. */
export function checkpointLayout(c: ModelConfig): WeightSpec[] {
  const out: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize], role: 'embed', group: 'embed', fp8: false }];
  for (let i = 0; i < c.numLayers; i++) out.push(...layerSpecs(c, i));
  for (let k = 0; k < c.numNextnPredictLayers; k++) out.push(...mtpSpecs(c, k));
  out.push({ name: 'model.norm.weight', shape: [c.hiddenSize], role: 'norm', group: 'norm', fp8: false });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], role: 'head', group: 'head', fp8: false });
  return out;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, s) => a * s, 1);
