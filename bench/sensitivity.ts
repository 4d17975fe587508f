// `npm run bench:sensitivity [-- --preset P] [--device D] [--trials N]`: how far a model's logits move
// when its GEMM outputs are nudged by rounding-sized amounts: the yardstick for any CPU/GPU comparison.
//
// Two correct implementations of a model differ by rounding: f32 sums added in another order flip about
// 1 in 10^4 bf16 outputs by one ulp; Hopper's FP8 tensor-core accumulation flips about 5%
// (bench/NOTES.md). This runs the model once as is, then again with every bf16 GEMM output (fp8Gemm,
// the grouped FP8 GEMM, the bf16 GEMM) multiplied by 1 +- 2^-8 (one bf16 ulp) on a random fraction of its
// elements, and prints the relative difference of each layer's output and of the logits. On one device,
// with nothing else changed, it measures how much the model itself amplifies rounding noise (FP8
// re-quantization of activations and MoE routing near ties are the amplifiers), i.e. the smallest
// CPU/GPU difference any pair of implementations that are not bit-identical can expect.
import { parseArgs } from 'node:util';
import * as dsk from '../lib/index';
import { K } from '../lib/model/kernels';
import { makeModel } from '../lib/model/make_model';
import { PRESETS, type Preset } from '../lib/model/presets';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type GemmName = 'fp8Gemm' | 'fp8GroupedGemmContiguous' | 'gemm';
const GEMMS: GemmName[] = ['fp8Gemm', 'fp8GroupedGemmContiguous', 'gemm'];

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] * b[i];
  }
  return Math.sqrt(d / n);
}

/** Deterministic uniform [0, 1) stream (a 32-bit LCG is plenty for picking elements). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Wraps the model's GEMMs so a fraction `frac` of each bf16 output moves by one ulp up or down. */
function nudgeGemms(frac: number, rnd: () => number): () => void {
  const saved = GEMMS.map((n) => [n, K[n]] as const);
  for (const [name, f] of saved) {
    (K as Record<GemmName, unknown>)[name] = (...args: unknown[]) => {
      const out = (f as (...a: unknown[]) => dsk.Tensor)(...args);
      if (out.dtype !== 'bf16' || frac === 0) return out;
      const m = new Float32Array(out.numel);
      for (let i = 0; i < m.length; i++) m[i] = rnd() < frac ? (rnd() < 0.5 ? 1 + 2 ** -8 : 1 - 2 ** -8) : 1;
      const mask = dsk.tensor(m, { shape: out.shape, dtype: 'f32', device: out.device });
      const wide = out.cast('f32');
      const moved = dsk.ops.mul(wide, mask);
      const r = moved.cast('bf16');
      [mask, wide, moved, out].forEach((t) => t.dispose());
      return r;
    };
  }
  return () => {
    for (const [name, f] of saved) (K as Record<GemmName, unknown>)[name] = f;
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny' },
      device: { type: 'string', default: 'cpu' },
      trials: { type: 'string', default: '3' },
      seed: { type: 'string', default: '5' },
    },
  });
  const preset = values.preset as Preset;
  if (!PRESETS.includes(preset)) throw new RangeError(`--preset must be one of ${PRESETS.join(', ')}`);
  const dir = join(tmpdir(), `dsk-sensitivity-${preset}-${values.seed}`);
  if (!existsSync(join(dir, 'config.json'))) await makeModel({ preset, seed: Number(values.seed), out: dir });
  const model = await dsk.loadModel(dir, { device: values.device as dsk.DeviceLike, maxSeqLen: 512, kvCacheTokens: 2048 });
  const ids = model.tokenizer.encode('Compare the devices: 0123456789 abcdefghij, and more text to make it longer.');
  const run = async (): Promise<{ layers: Float32Array[]; logits: Float32Array }> => {
    const hs: dsk.Tensor[] = [];
    const l = model.logits(ids, { onLayer: (_, h) => hs.push(h) });
    const logits = (await l.toArray()) as Float32Array;
    l.dispose();
    const layers: Float32Array[] = [];
    for (const h of hs) {
      layers.push((await h.cast('f32').toArray()) as Float32Array);
      h.dispose();
    }
    return { layers, logits };
  };
  const base = await run();
  console.log(`${preset} on ${values.device}, ${ids.length} tokens: relative difference to the unperturbed run`);
  console.log('fraction of GEMM outputs nudged by 1 bf16 ulp | per layer | logits');
  const rnd = lcg(1);
  for (const frac of [1e-4, 1e-3, 1e-2, 5e-2]) {
    for (let t = 0; t < Number(values.trials); t++) {
      const restore = nudgeGemms(frac, rnd);
      try {
        const r = await run();
        const per = r.layers.map((x, i) => relErr(x, base.layers[i]).toExponential(1)).join(' ');
        console.log(`${frac.toExponential(0).padEnd(6)} | ${per} | ${relErr(r.logits, base.logits).toExponential(2)}`);
      } finally {
        restore();
      }
    }
  }
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
