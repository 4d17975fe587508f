// `npm run bench:ops [-- --only NAME,...]`: every op at DeepSeek-V3 shapes (decode and prefill), its kernel
// time and its ratio to the floor (bytes over the measured copy bandwidth, or flops over the measured matrix
// rate). --only keeps the cases whose op name contains one of the given strings.
import { parseArgs } from 'node:util';
import * as dsk from '../lib/index';
import { broadcastDim } from '../lib/model/kernels';
import { Report, benchDevice, floorUs, measureCeilings, timeKernel, type Work } from './harness';

interface Case extends Work {
  op: string;
  shape: string;
  run: () => unknown;
}

type Dev = dsk.Device;
const H = 7168; // DeepSeek-V3 hidden size
const E = 256; // routed experts
const K = 8; // experts per token

function cases(device: Dev, small: boolean): Case[] {
  const out: Case[] = [];
  const T = small ? 256 : 4096; // prefill tokens
  const V = small ? 4096 : 129280;
  const seed = 1;

  // embedding: T rows of the bf16 vocabulary table.
  {
    const table = dsk.randn([V, H], { seed, device, dtype: 'bf16' });
    const ids = dsk.randint([T], 0, V, { seed, device });
    out.push({ op: 'embedding', shape: `T=${T} V=${V} D=${H} bf16`, run: () => dsk.ops.embedding(ids, table), flops: 0, bytes: 2 * T * H * 2 + T * 4 });
  }

  // MoE routing of T tokens and of a decode batch of 64.
  for (const t of [64, T]) {
    const logits = dsk.randn([t, E], { seed, device });
    const bias = dsk.randn([E], { seed: 2, device, std: 0.01 });
    const opts = { bias, scoring: 'sigmoid' as const, topk: K, nGroup: 8, topkGroup: 4, normTopk: true, routedScale: 2.5 };
    out.push({ op: 'moeGate', shape: `T=${t} E=${E} V3`, run: () => dsk.ops.moeGate(logits, opts), flops: 0, bytes: t * E * 4 + t * K * 8 });
  }
  {
    const logits = dsk.randn([T, E], { seed, device });
    const { indices, weights } = dsk.ops.moeGate(logits, { scoring: 'sigmoid', topk: K, nGroup: 8, topkGroup: 4, normTopk: true, routedScale: 2.5 });
    out.push({ op: 'moeCount', shape: `T=${T} k=${K} E=${E}`, run: () => dsk.ops.moeCount(indices, E), flops: 0, bytes: T * K * 4 + E * 4 });
    const x = dsk.randn([T, H], { seed, device }).cast('fp8e4m3');
    const xs = dsk.rand([T, H / 128], { seed, device, low: 0.5, high: 1 });
    out.push({
      op: 'moePermute', shape: `T=${T} k=${K} E=${E} D=${H} fp8+scales`,
      run: () => dsk.ops.moePermute(x, indices, { numExperts: E, scale: xs }),
      flops: 0, bytes: T * (H + H / 32) + T * K * (H + H / 32) + T * K * 8,
    });
    const p = dsk.ops.moePermute(x, indices, { numExperts: E });
    const y = dsk.randn([p.x.shape[0], H], { seed, device, dtype: 'bf16' });
    out.push({
      op: 'moeUnpermute', shape: `T=${T} k=${K} N=${H} bf16`,
      run: () => dsk.ops.moeUnpermute(y, p.map, weights),
      flops: 2 * T * K * H, bytes: T * K * H * 2 + T * H * 2 + T * K * 8,
    });
  }

  // Attention (MLA): rope on q and k_pe, prefill attention, the cache write, decode over the paged cache.
  {
    const Hq = 128, yarn = { factor: 40, originalMaxPosition: 4096, mscaleAllDim: 1 };
    const positions = dsk.randint([T], 0, 163840, { seed, device });
    const q = dsk.randn([T, Hq, 192], { seed, device, dtype: 'bf16' });
    out.push({ op: 'rope', shape: `q T=${T} H=${Hq} D=192 (last 64) bf16`, run: () => dsk.ops.rope(q, positions, { yarn }), flops: 0, bytes: 2 * T * Hq * 192 * 2 + T * 4 });
    const Tp = small ? 256 : 4096, lens = small ? [256] : [4096];
    const Hp = small ? 16 : Hq;
    const qp = dsk.randn([Tp, Hp, 192], { seed, device, dtype: 'bf16' });
    const kp = dsk.randn([Tp, Hp, 192], { seed: 2, device, dtype: 'bf16' });
    const vp = dsk.randn([Tp, Hp, 128], { seed: 3, device, dtype: 'bf16' });
    const cuSeqlens = dsk.tensor([0, ...lens], { dtype: 'i32', device });
    const pairs = lens.reduce((a, l) => a + (l * (l + 1)) / 2, 0);
    out.push({
      op: 'attentionPrefill', shape: `T=${Tp} H=${Hp} 192/128 causal bf16`,
      run: () => dsk.ops.attentionPrefill(qp, kp, vp, { cuSeqlens, maxSeqlen: Math.max(...lens), scale: dsk.ops.yarnSoftmaxScale(192, yarn) }),
      flops: 2 * pairs * Hp * (192 + 128), bytes: Tp * Hp * (2 * 192 + 2 * 128) * 2, rate: 'bf16',
    });
    // The non-absorbed prefill's strided copies: v out of kv_b's [T, H, 128 + 128] output, k_pe broadcast to every head.
    const kvb = dsk.randn([Tp, Hp, 256], { seed: 4, device, dtype: 'bf16' });
    const kpe = dsk.randn([Tp, 64], { seed: 5, device, dtype: 'bf16' });
    const kdst = dsk.empty([Tp, Hp, 192], { dtype: 'bf16', device });
    out.push({ op: 'copy (v slice)', shape: `[${Tp}, ${Hp}, 128] of [${Tp}, ${Hp}, 256] bf16`, run: () => kvb.slice(2, 128).contiguous(), flops: 0, bytes: 2 * Tp * Hp * 128 * 2 });
    out.push({
      op: 'copy (k_pe broadcast)', shape: `[${Tp}, 64] -> [${Tp}, ${Hp}, 64] of 192 bf16`,
      run: () => void kdst.slice(2, 128).copyFrom(broadcastDim(kpe, 1, Hp)),
      flops: 0, bytes: Tp * 64 * 2 + Tp * Hp * 64 * 2,
    });
    const blocks = small ? 64 : 4096;
    const cache = dsk.randn([blocks, 64, 576], { seed, device, dtype: 'bf16' });
    const latent = dsk.randn([64, 576], { seed, device, dtype: 'bf16' });
    const slots = dsk.arange(64, { device });
    out.push({ op: 'mlaCacheWrite', shape: 'T=64 bf16', run: () => dsk.ops.mlaCacheWrite(cache, latent, slots), flops: 0, bytes: 2 * 64 * 576 * 2 + 64 * 4 });
    for (const [B, ctx] of (small ? [[1, 1024]] : [[1, 32768], [64, 4096], [128, 2048]]) as [number, number][]) {
      const mb = ctx / 64;
      const table = dsk.arange(B * mb, { device }).view([B, mb]);
      const seqLens = dsk.full([B], ctx, { dtype: 'i32', device });
      const qd = dsk.randn([B, 1, Hq, 576], { seed, device, dtype: 'bf16' });
      out.push({
        op: 'mlaDecode', shape: `B=${B} ctx=${ctx} H=${Hq} Sq=1 bf16`,
        run: () => dsk.ops.mlaDecode(qd, cache, table, seqLens, { scale: dsk.ops.yarnSoftmaxScale(192, yarn) }),
        flops: 2 * B * Hq * ctx * (576 + 512), bytes: B * ctx * 576 * 2 + B * Hq * (576 + 512) * 2, rate: 'bf16',
      });
    }
  }

  // FP8 quantization and the fused SwiGLU + quantize of the MoE intermediate (T x 2048 per expert row).
  {
    const x = dsk.randn([T, H], { seed, device, dtype: 'bf16' });
    out.push({ op: 'quantizeActivation', shape: `[${T}, ${H}] bf16`, run: () => dsk.ops.quantizeActivation(x), flops: 0, bytes: T * H * 2 + T * H + (T * H) / 32 });
    const w = dsk.randn([2048, H], { seed, device, dtype: 'bf16' });
    out.push({ op: 'quantizeWeight', shape: `[2048, ${H}] bf16`, run: () => dsk.ops.quantizeWeight(w), flops: 0, bytes: 2048 * H * 3 });
    const g = dsk.randn([T * 2, 2048], { seed, device, dtype: 'bf16' }), u = dsk.randn([T * 2, 2048], { seed: 2, device, dtype: 'bf16' });
    out.push({ op: 'swigluQuant', shape: `[${T * 2}, 2048] bf16`, run: () => dsk.ops.swigluQuant(g, u), flops: 0, bytes: T * 2 * 2048 * (2 + 2 + 1) + (T * 2 * 2048) / 32 });
    const { q, scale } = dsk.ops.quantizeActivation(x);
    out.push({ op: 'dequantize', shape: `[${T}, ${H}] -> bf16`, run: () => dsk.ops.dequantize(q, scale, { layout: 'activation' }), flops: 0, bytes: T * H * 3 + (T * H) / 32 });
  }
  // Norms and the residual add of every layer.
  {
    const x = dsk.randn([T, H], { seed, device, dtype: 'bf16' }), r = dsk.randn([T, H], { seed: 2, device, dtype: 'bf16' });
    const w = dsk.rand([H], { seed, device, dtype: 'bf16', low: 0.5, high: 1.5 });
    out.push({ op: 'rmsNorm+residual', shape: `[${T}, ${H}] bf16`, run: () => dsk.ops.rmsNorm(x, w, { residual: r }), flops: 0, bytes: T * H * 2 * 4 });
    out.push({ op: 'add', shape: `[${T}, ${H}] bf16`, run: () => dsk.ops.add(x, r), flops: 0, bytes: T * H * 2 * 3 });
  }
  // lm_head and router gate in bf16; the logits' reductions and sampling.
  for (const m of [1, 64]) {
    const a = dsk.randn([m, H], { seed, device, dtype: 'bf16' });
    const b = dsk.randn([V, H], { seed: 2, device, dtype: 'bf16' });
    out.push({ op: 'gemm (lm_head)', shape: `M=${m} N=${V} K=${H} bf16`, run: () => dsk.ops.gemm(a, b, { outDtype: 'f32' }), flops: 2 * m * V * H, bytes: V * H * 2 + m * H * 2 + m * V * 4, rate: 'bf16' });
  }
  {
    const a = dsk.randn([T, H], { seed, device, dtype: 'bf16' }), b = dsk.randn([E, H], { seed: 2, device, dtype: 'bf16' });
    out.push({ op: 'gemm (router)', shape: `M=${T} N=${E} K=${H} bf16`, run: () => dsk.ops.gemm(a, b, { outDtype: 'f32' }), flops: 2 * T * E * H, bytes: T * H * 2 + E * H * 2 + T * E * 4, rate: 'bf16' });
    const big = small ? 1024 : 8192;
    const c = dsk.randn([big, big], { seed, device, dtype: 'bf16' }), d = dsk.randn([big, big], { seed: 2, device, dtype: 'bf16' });
    out.push({ op: 'gemm (square)', shape: `${big}^3 bf16`, run: () => dsk.ops.gemm(c, d), flops: 2 * big ** 3, bytes: 3 * big * big * 2, rate: 'bf16' });
  }
  for (const B of [1, 64]) {
    const logits = dsk.randn([B, V], { seed, device, std: 3 });
    out.push({ op: 'softmax', shape: `[${B}, ${V}] f32`, run: () => dsk.ops.softmax(logits), flops: 0, bytes: B * V * 8 });
    out.push({ op: 'argmax', shape: `[${B}, ${V}] f32`, run: () => dsk.ops.argmax(logits), flops: 0, bytes: B * V * 4 });
    out.push({ op: 'topk', shape: `[${B}, ${V}] k=50`, run: () => dsk.ops.topk(logits, 50), flops: 0, bytes: B * V * 4 });
    out.push({ op: 'sample', shape: `[${B}, ${V}] T=0.7 topK=50 topP=0.9`, run: () => dsk.ops.sample(logits, { temperature: 0.7, topK: 50, topP: 0.9, seed: 1 }), flops: 0, bytes: B * V * 4 });
    out.push({ op: 'sample (full vocab)', shape: `[${B}, ${V}] T=1 topP=0.95`, run: () => dsk.ops.sample(logits, { temperature: 1, topP: 0.95, seed: 1 }), flops: 0, bytes: B * V * 4 });
  }
  // The FP8 GEMMs (bench:gemm runs every TARGETS.md shape against DeepGEMM and cuBLASLt).
  {
    const fp8 = (shape: number[], s: number) => dsk.randn(shape, { seed: s, device }).cast('fp8e4m3');
    const sc = (shape: number[], s: number) => dsk.rand(shape, { seed: s, device, low: 0.5, high: 1 });
    const [m, n, k] = small ? [256, 512, 512] : [4096, 7168, 2048];
    const a = fp8([m, k], 1), sa = sc([m, k / 128], 2), b = fp8([n, k], 3), sb = sc([n / 128, k / 128], 4);
    out.push({ op: 'fp8Gemm', shape: `${m}x${n}x${k}`, run: () => dsk.ops.fp8Gemm(a, sa, b, sb), flops: 2 * m * n * k, bytes: m * k + n * k + m * n * 2, rate: 'fp8' });
    const [G, rows, gn, gk] = small ? [2, 128, 256, 512] : [8, 512, 4096, 7168];
    const ga = fp8([G * rows, gk], 5), gsa = sc([G * rows, gk / 128], 6), gb = fp8([G, gn, gk], 7), gsb = sc([G, gn / 128, gk / 128], 8);
    const mIdx = dsk.tensor(Int32Array.from({ length: G * rows }, (_, i) => Math.floor(i / rows)), { device });
    out.push({ op: 'fp8GroupedGemmContiguous', shape: `${G}x${rows} rows, N=${gn} K=${gk}`, run: () => dsk.ops.fp8GroupedGemmContiguous(ga, gsa, gb, gsb, mIdx), flops: 2 * G * rows * gn * gk, bytes: G * rows * gk + G * gn * gk + G * rows * gn * 2, rate: 'fp8' });
    const ma = fp8([G, rows, gk], 9), msa = sc([G, rows, gk / 128], 10);
    const masked = dsk.tensor(Int32Array.from({ length: G }, (_, g) => rows - 37 * g), { device });
    const validRows = Array.from({ length: G }, (_, g) => rows - 37 * g).reduce((x, y) => x + y, 0);
    out.push({ op: 'fp8GroupedGemmMasked', shape: `${G}x${rows} max rows, N=${gn} K=${gk}`, run: () => dsk.ops.fp8GroupedGemmMasked(ma, msa, gb, gsb, masked), flops: 2 * validRows * gn * gk, bytes: validRows * gk + G * gn * gk + validRows * gn * 2, rate: 'fp8' });
  }
  return out;
}

