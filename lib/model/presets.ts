// config.json contents for `dsk make-model --preset ...`: random-weight models in the real layout.
//   tiny            smallest model that exercises every path (q_lora, dense + MoE layers, groups, MTP)
//   tiny-v2         the deepseek_v2 family in miniature: bf16, no q_lora, softmax greedy routing, a
//                   dense width that is not a multiple of 128 (as V2-Lite's 10944)
//   small           a few hundred MB, for demos
//   v2-lite-shape   DeepSeek-V2-Lite's per-layer shapes (bf16, no q_lora, softmax greedy routing)
//   v3-shape        DeepSeek-V3's per-layer shapes (FP8, 7168 hidden, 128 heads, 256 experts)
// All ship DeepSeek-V3's tokenizer, so the vocabulary is V3's (129280) everywhere.

export const PRESETS = ['tiny', 'tiny-v2', 'small', 'v2-lite-shape', 'v3-shape'] as const;
export type Preset = (typeof PRESETS)[number];

const V3_VOCAB = 129280;

const yarn = (mscale: number) => ({
  type: 'yarn',
  factor: 40,
  original_max_position_embeddings: 4096,
  beta_fast: 32,
  beta_slow: 1,
  mscale,
  mscale_all_dim: mscale,
});

const fp8Quant = { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] };

function v3Base(): Record<string, unknown> {
  return {
    architectures: ['DeepseekV3ForCausalLM'],
    model_type: 'deepseek_v3',
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 0,
    eos_token_id: 1,
    hidden_act: 'silu',
    initializer_range: 0.02,
    kv_lora_rank: 512,
    qk_nope_head_dim: 128,
    qk_rope_head_dim: 64,
    v_head_dim: 128,
    max_position_embeddings: 163840,
    moe_layer_freq: 1,
    norm_topk_prob: true,
    num_nextn_predict_layers: 1,
    rms_norm_eps: 1e-6,
    rope_scaling: yarn(1.0),
    rope_theta: 10000,
    scoring_func: 'sigmoid',
    topk_method: 'noaux_tc',
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: V3_VOCAB,
    quantization_config: fp8Quant,
  };
}

export interface PresetOptions {
  /** Main-model layers (the first min(first_k_dense_replace, layers - 1) are dense). */
  layers?: number;
  /** Routed experts (kept a multiple of n_group). */
  experts?: number;
  /** Include the MTP module (default true). */
  mtp?: boolean;
  /** Weight storage: 'fp8' (DeepSeek-V3's block-scaled FP8) or 'bf16' (no quantization_config). Default: the preset's. */
  dtype?: 'fp8' | 'bf16';
}

