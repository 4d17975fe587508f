// Parts of the runner that need no kernels: config parsing of the real DeepSeek configs, the paged KV
// cache manager, the tokenizer and chat template, streaming detokenization, inspect, presets.
import { describe, expect, it } from 'vitest';
import { parseConfig, softmaxScale, yarnMscale, isMoeLayer } from '../lib/model/config';
import { PagedKvCache, KvCacheFullError } from '../lib/model/kv_cache';
import { ModelTokenizer } from '../lib/model/tokenizer';
import { inspectCheckpoint } from '../lib/model/inspect';
import { presetConfig } from '../lib/model/presets';
import { checkpointLayout } from '../lib/model/layout';
import { stepSeed, checkSampling } from '../lib/runner/sampling';
import { testModel } from './helpers/tiny_model';

// DeepSeek-V3's and V2-Lite's published config.json values (the fields the runner reads).
const V3 = {
  architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3', first_k_dense_replace: 3, hidden_act: 'silu', hidden_size: 7168,
  intermediate_size: 18432, kv_lora_rank: 512, max_position_embeddings: 163840, moe_intermediate_size: 2048, moe_layer_freq: 1,
  n_group: 8, n_routed_experts: 256, n_shared_experts: 1, norm_topk_prob: true, num_attention_heads: 128, num_experts_per_tok: 8,
  num_hidden_layers: 61, num_key_value_heads: 128, num_nextn_predict_layers: 1, q_lora_rank: 1536, qk_nope_head_dim: 128,
  qk_rope_head_dim: 64, quantization_config: { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128] },
  rms_norm_eps: 1e-6, rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 2.5, scoring_func: 'sigmoid', tie_word_embeddings: false, topk_group: 4, topk_method: 'noaux_tc',
  torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 129280, bos_token_id: 0, eos_token_id: 1,
};
const V2_LITE = {
  model_type: 'deepseek_v2', first_k_dense_replace: 1, hidden_act: 'silu', hidden_size: 2048, intermediate_size: 10944, kv_lora_rank: 512,
  max_position_embeddings: 163840, moe_intermediate_size: 1408, moe_layer_freq: 1, n_group: 1, n_routed_experts: 64, n_shared_experts: 2,
  norm_topk_prob: false, num_attention_heads: 16, num_experts_per_tok: 6, num_hidden_layers: 27, num_key_value_heads: 16, q_lora_rank: null,
  qk_nope_head_dim: 128, qk_rope_head_dim: 64, rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 1.0, scoring_func: 'softmax', topk_group: 1, topk_method: 'greedy', torch_dtype: 'bfloat16',
  v_head_dim: 128, vocab_size: 102400, bos_token_id: 100000, eos_token_id: 100001,
};