async function main(): Promise<void> {
  const device = benchDevice();
  const ceilings = await measureCeilings(device);
  console.log(`${device}: copy ${ceilings.copyGBps.toFixed(0)} GB/s` +
    (ceilings.bf16Tflops ? `, bf16 matmul ${ceilings.bf16Tflops.toFixed(0)} TFLOP/s` : '') +
    (ceilings.fp8Tflops ? `, fp8 matmul ${ceilings.fp8Tflops.toFixed(0)} TFLOP/s` : '') + '\n');
  const report = new Report('ops', { ceilings });
  const { values } = parseArgs({ options: { only: { type: 'string' } } });
  const only = values.only ? values.only.split(',').map((w) => w.trim()).filter(Boolean) : null;
  for (const c of cases(device, device === 'cpu')) {
    if (only && !only.some((o) => c.op.includes(o))) continue;
    const t = await timeKernel(device, c.run as () => void);
    const floor = floorUs(c, ceilings);
    report.add({
      op: c.op, shape: c.shape, us: t.usPerCall,
      'GB/s': c.bytes / (t.usPerCall * 1e3),
      'TFLOP/s': c.flops ? c.flops / (t.usPerCall * 1e6) : null,
      floor_us: floor, 'x floor': t.usPerCall / floor,
    });
  }
  report.write();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
