// An independent float64 DeepSeek-V3 / V2 forward pass, written from the published architecture
// (DeepSeek-V3 technical report and the reference inference code's structure): RMSNorm, MLA in the
// plain (non-absorbed) form, decoupled RoPE on interleaved pairs with YaRN frequencies as in the
// Hugging Face config, SwiGLU MLPs, DeepSeekMoE routing (sigmoid + bias-steered group-limited top-k for
// V3, softmax greedy top-k for V2), MTP. Weights are read straight from the safetensors files and
// decoded from their bit patterns (FP8 weights times their 128x128 weight_scale_inv). Linear inputs are
// quantized to FP8 in 1x128 tiles as DeepSeek-V3's inference does (act_quant) when the weight is FP8;
// everything else is float64. Slow and simple on purpose: for tiny models in tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, type TensorInfo } from '../../lib/model/safetensors';
import { decode, encode, FP8 } from './formats';

type Cfg = Record<string, any>;

const FP8_TABLE = Float64Array.from({ length: 256 }, (_, c) => decode(FP8, c));

interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
  fp8: boolean;
}

export class ReferenceModel {
  readonly cfg: Cfg;
  private files = new Map<string, SafetensorsFile>();
  private where = new Map<string, string>();
  private cache = new Map<string, Mat>();

  /**
   * `quantize`: which bf16 linears the runner under test stores as FP8 blocks ('experts': the routed
   * experts, as it always does for bf16 checkpoints; 'all': every linear whose K is a multiple of 128,
   * as {quantize: 'fp8'} does). The reference then uses the block-quantized weights too.
   */
  constructor(readonly dir: string, readonly quantize: 'none' | 'experts' | 'all' = 'experts') {
    this.cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const idx = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    for (const [name, f] of Object.entries(idx.weight_map as Record<string, string>)) this.where.set(name, join(dir, f));
  }

