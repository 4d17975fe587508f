// The DeepSeek-V3 / V2 forward pass over dsk.ops.
//
// Per layer: RMSNorm; MLA (q through q_a/q_a_layernorm/q_b or a single q_proj; kv_a projection to the
// 576-wide latent+rope vector; kv_a_layernorm on the latent; decoupled RoPE with YaRN on the last 64 dims
// of q heads and of the kv vector); the latent+rope vector goes to the paged cache. Prefill attends in
// the non-absorbed form (kv_b expands the latent to per-head k_nope and v; attentionPrefill), decode in
// the absorbed form (q_nope is mapped into the latent space by W_UK, mlaDecode attends over the cache,
// W_UV maps the attended latent back to values). Then the dense SwiGLU MLP (first first_k_dense_replace
// layers) or DeepSeekMoE (router + e_score_correction_bias, routed experts through moePermute ->
// grouped FP8 GEMMs -> moeUnpermute, plus the shared experts). Final norm, lm_head.
//
// Hidden states are bf16 [T, hidden]; residual adds are fused into the norms.
import { Tensor } from '../tensor';
import { empty, full } from '../factory';
import { type ModelConfig, latentDim, qkHeadDim, softmaxScale } from './config';
import { Arena, K, assign, broadcastDim } from './kernels';
import type { AttentionWeights, LayerWeights, Linear, MlpWeights, ModelWeights, MoeWeights, MtpWeights } from './weights';

/** The tokens of one forward call and where their keys go. Token order: sequence by sequence. */
export interface ForwardBatch {
  mode: 'prefill' | 'decode';
  /** Token ids, i32 [T]. */
  ids: Tensor;
  /** Absolute positions, i32 [T]. */
  positions: Tensor;
  /** Cache slot of each token (block * 64 + offset), i32 [T]. */
  slots: Tensor;
  /** Prefill: i32 [B + 1] cumulative sequence lengths; every sequence starts at position 0. */
  cuSeqlens?: Tensor;
  maxSeqlen?: number;
  /** Decode: B sequences of sq tokens each (T = B * sq), i32 [B, maxBlocks] block table, i32 [B] lengths including these tokens. */
  batch?: number;
  sq?: number;
  blockTable?: Tensor;
  seqLens?: Tensor;
}

export interface ForwardOptions {
  /** Called with each layer's output hidden state (residual stream after the layer), for verification. */
  onLayer?: (layer: number, hidden: Tensor) => void;
}

function linear(l: Linear, x: Tensor): Tensor {
  if (!l.fp8) return K.gemm(x, l.w, 'bf16');
  const { q, scale } = K.quantizeActivation(x);
  try {
    return K.fp8Gemm(q, scale, l.w, l.scale);
  } finally {
    q.dispose();
    scale.dispose();
  }
}

/** A DeepSeek model: config + weights; stateless apart from the caches passed in. */
export class DeepSeekModel {
  readonly scale: number;
  constructor(readonly config: ModelConfig, readonly weights: ModelWeights) {
    this.scale = softmaxScale(config);
  }

  private rope(x: Tensor, positions: Tensor): Tensor {
    const c = this.config;
    return K.rope(x, positions, c.ropeTheta, c.yarn);
  }

  private mlp(w: MlpWeights, x: Tensor): Tensor {
    const g = linear(w.gate, x);
    const u = linear(w.up, x);
    try {
      if (w.down.fp8) {
        const { q, scale } = K.swigluQuant(g, u);
        try {
          return K.fp8Gemm(q, scale, w.down.w, w.down.scale);
        } finally {
          q.dispose();
          scale.dispose();
        }
      }
      const h = K.swiglu(g, u);
      try {
        return K.gemm(h, w.down.w, 'bf16');
      } finally {
        h.dispose();
      }
    } finally {
      g.dispose();
      u.dispose();
    }
  }