describe('config', () => {
  it('reads DeepSeek-V3', () => {
    const c = parseConfig(V3);
    expect(c).toMatchObject({ fp8: true, qLoraRank: 1536, scoring: 'sigmoid', groupScore: 'top2sum', nGroup: 8, topkGroup: 4, routedScale: 2.5, numNextnPredictLayers: 1, eosTokenId: 1 });
    expect([0, 1, 2, 3, 60].map((i) => isMoeLayer(c, i))).toEqual([false, false, false, true, true]);
    // 1/sqrt(192) * (0.1 ln 40 + 1)^2
    expect(softmaxScale(c)).toBeCloseTo((1 / Math.sqrt(192)) * (0.1 * Math.log(40) + 1) ** 2, 12);
  });
  it('reads DeepSeek-V2-Lite (bf16, no q_lora, softmax greedy, no rescaling of unnormalized weights)', () => {
    const c = parseConfig(V2_LITE);
    expect(c).toMatchObject({ fp8: false, qLoraRank: null, scoring: 'softmax', topkMethod: 'greedy', nGroup: 1, topkGroup: 1, routedScale: 1, normTopkProb: false });
    expect(yarnMscale(40, 0.707)).toBeCloseTo(0.1 * 0.707 * Math.log(40) + 1, 12);
    // V2 scales the weights only when they are not normalized.
    expect(parseConfig({ ...V2_LITE, norm_topk_prob: true, routed_scaling_factor: 16 }).routedScale).toBe(1);
    expect(parseConfig({ ...V2_LITE, routed_scaling_factor: 16 }).routedScale).toBe(16);
    expect(parseConfig({ ...V2_LITE, topk_method: 'group_limited_greedy', n_group: 8, topk_group: 3 }).groupScore).toBe('max');
  });
  it('refuses what the kernels cannot run, naming the field', () => {
    expect(() => parseConfig({ ...V3, model_type: 'mixtral' }, 'x/config.json')).toThrow(/x\/config\.json: model_type "mixtral" is not supported/);
    expect(() => parseConfig({ ...V3, num_key_value_heads: 8 })).toThrow(/num_key_value_heads \(8\) must equal num_attention_heads/);
    expect(() => parseConfig({ ...V3, qk_nope_head_dim: 64 })).toThrow(/qk_nope_head_dim 64/);
    expect(() => parseConfig({ ...V3, moe_intermediate_size: 1000 })).toThrow(/moe_intermediate_size 1000 must be a multiple of 128/);
    expect(() => parseConfig({ ...V3, topk_method: 'magic' })).toThrow(/topk_method "magic" is not supported/);
    expect(() => parseConfig({ ...V3, quantization_config: { quant_method: 'awq' } })).toThrow(/quant_method "awq" is not supported/);
    expect(() => parseConfig({ ...V3, num_experts_per_tok: 300 })).toThrow(/num_experts_per_tok \(300\) exceeds n_routed_experts/);
    expect(() => parseConfig({ ...V3, hidden_size: 'big' })).toThrow(/hidden_size must be an integer/);
  });
  it('lays out the real V3 checkpoint tensor names', () => {
    const names = new Set(checkpointLayout(parseConfig(V3)).map((s) => s.name));
    for (const n of [
      'model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight',
      'model.layers.0.mlp.down_proj.weight', 'model.layers.3.mlp.experts.255.up_proj.weight', 'model.layers.3.mlp.shared_experts.gate_proj.weight',
      'model.layers.60.mlp.gate.e_score_correction_bias', 'model.layers.61.eh_proj.weight', 'model.layers.61.enorm.weight',
      'model.layers.61.shared_head.head.weight', 'model.layers.61.self_attn.kv_a_proj_with_mqa.weight', 'model.layers.61.mlp.experts.0.gate_proj.weight',
    ]) expect(names.has(n), n).toBe(true);
    expect(names.has('model.layers.62.input_layernorm.weight')).toBe(false);
    // The main model has DeepSeek-V3's 671B parameters (the MTP module, layer 61, comes on top).
    const main = checkpointLayout(parseConfig(V3)).filter((s) => s.layer === undefined || s.layer < 61).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    expect(Math.abs(main / 1e9 - 671)).toBeLessThan(1);
  });
  it('builds presets with the requested layers and experts', () => {
    const c = parseConfig(presetConfig('v3-shape', { layers: 5, experts: 64 }));
    expect(c).toMatchObject({ numLayers: 5, firstKDenseReplace: 3, nRoutedExperts: 64, hiddenSize: 7168, numHeads: 128 });
    expect(parseConfig(presetConfig('v3-shape', { layers: 1 })).firstKDenseReplace).toBe(0);
    expect(() => presetConfig('tiny', { experts: 6 })).toThrow(/multiple of n_group/);
    expect(() => presetConfig('nope' as never)).toThrow(/preset must be one of/);
  });
});