  private info(name: string): [string, TensorInfo] {
    const file = this.where.get(name);
    if (!file) throw new Error(`reference: no tensor ${name}`);
    let f = this.files.get(file);
    if (!f) this.files.set(file, (f = SafetensorsFile.open(file)));
    return [file, f.get(name)];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Raw bytes of a tensor (synchronous read). */
  private bytes(name: string): { info: TensorInfo; buf: Buffer } {
    const [file, info] = this.info(name);
    const fd = require('node:fs').openSync(file, 'r');
    const buf = Buffer.alloc(info.nbytes);
    require('node:fs').readSync(fd, buf, 0, info.nbytes, info.offset);
    require('node:fs').closeSync(fd);
    return { info, buf };
  }

  /** A tensor decoded to float64 (FP8 weights dequantized with their block scales). */
  mat(name: string): Mat {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const { info, buf } = this.bytes(name);
    const n = info.shape.reduce((a, s) => a * s, 1);
    const data = new Float64Array(n);
    const rows = info.shape.length > 1 ? info.shape[0] : 1;
    const cols = n / rows;
    let fp8 = false;
    if (info.dtype === 'BF16') {
      const u16 = new Uint16Array(buf.buffer, buf.byteOffset, n);
      const u32 = new Uint32Array(n);
      for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
      const f32 = new Float32Array(u32.buffer);
      for (let i = 0; i < n; i++) data[i] = f32[i];
      if (this.quantizes(name, info.shape)) {
        fp8 = true;
        blockQuant(data, rows, cols);
      }
    } else if (info.dtype === 'F32') {
      const f32 = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + n * 4));
      for (let i = 0; i < n; i++) data[i] = f32[i];
    } else if (info.dtype === 'F8_E4M3') {
      fp8 = true;
      const s = this.mat(`${name}_scale_inv`);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) data[r * cols + c] = FP8_TABLE[buf[r * cols + c]] * s.data[Math.floor(r / 128) * s.cols + Math.floor(c / 128)];
    } else throw new Error(`reference: dtype ${info.dtype}`);
    const m = { rows, cols, data, fp8 };
    if (n < 1 << 22) this.cache.set(name, m);
    return m;
  }

  private quantizes(name: string, shape: number[]): boolean {
    if (shape.length !== 2 || shape[1] % 128 || !name.endsWith('_proj.weight')) return false;
    return this.quantize === 'all' || (this.quantize === 'experts' && name.includes('.mlp.experts.'));
  }

  // ---- math ----

  /** x [T, K] (row-major) times W^T for W [N, K]; x quantized to FP8 1x128 tiles first when W is FP8. */
  linear(x: Float64Array, T: number, name: string): Float64Array {
    const w = this.mat(name);
    const K = w.cols, N = w.rows;
    if (x.length !== T * K) throw new Error(`reference: ${name} expects ${K} inputs per row`);
    const xin = w.fp8 ? actQuant(x, T, K) : x;
    const y = new Float64Array(T * N);
    for (let t = 0; t < T; t++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        const xo = t * K, wo = n * K;
        for (let k = 0; k < K; k++) acc += xin[xo + k] * w.data[wo + k];
        y[t * N + n] = acc;
      }
    return y;
  }

  rmsNorm(x: Float64Array, T: number, name: string): Float64Array {
    const w = this.mat(name).data;
    const D = w.length, eps = this.cfg.rms_norm_eps ?? 1e-6;
    const y = new Float64Array(x.length);
    for (let t = 0; t < T; t++) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += x[t * D + d] ** 2;
      const r = 1 / Math.sqrt(ss / D + eps);
      for (let d = 0; d < D; d++) y[t * D + d] = x[t * D + d] * r * w[d];
    }
    return y;
  }

  /** Inverse frequencies (64-dim rope) with YaRN as the Hugging Face DeepSeek code computes them, and the cos/sin scale. */
  ropeFreqs(): { inv: Float64Array; mscale: number } {
    const dim = this.cfg.qk_rope_head_dim, base = this.cfg.rope_theta ?? 10000;
    const inv = new Float64Array(dim / 2);
    const rs = this.cfg.rope_scaling;
    for (let i = 0; i < dim / 2; i++) inv[i] = 1 / base ** ((2 * i) / dim);
    if (!rs) return { inv, mscale: 1 };
    const f = rs.factor, orig = rs.original_max_position_embeddings;
    const corrDim = (rot: number) => (dim * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(base));
    const low = Math.max(Math.floor(corrDim(rs.beta_fast ?? 32)), 0);
    let high = Math.min(Math.ceil(corrDim(rs.beta_slow ?? 1)), dim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < dim / 2; i++) {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      const extra = 1 / base ** ((2 * i) / dim), inter = extra / f;
      const mask = 1 - ramp; // 1: keep the original frequency
      inv[i] = inter * (1 - mask) + extra * mask;
    }
    const m = (s: number, ms: number) => (s <= 1 ? 1 : 0.1 * ms * Math.log(s) + 1);
    return { inv, mscale: m(f, rs.mscale ?? 1) / m(f, rs.mscale_all_dim ?? 0) };
  }

  /** Rotates pairs (x[2i], x[2i+1]) of the 64 dims at `off` in a row by position p. */
  rope(row: Float64Array, off: number, p: number): void {
    const { inv, mscale } = (this._rope ??= this.ropeFreqs());
    for (let i = 0; i < inv.length; i++) {
      const a = p * inv[i], c = Math.cos(a) * mscale, s = Math.sin(a) * mscale;
      const x0 = row[off + 2 * i], x1 = row[off + 2 * i + 1];
      row[off + 2 * i] = x0 * c - x1 * s;
      row[off + 2 * i + 1] = x0 * s + x1 * c;
    }
  }
  private _rope?: { inv: Float64Array; mscale: number };

  softmaxScale(): number {
    const c = this.cfg;
    let s = 1 / Math.sqrt(c.qk_nope_head_dim + c.qk_rope_head_dim);
    const rs = c.rope_scaling;
    if (rs && rs.mscale_all_dim) {
      const m = rs.factor <= 1 ? 1 : 0.1 * rs.mscale_all_dim * Math.log(rs.factor) + 1;
      s *= m * m;
    }
    return s;
  }

  /** MLA over one sequence of T tokens at positions 0..T-1, causal. x [T, hidden] (normed). */
  attention(x: Float64Array, T: number, layer: number): Float64Array {
    const c = this.cfg, p = `model.layers.${layer}.self_attn.`;
    const H = c.num_attention_heads, nope = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, r = c.kv_lora_rank;
    const dq = nope + dr;
    let q: Float64Array;
    if (c.q_lora_rank) q = this.linear(this.rmsNorm(this.linear(x, T, `${p}q_a_proj.weight`), T, `${p}q_a_layernorm.weight`), T, `${p}q_b_proj.weight`);
    else q = this.linear(x, T, `${p}q_proj.weight`);
    const kv = this.linear(x, T, `${p}kv_a_proj_with_mqa.weight`); // [T, r + dr]
    const latent = new Float64Array(T * r);
    const kpe = new Float64Array(T * dr);
    for (let t = 0; t < T; t++) {
      latent.set(kv.subarray(t * (r + dr), t * (r + dr) + r), t * r);
      kpe.set(kv.subarray(t * (r + dr) + r, (t + 1) * (r + dr)), t * dr);
      this.rope(kpe, t * dr, t);
      for (let h = 0; h < H; h++) this.rope(q, t * H * dq + h * dq + nope, t);
    }
    const kvb = this.linear(this.rmsNorm(latent, T, `${p}kv_a_layernorm.weight`), T, `${p}kv_b_proj.weight`); // [T, H*(nope+dv)]
    const scale = this.softmaxScale();
    const o = new Float64Array(T * H * dv);
    const s = new Float64Array(T);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          let acc = 0;
          const qo = i * H * dq + h * dq, ko = j * H * (nope + dv) + h * (nope + dv);
          for (let d = 0; d < nope; d++) acc += q[qo + d] * kvb[ko + d];
          for (let d = 0; d < dr; d++) acc += q[qo + nope + d] * kpe[j * dr + d];
          s[j] = acc * scale;
          mx = Math.max(mx, s[j]);
        }
        let den = 0;
        for (let j = 0; j <= i; j++) den += (s[j] = Math.exp(s[j] - mx));
        for (let j = 0; j <= i; j++) {
          const w = s[j] / den, vo = j * H * (nope + dv) + h * (nope + dv) + nope;
          for (let d = 0; d < dv; d++) o[i * H * dv + h * dv + d] += w * kvb[vo + d];
        }
      }
    return this.linear(o, T, `${p}o_proj.weight`);
  }

  mlp(x: Float64Array, T: number, prefix: string): Float64Array {
    const g = this.linear(x, T, `${prefix}gate_proj.weight`);
    const u = this.linear(x, T, `${prefix}up_proj.weight`);
    const h = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
    return this.linear(h, T, `${prefix}down_proj.weight`);
  }

  /** Expert choice of each token: DeepSeekMoE routing. */
  route(x: Float64Array, T: number, layer: number): { idx: number[][]; w: number[][]; margin: number[] } {
    const c = this.cfg, m = `model.layers.${layer}.mlp.`;
    const E = c.n_routed_experts, k = c.num_experts_per_tok;
    const logits = this.linear(x, T, `${m}gate.weight`);
    const v3 = c.model_type === 'deepseek_v3';
    const bias = v3 ? this.mat(`${m}gate.e_score_correction_bias`).data : new Float64Array(E);
    const method = c.topk_method ?? (v3 ? 'noaux_tc' : 'greedy');
    const nGroup = method === 'greedy' ? 1 : c.n_group, kGroup = method === 'greedy' ? 1 : c.topk_group;
    const idx: number[][] = [], w: number[][] = [], margin: number[] = [];
    for (let t = 0; t < T; t++) {
      const l = Array.from(logits.subarray(t * E, (t + 1) * E));
      let sc: number[];
      if ((c.scoring_func ?? (v3 ? 'sigmoid' : 'softmax')) === 'sigmoid') sc = l.map((v) => 1 / (1 + Math.exp(-v)));
      else {
        const mx = Math.max(...l);
        const e = l.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, b) => a + b, 0);
        sc = e.map((v) => v / z);
      }
      const choice = sc.map((v, i) => v + bias[i]);
      const per = E / nGroup;
      const gs = Array.from({ length: nGroup }, (_, g) => {
        const s = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
        return method === 'noaux_tc' ? s[0] + s[1] : s[0];
      });
      const byScore = (arr: number[]) => arr.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((p) => p[1]);
      const gOrder = byScore(gs);
      const groups = new Set(gOrder.slice(0, kGroup));
      const allowed = choice.map((v, i) => (groups.has(Math.floor(i / per)) ? v : -Infinity));
      const order = byScore(allowed);
      const top = order.slice(0, k);
      // How close the choice was, relative to the scores: a perturbation this small could change it.
      let mg = k < E && Number.isFinite(allowed[order[k]]) ? (allowed[order[k - 1]] - allowed[order[k]]) / Math.abs(allowed[order[k - 1]]) : Infinity;
      if (kGroup < nGroup) mg = Math.min(mg, (gs[gOrder[kGroup - 1]] - gs[gOrder[kGroup]]) / Math.abs(gs[gOrder[kGroup - 1]]));
      margin.push(mg);
      let ws = top.map((i) => sc[i]);
      if (c.norm_topk_prob && k > 1) {
        const z = ws.reduce((a, b) => a + b, 0) + 1e-20;
        ws = ws.map((v) => v / z);
      }
      const rsf = c.routed_scaling_factor ?? 1;
      if (v3 || !c.norm_topk_prob) ws = ws.map((v) => v * rsf);
      idx.push(top);
      w.push(ws);
    }
    return { idx, w, margin };
  }

  /** Routing margin per token of the last moe() call (Infinity for dense layers). */
  lastMargin: number[] = [];

  moe(x: Float64Array, T: number, layer: number): Float64Array {
    const c = this.cfg, m = `model.layers.${layer}.mlp.`, D = c.hidden_size;
    const { idx, w, margin } = this.route(x, T, layer);
    this.lastMargin = margin;
    const y = c.n_shared_experts ? this.mlp(x, T, `${m}shared_experts.`) : new Float64Array(T * D);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < idx[t].length; j++) {
        const out = this.mlp(x.subarray(t * D, (t + 1) * D), 1, `${m}experts.${idx[t][j]}.`);
        for (let d = 0; d < D; d++) y[t * D + d] += w[t][j] * out[d];
      }
    return y;
  }

  isMoe(layer: number): boolean {
    const c = this.cfg;
    return !!c.n_routed_experts && layer >= (c.first_k_dense_replace ?? 0) && layer % (c.moe_layer_freq ?? 1) === 0;
  }

  /** One decoder layer on the residual stream h [T, hidden]; returns the new residual stream. */
  layer(h: Float64Array, T: number, i: number): Float64Array {
    const p = `model.layers.${i}.`;
    const a = this.attention(this.rmsNorm(h, T, `${p}input_layernorm.weight`), T, i);
    const h2 = h.map((v, k) => v + a[k]);
    const n = this.rmsNorm(h2, T, `${p}post_attention_layernorm.weight`);
    this.lastMargin = new Array(T).fill(Infinity);
    const m = this.isMoe(i) ? this.moe(n, T, i) : this.mlp(n, T, `${p}mlp.`);
    return h2.map((v, k) => v + m[k]);
  }

  embed(ids: readonly number[], name = 'model.embed_tokens.weight'): Float64Array {
    const D = this.cfg.hidden_size;
    const { info, buf } = this.bytes(name);
    if (info.dtype !== 'BF16') throw new Error('reference: embedding must be BF16');
    const out = new Float64Array(ids.length * D);
    const u32 = new Uint32Array(1), f32 = new Float32Array(u32.buffer);
    ids.forEach((id, t) => {
      for (let d = 0; d < D; d++) {
        u32[0] = buf.readUInt16LE((id * D + d) * 2) << 16;
        out[t * D + d] = f32[0];
      }
    });
    return out;
  }

  /** The residual stream after each layer and the final normed hidden states, for ids at positions 0..T-1. */
  forward(ids: readonly number[]): { layers: Float64Array[]; hidden: Float64Array } {
    const T = ids.length;
    let h = this.embed(ids);
    const layers: Float64Array[] = [];
    for (let i = 0; i < this.cfg.num_hidden_layers; i++) {
      h = this.layer(h, T, i);
      layers.push(h);
    }
    return { layers, hidden: this.rmsNorm(h, T, 'model.norm.weight') };
  }

  /** Logits [T, vocab] of normed hidden states (float32 head rows, float64 sums). */
  logits(hidden: Float64Array, T: number, head = 'lm_head.weight'): Float64Array {
    const { info, buf } = this.bytes(head);
    const [V, D] = info.shape;
    const u16 = new Uint16Array(buf.buffer, buf.byteOffset, V * D);
    const out = new Float64Array(T * V);
    const u32 = new Uint32Array(D), row = new Float32Array(u32.buffer);
    for (let v = 0; v < V; v++) {
      for (let d = 0; d < D; d++) u32[d] = u16[v * D + d] << 16;
      for (let t = 0; t < T; t++) {
        let acc = 0;
        for (let d = 0; d < D; d++) acc += hidden[t * D + d] * row[d];
        out[t * V + v] = acc;
      }
    }
    return out;
  }

  /**
   * MTP module k over the main model's final hidden states h_i [T, hidden] and the next tokens t_{i+1}:
   * h' = eh_proj([enorm(emb(t_{i+1})); hnorm(h_i)]), one decoder block, shared_head.norm.
   */
  mtp(hidden: Float64Array, nextIds: readonly number[], k = 0): Float64Array {
    const c = this.cfg, T = nextIds.length, D = c.hidden_size, i = c.num_hidden_layers + k, p = `model.layers.${i}.`;
    const e = this.rmsNorm(this.embed(nextIds), T, `${p}enorm.weight`);
    const h = this.rmsNorm(hidden, T, `${p}hnorm.weight`);
    const cat = new Float64Array(T * 2 * D);
    for (let t = 0; t < T; t++) {
      cat.set(e.subarray(t * D, (t + 1) * D), t * 2 * D);
      cat.set(h.subarray(t * D, (t + 1) * D), t * 2 * D + D);
    }
    const x = this.linear(cat, T, `${p}eh_proj.weight`);
    return this.rmsNorm(this.layer(x, T, i), T, `${p}shared_head.norm.weight`);
  }
}