  private moe(w: MoeWeights, x: Tensor): Tensor {
    const c = this.config;
    const a = new Arena();
    try {
      const logits = a.keep(K.gemm(x, w.router, 'f32'));
      const { indices, weights } = a.keepAll(
        K.moeGate(logits, {
          bias: w.bias,
          scoring: c.scoring,
          topk: c.numExpertsPerTok,
          nGroup: c.nGroup,
          topkGroup: c.topkGroup,
          groupScore: c.groupScore,
          normTopk: c.normTopkProb,
          routedScale: c.routedScale,
        }),
      );
      const xq = a.keepAll(K.quantizeActivation(x));
      const p = a.keepAll(K.moePermute(xq.q, indices, c.nRoutedExperts, xq.scale));
      if (!p.scale) throw new Error('dsk.ops.moePermute must permute the activation scales passed as {scale}');
      const g = a.keep(K.fp8GroupedGemmContiguous(p.x, p.scale, w.gate.w, w.gate.scale, p.mIndices));
      const u = a.keep(K.fp8GroupedGemmContiguous(p.x, p.scale, w.up.w, w.up.scale, p.mIndices));
      const h = a.keepAll(K.swigluQuant(g, u, p.mIndices)); // padding rows skipped: the down GEMM skips them too
      const y = a.keep(K.fp8GroupedGemmContiguous(h.q, h.scale, w.down.w, w.down.scale, p.mIndices));
      let out = K.moeUnpermute(y, p.map, weights);
      if (out.dtype !== 'bf16') {
        const o = out.cast('bf16');
        out.dispose();
        out = o;
      }
      if (!w.shared) return out;
      const s = a.keep(this.mlp(w.shared, x));
      a.keep(out);
      return K.add(out, s);
    } finally {
      a.dispose();
    }
  }

  private attention(w: AttentionWeights, x: Tensor, b: ForwardBatch, cache: Tensor): Tensor {
    const c = this.config;
    const T = x.shape[0], nh = c.numHeads, dqk = qkHeadDim(c), nope = c.qkNopeHeadDim, r = c.kvLoraRank, dr = c.qkRopeHeadDim;
    const a = new Arena();
    try {
      // Queries: [T, nh, 192], rope on each head's last 64 dims.
      let qFlat: Tensor;
      if (w.qA) {
        const qa = a.keep(linear(w.qA, x));
        const qn = a.keep(K.rmsNorm(qa, w.qANorm!, c.rmsNormEps));
        qFlat = a.keep(linear(w.qB!, qn));
      } else {
        qFlat = a.keep(linear(w.q!, x));
      }
      const q = a.keep(this.rope(a.keep(qFlat.view([T, nh, dqk])), b.positions));

      // Keys/values: the 576-wide vector; rope rotates its last 64 dims (k_pe), the norm applies to the latent.
      const kv = a.keep(this.rope(a.keep(linear(w.kvA, x)), b.positions));
      const latent = a.keep(K.rmsNorm(a.keep(a.keep(kv.slice(1, 0, r)).contiguous()), w.kvANorm, c.rmsNormEps));
      const entry = a.keep(empty([T, latentDim(c)], { dtype: 'bf16', device: x.device }));
      assign(a.keep(entry.slice(1, 0, r)), latent);
      assign(a.keep(entry.slice(1, r)), a.keep(kv.slice(1, r)));
      K.mlaCacheWrite(cache, entry, b.slots);

      let o: Tensor; // [T, nh, v]
      if (b.mode === 'prefill') {
        const kvb = a.keep(a.keep(linear(w.kvB, latent)).view([T, nh, nope + c.vHeadDim]));
        const k = a.keep(empty([T, nh, dqk], { dtype: 'bf16', device: x.device }));
        assign(a.keep(k.slice(2, 0, nope)), a.keep(kvb.slice(2, 0, nope)));
        assign(a.keep(k.slice(2, nope)), a.keep(broadcastDim(a.keep(entry.slice(1, r)), 1, nh)));
        const v = a.keep(a.keep(kvb.slice(2, nope)).contiguous());
        o = a.keep(K.attentionPrefill(q, k, v, b.cuSeqlens!, b.maxSeqlen!, this.scale));
      } else {
        // Absorbed: q_lat[h] = q_nope[h] W_UK[h]  ([nh, T, 128] x [nh, 512, 128]^T -> [nh, T, 512]).
        const maskedM = a.keep(full([nh], T, { dtype: 'i32', device: x.device }));
        const qNope = a.keep(a.keep(a.keep(q.slice(2, 0, nope)).permute([1, 0, 2])).contiguous());
        const qq = a.keepAll(K.quantizeActivation(a.keep(qNope.view([nh * T, nope]))));
        const qLat = a.keep(
          K.fp8GroupedGemmMasked(a.keep(qq.q.view([nh, T, nope])), a.keep(qq.scale.view([nh, T, nope / 128])), w.wUKt.w, w.wUKt.scale, maskedM),
        );
        const qFull = a.keep(empty([T, nh, r + dr], { dtype: 'bf16', device: x.device }));
        assign(a.keep(qFull.slice(2, 0, r)), a.keep(qLat.permute([1, 0, 2])));
        assign(a.keep(qFull.slice(2, r)), a.keep(q.slice(2, nope)));
        const B = b.batch!, sq = b.sq!;
        const att = a.keepAll(K.mlaDecode(a.keep(qFull.view([B, sq, nh, r + dr])), cache, b.blockTable!, b.seqLens!, this.scale));
        // Values: out_v[h] = att[h] W_UV[h]^T  ([nh, T, 512] x [nh, 128, 512]^T -> [nh, T, 128]).
        const attH = a.keep(a.keep(a.keep(att.out.view([T, nh, r])).permute([1, 0, 2])).contiguous());
        const aq = a.keepAll(K.quantizeActivation(a.keep(attH.view([nh * T, r]))));
        const ov = a.keep(
          K.fp8GroupedGemmMasked(a.keep(aq.q.view([nh, T, r])), a.keep(aq.scale.view([nh, T, r / 128])), w.wUV.w, w.wUV.scale, maskedM),
        );
        o = a.keep(a.keep(ov.permute([1, 0, 2])).contiguous());
      }
      return linear(w.o, a.keep(o.view([T, nh * c.vHeadDim])));
    } finally {
      a.dispose();
    }
  }