describe('paged KV cache', () => {
  it('allocates 64-token blocks per sequence, frees them at once, and says clearly when full', () => {
    const c = new PagedKvCache({ layers: 2, numBlocks: 5, width: 576 });
    expect(c.caches[0].shape).toEqual([5, 64, 576]);
    expect(c.freeBlocks).toBe(4);
    c.reserve(1, 65); // 2 blocks
    c.reserve(2, 64); // 1 block
    expect(c.blocks(1).length).toBe(2);
    expect(new Set([...c.blocks(1), ...c.blocks(2)]).size).toBe(3);
    expect([...c.blocks(1), ...c.blocks(2)]).not.toContain(0); // block 0 is scratch
    expect(c.slot(1, 64)).toBe(c.blocks(1)[1] * 64);
    expect(c.slot(1, 3)).toBe(c.blocks(1)[0] * 64 + 3);
    expect(() => c.slot(2, 64)).toThrow(/position 64 of sequence 2 is beyond its 1 block/);
    expect(c.canReserve(3, 129)).toBe(false);
    expect(() => c.reserve(3, 129)).toThrow(KvCacheFullError);
    expect(() => c.reserve(3, 129)).toThrow(/KV cache full: needs 3 more block\(s\) of 64 tokens, 1 of 4 free/);
    expect(c.has(3)).toBe(false);
    c.reserve(1, 100); // already holds 128 tokens
    expect(c.freeBlocks).toBe(1);
    c.free(1);
    expect(c.freeBlocks).toBe(3);
    c.reserve(3, 129);
    expect(c.freeBlocks).toBe(0);
    c.free(2);
    c.free(3);
    c.free(42);
    expect(c.freeBlocks).toBe(4);
    expect(c.fitsEver(4 * 64)).toBe(true);
    expect(c.fitsEver(4 * 64 + 1)).toBe(false);
    c.dispose();
  });
});

describe('tokenizer', async () => {
  const dir = await testModel({ preset: 'tiny', seed: 5 });
  const tok = ModelTokenizer.load(dir);

  it('is DeepSeek-V3\'s: BOS first, known ids, exact round trip', () => {
    const ids = tok.encode('Hello, world!');
    expect(ids[0]).toBe(0);
    expect(tok.bosToken).toBe('<｜begin▁of▁sentence｜>');
    expect(tok.eosId).toBe(1);
    expect(tok.decode(ids.slice(1))).toBe('Hello, world!');
    const text = 'DeepSeek-V3 有 671B 参数, 37B activated — ok? 🙂';
    expect(tok.decode(tok.encode(text, { addBos: false }))).toBe(text);
  });

  it('renders the chat template with the generation prompt', () => {
    const s = tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]);
    expect(s).toBe('<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>');
    const ids = tok.encodeChat([{ role: 'user', content: 'Hi' }]);
    expect(ids[0]).toBe(0);
    expect(ids.filter((i) => i === 0).length).toBe(1);
    expect(tok.decode(ids)).toBe('<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>');
  });

  it('streams text whole characters at a time', () => {
    const text = 'añ你好🙂 end';
    const ids = tok.encode(text, { addBos: false });
    // Byte-level tokens of the emoji split it; the decoder holds it back until complete.
    const d = tok.streamDecoder();
    const pieces = ids.map((i) => d.push(i));
    expect(pieces.join('') + d.flush()).toBe(text);
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
  });
});

describe('inspect', () => {
  it('reports parameters, bytes and memory from the headers', async () => {
    const dir = await testModel({ preset: 'tiny', seed: 5 });
    const r = inspectCheckpoint(dir, { contextTokens: 1000 });
    const c = r.config;
    expect(r.params.embed).toBe(c.vocabSize * c.hiddenSize);
    expect(r.params.experts).toBe(8 * 3 * 128 * 256);
    expect(r.params.mtp_copy).toBe(2 * c.vocabSize * c.hiddenSize);
    expect(r.kvBytesPerToken).toBe(3 * 576 * 2);
    expect(r.memoryNeeded).toBe(r.deviceWeightBytes + 1000 * 3 * 1152);
    expect(r.bytesByDtype.F8_E4M3).toBeGreaterThan(0);
    expect(r.bytesByDtype.BF16 + r.bytesByDtype.F8_E4M3 + r.bytesByDtype.F32).toBe(r.fileBytes);
    expect(r.activeParams).toBeLessThan(r.totalParams);
  });
});

describe('sampling parameters', () => {
  it('checks ranges and derives per-position seeds', () => {
    expect(() => checkSampling({ temperature: -1 })).toThrow(/temperature must be a finite number >= 0/);
    expect(() => checkSampling({ topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => checkSampling({ topK: 1.5 })).toThrow(/topK must be an integer/);
    expect(checkSampling({ seed: 3 }).seed).toBe(3n);
    expect(stepSeed(3n, 10)).toBe(stepSeed(3n, 10));
    expect(stepSeed(3n, 10)).not.toBe(stepSeed(3n, 11));
    expect(stepSeed(3n, 10)).not.toBe(stepSeed(4n, 10));
  });
});