/** DeepSeek-V3's act_quant in float64: per 1x128 tile, s = max(amax, 1e-4) / 448, x ~ fp8(x / s) * s. */
export function actQuant(x: Float64Array, T: number, K: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let t = 0; t < T; t++)
    for (let b = 0; b < K; b += 128) {
      let amax = 0;
      for (let k = b; k < b + 128; k++) amax = Math.max(amax, Math.abs(x[t * K + k]));
      const s = Math.max(amax, 1e-4) / 448;
      for (let k = b; k < b + 128; k++) out[t * K + k] = FP8_TABLE[encode(FP8, x[t * K + k] / s)] * s;
    }
  return out;
}

/** Replaces w [rows, cols] by its FP8 128x128-block quantization: s = max(amax, 1e-4) / 448, w ~ fp8(w / s) * s. */
export function blockQuant(w: Float64Array, rows: number, cols: number): void {
  for (let r0 = 0; r0 < rows; r0 += 128)
    for (let c0 = 0; c0 < cols; c0 += 128) {
      let amax = 0;
      for (let r = r0; r < Math.min(r0 + 128, rows); r++) for (let c = c0; c < Math.min(c0 + 128, cols); c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
      const s = Math.max(amax, 1e-4) / 448;
      for (let r = r0; r < Math.min(r0 + 128, rows); r++) for (let c = c0; c < Math.min(c0 + 128, cols); c++) w[r * cols + c] = FP8_TABLE[encode(FP8, w[r * cols + c] / s)] * s;
    }
}

/** ||a - b|| / ||b||. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