  /** One decoder layer. `residual` null for the first layer (x is then the embedding). */
  layer(w: LayerWeights, x: Tensor, residual: Tensor | null, b: ForwardBatch, cache: Tensor): { delta: Tensor; residual: Tensor } {
    const eps = this.config.rmsNormEps;
    let h: Tensor, res: Tensor;
    if (residual === null) {
      h = K.rmsNorm(x, w.inputNorm, eps);
      res = x;
    } else {
      ({ out: h, residual: res } = K.addRmsNorm(x, residual, w.inputNorm, eps));
    }
    const att = this.attention(w.attn, h, b, cache);
    h.dispose();
    const n2 = K.addRmsNorm(att, res, w.postAttnNorm, eps);
    att.dispose();
    if (residual !== null) res.dispose();
    const delta = w.moe ? this.moe(w.moe, n2.out) : this.mlp(w.mlp!, n2.out);
    n2.out.dispose();
    return { delta, residual: n2.residual };
  }

  /**
   * Runs the main model over a batch; writes each layer's keys to `caches[layer]`. Returns the final
   * normalized hidden states [T, hidden] (bf16).
   */
  forward(b: ForwardBatch, caches: readonly Tensor[], o: ForwardOptions = {}): Tensor {
    const w = this.weights;
    const x = K.embedding(b.ids, w.embed);
    let delta = x;
    let residual: Tensor | null = null;
    for (let i = 0; i < w.layers.length; i++) {
      const r = this.layer(w.layers[i], delta, residual, b, caches[i]);
      if (residual === null) x.dispose();
      else {
        delta.dispose();
        residual.dispose(); // the layer folded it into r.residual
      }
      delta = r.delta;
      residual = r.residual;
      if (o.onLayer) o.onLayer(i, K.add(residual, delta));
    }
    const out = K.addRmsNorm(delta, residual!, w.norm, this.config.rmsNormEps);
    delta.dispose();
    residual!.dispose();
    out.residual.dispose();
    return out.out;
  }

  /** f32 logits [R, vocab] of the rows `rows` (i32 [R]) of `hidden`, or of every row. */
  logits(hidden: Tensor, rows?: Tensor, head: Tensor = this.weights.lmHead): Tensor {
    if (!rows) return K.gemm(hidden, head, 'f32');
    const sel = K.embedding(rows, hidden);
    try {
      return K.gemm(sel, head, 'f32');
    } finally {
      sel.dispose();
    }
  }

  /**
   * MTP module k: from the main model's final hidden states h_i [T, hidden] and the ids of the tokens
   * that follow them (t_{i+1}), at the same positions as h_i. Returns its normalized output [T, hidden];
   * `logits()` of it predicts t_{i+2}.
   */
  mtpForward(k: number, hidden: Tensor, b: ForwardBatch, cache: Tensor): Tensor {
    const m: MtpWeights = this.weights.mtp[k];
    if (!m) throw new RangeError(`this model has no MTP module ${k}`);
    const c = this.config, eps = c.rmsNormEps, H = c.hiddenSize, T = hidden.shape[0];
    const a = new Arena();
    try {
      const e = a.keep(K.rmsNorm(a.keep(K.embedding(b.ids, this.weights.embed)), m.enorm, eps));
      const h = a.keep(K.rmsNorm(hidden, m.hnorm, eps));
      const cat = a.keep(empty([T, 2 * H], { dtype: 'bf16', device: hidden.device }));
      assign(a.keep(cat.slice(1, 0, H)), e);
      assign(a.keep(cat.slice(1, H)), h);
      const x = a.keep(linear(m.ehProj, cat));
      const r = this.layer(m.layer, x, null, b, cache);
      a.keep(r.delta);
      a.keep(r.residual);
      const out = K.addRmsNorm(r.delta, r.residual, m.headNorm, eps);
      out.residual.dispose();
      return out.out;
    } finally {
      a.dispose();
    }
  }
}