/** The config.json object of a preset, with overrides applied. */
export function presetConfig(preset: Preset, o: PresetOptions = {}): Record<string, unknown> {
  let c: Record<string, unknown>;
  switch (preset) {
    case 'tiny':
      c = {
        ...v3Base(),
        hidden_size: 256,
        intermediate_size: 512,
        num_hidden_layers: 2,
        first_k_dense_replace: 1,
        num_attention_heads: 4,
        num_key_value_heads: 4,
        q_lora_rank: 128,
        moe_intermediate_size: 128,
        n_routed_experts: 8,
        n_shared_experts: 1,
        num_experts_per_tok: 2,
        n_group: 4,
        topk_group: 2,
        routed_scaling_factor: 2.5,
      };
      break;
    case 'tiny-v2':
      c = {
        ...(presetConfig('v2-lite-shape') as Record<string, unknown>),
        hidden_size: 256,
        intermediate_size: 320,
        num_hidden_layers: 2,
        first_k_dense_replace: 1,
        num_attention_heads: 4,
        num_key_value_heads: 4,
        moe_intermediate_size: 128,
        n_routed_experts: 8,
        n_shared_experts: 2,
        num_experts_per_tok: 3,
      };
      break;
    case 'small':
      c = {
        ...v3Base(),
        hidden_size: 1024,
        intermediate_size: 2816,
        num_hidden_layers: 6,
        first_k_dense_replace: 1,
        num_attention_heads: 16,
        num_key_value_heads: 16,
        q_lora_rank: 384,
        moe_intermediate_size: 256,
        n_routed_experts: 32,
        n_shared_experts: 1,
        num_experts_per_tok: 4,
        n_group: 4,
        topk_group: 2,
        routed_scaling_factor: 2.5,
      };
      break;
    case 'v2-lite-shape':
      c = {
        architectures: ['DeepseekV2ForCausalLM'],
        model_type: 'deepseek_v2',
        attention_bias: false,
        attention_dropout: 0.0,
        aux_loss_alpha: 0.001,
        bos_token_id: 0,
        eos_token_id: 1,
        first_k_dense_replace: 1,
        hidden_act: 'silu',
        hidden_size: 2048,
        initializer_range: 0.02,
        intermediate_size: 10944,
        kv_lora_rank: 512,
        max_position_embeddings: 163840,
        moe_intermediate_size: 1408,
        moe_layer_freq: 1,
        n_group: 1,
        n_routed_experts: 64,
        n_shared_experts: 2,
        norm_topk_prob: false,
        num_attention_heads: 16,
        num_experts_per_tok: 6,
        num_hidden_layers: 4,
        num_key_value_heads: 16,
        q_lora_rank: null,
        qk_nope_head_dim: 128,
        qk_rope_head_dim: 64,
        rms_norm_eps: 1e-6,
        rope_scaling: yarn(0.707),
        rope_theta: 10000,
        routed_scaling_factor: 1.0,
        scoring_func: 'softmax',
        seq_aux: true,
        tie_word_embeddings: false,
        topk_group: 1,
        topk_method: 'greedy',
        torch_dtype: 'bfloat16',
        use_cache: true,
        v_head_dim: 128,
        vocab_size: V3_VOCAB,
        num_nextn_predict_layers: 0,
      };
      break;
    case 'v3-shape':
      c = {
        ...v3Base(),
        hidden_size: 7168,
        intermediate_size: 18432,
        num_hidden_layers: 2,
        first_k_dense_replace: 3,
        num_attention_heads: 128,
        num_key_value_heads: 128,
        q_lora_rank: 1536,
        moe_intermediate_size: 2048,
        n_routed_experts: 256,
        n_shared_experts: 1,
        num_experts_per_tok: 8,
        n_group: 8,
        topk_group: 4,
        routed_scaling_factor: 2.5,
      };
      break;
    default:
      throw new RangeError(`preset must be one of ${PRESETS.join(', ')}, got ${JSON.stringify(preset)}`);
  }
  if (o.layers !== undefined) {
    if (!Number.isSafeInteger(o.layers) || o.layers < 1) throw new RangeError(`layers must be a positive integer, got ${o.layers}`);
    c.num_hidden_layers = o.layers;
  }
  const L = c.num_hidden_layers as number;
  // Keep at least one MoE layer: fewer layers than the real model still show the MoE path.
  c.first_k_dense_replace = Math.min(c.first_k_dense_replace as number, Math.max(L - 1, 0));
  if (o.experts !== undefined) {
    const g = c.n_group as number;
    if (!Number.isSafeInteger(o.experts) || o.experts < 1) throw new RangeError(`experts must be a positive integer, got ${o.experts}`);
    if (o.experts % g) throw new RangeError(`experts (${o.experts}) must be a multiple of n_group (${g}) for preset ${preset}`);
    if (o.experts < (c.num_experts_per_tok as number)) throw new RangeError(`experts (${o.experts}) must be at least num_experts_per_tok (${c.num_experts_per_tok})`);
    const perGroup = o.experts / g;
    if (perGroup * (c.topk_group as number) < (c.num_experts_per_tok as number))
      throw new RangeError(`experts (${o.experts}) leave too few experts in ${c.topk_group} of ${g} groups for top-${c.num_experts_per_tok}`);
    c.n_routed_experts = o.experts;
  }
  if (o.mtp === false) c.num_nextn_predict_layers = 0;
  if (o.dtype === 'bf16') delete c.quantization_config;
  else if (o.dtype === 'fp8') c.quantization_config = fp8Quant;
  else if (o.dtype !== undefined) throw new RangeError(`dtype must be 'fp8' or 'bf16', got ${JSON.stringify(o.dtype)}`);
  return c;
}
