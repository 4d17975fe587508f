// FP8 block-scaled GEMMs: every device against float64 math written here (on sampled rows for the big
// shapes), CUDA against the CPU reference on every row, every CUDA kernel configuration forced in turn,
// grouped layouts with padding and empty groups, untouched rows, in-kernel index checks, bad inputs.
import { afterAll, describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { testDevices, hasCuda } from './helpers/devices';

type Dev = 'cpu' | 'cuda:0';
const TOL = 4e-3; // bf16 output rounding

interface Operands {
  a: dsk.Tensor;
  sa: dsk.Tensor;
  b: dsk.Tensor;
  sb: dsk.Tensor;
  // host copies (fp8 decoded exactly to f32)
  A: Float32Array;
  SA: Float32Array;
  B: Float32Array;
  SB: Float32Array;
}

/** Random fp8 operands and positive scales; aLead/bLead are the leading dims ([M] or [G, Mmax]; [] or [G]). */
async function operands(device: Dev, aLead: number[], bLead: number[], n: number, k: number, seed: number): Promise<Operands> {
  const kb = k / 128;
  const a = dsk.randn([...aLead, k], { seed, device }).cast('fp8e4m3');
  const sa = dsk.rand([...aLead, kb], { seed: seed + 1, device, low: 0.02, high: 0.2 });
  const b = dsk.randn([...bLead, n, k], { seed: seed + 2, device, std: 2 }).cast('fp8e4m3');
  const sb = dsk.rand([...bLead, Math.ceil(n / 128), kb], { seed: seed + 3, device, low: 0.001, high: 0.01 });
  const [A, SA, B, SB] = (await Promise.all([a.toArray(), sa.toArray(), b.toArray(), sb.toArray()])) as Float32Array[];
  return { a, sa, b, sb, A, SA, B, SB };
}

/** float64 reference of row `r` of A (flat row index) against group `g` of B: N values. */
function refRow(o: Operands, r: number, g: number, n: number, k: number): Float64Array {
  const kbs = k / 128, nbs = Math.ceil(n / 128);
  const out = new Float64Array(n);
  const aRow = r * k, bBase = g * n * k, sbBase = g * nbs * kbs;
  for (let j = 0; j < n; j++) {
    const bRow = bBase + j * k;
    let total = 0;
    for (let kb = 0; kb < kbs; kb++) {
      let part = 0;
      for (let i = kb * 128; i < kb * 128 + 128; i++) part += o.A[aRow + i] * o.B[bRow + i];
      total += part * o.SA[r * kbs + kb] * o.SB[sbBase + Math.floor(j / 128) * kbs + kb];
    }
    out[j] = total;
  }
  return out;
}

/** ||got - ref|| / ||ref|| over the listed rows (ref given row by row). */
function relErr(got: Float32Array, n: number, rows: number[], refs: Float64Array[]): number {
  let num = 0, den = 0;
  rows.forEach((r, i) => {
    for (let j = 0; j < n; j++) {
      const d = got[r * n + j] - refs[i][j];
      num += d * d;
      den += refs[i][j] * refs[i][j];
    }
  });
  return Math.sqrt(num / den);
}

/** ||got - want|| / ||want|| over every element, or over the rows (of width n) that `rowOk` accepts. */
function relErrAll(got: Float32Array, want: Float32Array, n = 1, rowOk: (r: number) => boolean = () => true): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    if (!rowOk(Math.floor(i / n))) continue;
    const d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return Math.sqrt(num / den);
}

/** Sampled rows: first, last, and a spread in between. */
function sampleRows(m: number, count = 12): number[] {
  const s = new Set<number>([0, m - 1]);
  for (let i = 1; i < count; i++) s.add(Math.floor((i * m) / count));
  return [...s].filter((r) => r >= 0 && r < m).sort((x, y) => x - y);
}

function allFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}

const normalShapes: [number, number, number][] = [
  [1, 2112, 256],
  [65, 7168, 128],
  [64, 160, 384],
  [65, 112, 512],
  [130, 1, 256],
  [4095, 160, 256],
  [200, 2112, 1024],
];

describe.each(testDevices)('fp8Gemm on %s', (device) => {
  it.each(normalShapes)('M=%i N=%i K=%i matches float64 math of the dequantized operands', async (m, n, k) => {
    const o = await operands(device, [m], [], n, k, 100 + m + n + k);
    const got = (await dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb).toArray()) as Float32Array;
    expect(got.length).toBe(m * n);
    expect(allFinite(got)).toBe(true);
    const rows = sampleRows(m);
    const err = relErr(got, n, rows, rows.map((r) => refRow(o, r, 0, n, k)));
    expect(err).toBeLessThan(TOL);
    expect(err).toBeGreaterThanOrEqual(0);
  });

  it('writes into options.out and returns it', async () => {
    const o = await operands(device, [33], [], 96, 128, 7);
    const out = dsk.full([33, 96], 3, { dtype: 'bf16', device });
    const r = dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb, { out });
    expect(r.storage).toBe(out.storage);
    const got = (await out.toArray()) as Float32Array;
    expect(relErr(got, 96, [0, 32], [refRow(o, 0, 0, 96, 128), refRow(o, 32, 0, 96, 128)])).toBeLessThan(TOL);
  });

  it('grouped contiguous: padding rows untouched, empty experts, every row checked', async () => {
    const G = 5, n = 160, k = 256;
    const sizes = [130, 0, 1, 257, 64]; // expert 1 is empty
    const idx: number[] = [];
    sizes.forEach((s, g) => {
      const padded = Math.ceil(s / 128) * 128;
      for (let i = 0; i < padded; i++) idx.push(i < s ? g : -1);
    });
    const M = idx.length;
    const o = await operands(device, [M], [G], n, k, 31);
    const mIndices = dsk.tensor(idx, { dtype: 'i32', device });
    const out = dsk.full([M, n], 7, { dtype: 'bf16', device });
    dsk.ops.fp8GroupedGemmContiguous(o.a, o.sa, o.b, o.sb, mIndices, { out });
    const got = (await out.toArray()) as Float32Array;
    const rows = idx.map((g, r) => (g >= 0 ? r : -1)).filter((r) => r >= 0);
    expect(relErr(got, n, rows, rows.map((r) => refRow(o, r, idx[r], n, k)))).toBeLessThan(TOL);
    for (let r = 0; r < M; r++) if (idx[r] < 0) for (let j = 0; j < n; j++) expect(got[r * n + j]).toBe(7);
  });

  it('grouped contiguous: any layout (unaligned, unsorted segments) is computed row by row', async () => {
    const G = 3, n = 112, k = 128, M = 200;
    const idx = Array.from({ length: M }, (_, r) => (r % 37 === 5 ? -1 : [2, 0, 1, 1, 2, 0][Math.floor(r / 35)]));
    const o = await operands(device, [M], [G], n, k, 41);
    const out = dsk.full([M, n], -5, { dtype: 'bf16', device });
    dsk.ops.fp8GroupedGemmContiguous(o.a, o.sa, o.b, o.sb, dsk.tensor(idx, { dtype: 'i32', device }), { out });
    const got = (await out.toArray()) as Float32Array;
    const rows = idx.map((g, r) => (g >= 0 ? r : -1)).filter((r) => r >= 0);
    expect(relErr(got, n, rows, rows.map((r) => refRow(o, r, idx[r], n, k)))).toBeLessThan(TOL);
    for (let r = 0; r < M; r++) if (idx[r] < 0) for (let j = 0; j < n; j++) expect(got[r * n + j]).toBe(-5);
  });

  it('grouped masked: maskedM = 0, partial and = Mmax; rows past maskedM untouched', async () => {
    const G = 4, mmax = 192, n = 2112, k = 256;
    const masked = [0, 192, 65, 1];
    const o = await operands(device, [G, mmax], [G], n, k, 51);
    const out = dsk.full([G, mmax, n], 9, { dtype: 'bf16', device });
    dsk.ops.fp8GroupedGemmMasked(o.a, o.sa, o.b, o.sb, dsk.tensor(masked, { dtype: 'i32', device }), { out });
    const got = (await out.toArray()) as Float32Array;
    const rows: number[] = [], groups: number[] = [];
    for (let g = 0; g < G; g++)
      for (const r of sampleRows(masked[g], 6)) if (masked[g] > 0) (rows.push(g * mmax + r), groups.push(g));
    expect(relErr(got, n, rows, rows.map((r, i) => refRow(o, r, groups[i], n, k)))).toBeLessThan(TOL);
    for (let g = 0; g < G; g++)
      for (let r = masked[g]; r < mmax; r++) {
        const base = (g * mmax + r) * n;
        for (let j = 0; j < n; j += 7) expect(got[base + j]).toBe(9);
        expect(got[base + n - 1]).toBe(9);
      }
    // every computed row is finite (none left at the poison value)
    for (let g = 0; g < G; g++) expect(allFinite(got.subarray(g * mmax * n, (g * mmax + masked[g]) * n))).toBe(true);
  });

  it('an out-of-range mIndices value makes the next read reject, naming the argument', async () => {
    const o = await operands(device, [256], [2], 64, 128, 61);
    const idx: number[] = Array.from({ length: 256 }, (_, r) => (r < 128 ? 0 : 1));
    idx[130] = 2;
    const out = dsk.ops.fp8GroupedGemmContiguous(o.a, o.sa, o.b, o.sb, dsk.tensor(idx, { dtype: 'i32', device }));
    await expect(out.toArray()).rejects.toThrow(/fp8GroupedGemmContiguous: mIndices contains 2, outside the valid range \[0, 2\)/);
    idx[130] = -3;
    const out2 = dsk.ops.fp8GroupedGemmContiguous(o.a, o.sa, o.b, o.sb, dsk.tensor(idx, { dtype: 'i32', device }));
    await expect(out2.toArray()).rejects.toThrow(/mIndices contains -3/);
    // the device keeps working
    idx[130] = 1;
    const ok = (await dsk.ops.fp8GroupedGemmContiguous(o.a, o.sa, o.b, o.sb, dsk.tensor(idx, { dtype: 'i32', device })).toArray()) as Float32Array;
    expect(allFinite(ok)).toBe(true);
  });

  it('an out-of-range maskedM value makes the next read reject, naming the argument', async () => {
    const o = await operands(device, [2, 64], [2], 64, 128, 71);
    const out = dsk.ops.fp8GroupedGemmMasked(o.a, o.sa, o.b, o.sb, dsk.tensor([65, 3], { dtype: 'i32', device }));
    await expect(out.toArray()).rejects.toThrow(/fp8GroupedGemmMasked: maskedM contains 65, outside the valid range \[0, 65\)/);
    const out2 = dsk.ops.fp8GroupedGemmMasked(o.a, o.sa, o.b, o.sb, dsk.tensor([-1, 3], { dtype: 'i32', device }));
    await expect(out2.toArray()).rejects.toThrow(/maskedM contains -1/);
  });

  it('rejects bad inputs before enqueueing, naming the argument', async () => {
    const o = await operands(device, [8], [], 64, 256, 81);
    const g = await operands(device, [8], [2], 64, 256, 82);
    const idx = dsk.tensor([0, 0, 0, 0, 1, 1, 1, 1], { dtype: 'i32', device });
    const bf = o.a.cast('bf16');
    expect(() => dsk.ops.fp8Gemm(bf, o.sa, o.b, o.sb)).toThrow(TypeError);
    expect(() => dsk.ops.fp8Gemm(bf, o.sa, o.b, o.sb)).toThrow(/fp8Gemm: a must have dtype fp8e4m3/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa.cast('bf16'), o.b, o.sb)).toThrow(/aScale must have dtype f32/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb.cast('f16'))).toThrow(/bScale must have dtype f32/);
    expect(() => dsk.ops.fp8Gemm(o.a.slice(1, 0, 192), o.sa, o.b, o.sb)).toThrow(/fp8Gemm: a.shape\[1\] \(K\) must be a multiple of 128, got 192/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa.slice(0, 0, 4), o.b, o.sb)).toThrow(RangeError);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa.slice(0, 0, 4), o.b, o.sb)).toThrow(/aScale must have shape \[8, 2\]/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb.slice(1, 0, 1))).toThrow(/bScale must have shape \[1, 2\]/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b.slice(1, 0, 128), o.sb)).toThrow(/b.shape\[1\] must be 256/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b.unsqueeze(0), o.sb)).toThrow(/b must have 2 dims/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b, 'x' as unknown as dsk.Tensor)).toThrow(/bScale must be a Tensor/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb, { out: dsk.empty([8, 63], { dtype: 'bf16', device }) })).toThrow(/options.out must have shape \[8, 64\]/);
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b, o.sb, { out: dsk.empty([8, 64], { dtype: 'f32', device }) })).toThrow(/options.out must have dtype bf16/);
    const dead = o.b.clone();
    dead.dispose();
    expect(() => dsk.ops.fp8Gemm(o.a, o.sa, dead, o.sb)).toThrow(/b has been disposed/);
    // grouped
    expect(() => dsk.ops.fp8GroupedGemmContiguous(g.a, g.sa, g.b, g.sb, idx.cast('f32'))).toThrow(/mIndices must have dtype i32/);
    expect(() => dsk.ops.fp8GroupedGemmContiguous(g.a, g.sa, g.b, g.sb, idx.slice(0, 0, 7))).toThrow(/mIndices.shape\[0\] must be 8/);
    expect(() => dsk.ops.fp8GroupedGemmContiguous(g.a, g.sa, o.b, o.sb, idx)).toThrow(/b must have 3 dims/);
    expect(() => dsk.ops.fp8GroupedGemmContiguous(g.a, g.sa, g.b, g.sb.slice(0, 0, 1), idx)).toThrow(/bScale must have shape \[2, 1, 2\]/);
    const a3 = g.a.view([2, 4, 256]), sa3 = g.sa.view([2, 4, 2]);
    const mm = dsk.tensor([4, 4], { dtype: 'i32', device });
    expect(() => dsk.ops.fp8GroupedGemmMasked(a3, sa3, g.b, g.sb, mm.slice(0, 0, 1))).toThrow(/maskedM.shape\[0\] must be 2/);
    expect(() => dsk.ops.fp8GroupedGemmMasked(g.a, g.sa, g.b, g.sb, mm)).toThrow(/a must have 3 dims/);
    expect(() => dsk.ops.fp8GroupedGemmMasked(a3.slice(0, 0, 1), sa3.slice(0, 0, 1), g.b, g.sb, mm.slice(0, 0, 1))).toThrow(/b.shape\[0\] must be 1/);
    expect(() => dsk.ops.fp8GroupedGemmMasked(a3, sa3, g.b, g.sb, mm.cast('i64'))).toThrow(/maskedM must have dtype i32/);
    if (hasCuda) {
      const other: Dev = device === 'cpu' ? 'cuda:0' : 'cpu';
      expect(() => dsk.ops.fp8Gemm(o.a, o.sa, o.b.to(other), o.sb)).toThrow(/b is on/);
    }
  });
});

// Every kernel configuration the CUDA dispatcher can pick, forced in turn, against the CPU reference on
// every row (and float64 on sampled rows).
describe.runIf(hasCuda)('fp8 GEMM kernel configurations on cuda:0', () => {
  const configs = hasCuda ? dsk.ops.fp8GemmTesting.configs() : [];
  const cc = hasCuda ? dsk.devices().find((d) => d.id === 'cuda:0')?.computeCapability : undefined;
  afterAll(() => dsk.ops.fp8GemmTesting.force(''));

  it('lists the portable kernel and, on sm_90, Hopper configurations', () => {
    expect(configs[0]).toBe('portable');
    if (cc === '9.0') expect(configs.length).toBeGreaterThan(1);
    // the BM 256 kernels (v4) and m128n160 (v13) are among them, so the per-configuration checks below cover them
    if (cc === '9.0') expect(configs).toEqual(expect.arrayContaining(['m256n128', 'm256n128.mcA', 'm256n128.mcB', 'm256n128s4', 'm256n128s4.mcA', 'm256n112', 'm256n112.mcA', 'm256n88', 'm256n88.mcA', 'm128n160', 'm128n160.mcA']));
  });

  // Scales by TMA where K/128 % 8 == 0 (K = 1024 here, and K = 512 with >= 1024 rows), by cp.async
  // otherwise (K = 128, 256, 512 here): every configuration runs both paths.
  const shapes: [number, number, number][] = [
    [1, 112, 128],
    [65, 2112, 1024],
    [200, 160, 512],
    [4095, 7168, 256],
    [257, 32768, 512],
    [1100, 160, 512],
  ];

  // Each configuration is checked on every shape and the failures are listed together, so one run on the
  // GPU machine shows every configuration that is wrong (a trap in one still fails the rest: it kills the
  // context, and the list then shows where it happened).
  it('normal shapes, every configuration, against the CPU reference and float64', async () => {
    const failures: string[] = [];
    for (const [m, n, k] of shapes) {
      const og = await operands('cuda:0', [m], [], n, k, 900 + m);
      const want = (await dsk.ops.fp8Gemm(og.a.to('cpu'), og.sa.to('cpu'), og.b.to('cpu'), og.sb.to('cpu')).toArray()) as Float32Array;
      const rows = sampleRows(m, 6);
      const refs = rows.map((r) => refRow(og, r, 0, n, k));
      expect(relErr(want, n, rows, refs)).toBeLessThan(TOL);
      for (const cfg of configs) {
        const what = `${cfg} ${m}x${n}x${k}`;
        try {
          dsk.ops.fp8GemmTesting.force(cfg);
          const choice = dsk.ops.fp8GemmTesting.choice(0, 'normal', m, n, k);
          if (cc === '9.0' && choice !== cfg) failures.push(`${what}: ran ${choice}`);
          const got = (await dsk.ops.fp8Gemm(og.a, og.sa, og.b, og.sb).toArray()) as Float32Array;
          const eCpu = relErrAll(got, want), e64 = relErr(got, n, rows, refs);
          if (!allFinite(got) || !(eCpu < TOL) || !(e64 < TOL)) failures.push(`${what}: finite ${allFinite(got)} vs cpu ${eCpu} vs float64 ${e64}`);
        } catch (e) {
          failures.push(`${what}: ${(e as Error).message}`);
        }
      }
      dsk.ops.fp8GemmTesting.force('');
    }
    expect(failures).toEqual([]);
  });

  it('grouped contiguous and masked, every configuration, untouched rows kept', async () => {
    // K = 1024 (K/128 % 8 == 0): scales by TMA; the unaligned case below (K = 256) takes the cp.async path
    const G = 4, n = 2112, k = 1024;
    const sizes = [300, 0, 128, 5];
    const idx: number[] = [];
    sizes.forEach((s, g) => {
      for (let i = 0; i < Math.ceil(s / 128) * 128; i++) idx.push(i < s ? g : -1);
    });
    const M = idx.length;
    const oc = await operands('cuda:0', [M], [G], n, k, 77);
    const mIdx = dsk.tensor(idx, { dtype: 'i32', device: 'cuda:0' });
    const wantC = (await dsk.ops
      .fp8GroupedGemmContiguous(oc.a.to('cpu'), oc.sa.to('cpu'), oc.b.to('cpu'), oc.sb.to('cpu'), mIdx.to('cpu'), { out: dsk.full([M, n], 7, { dtype: 'bf16' }) })
      .toArray()) as Float32Array;
    const mmax = 320, masked = [0, 320, 129, 64];
    const om = await operands('cuda:0', [G, mmax], [G], n, k, 78);
    const mm = dsk.tensor(masked, { dtype: 'i32', device: 'cuda:0' });
    const wantM = (await dsk.ops
      .fp8GroupedGemmMasked(om.a.to('cpu'), om.sa.to('cpu'), om.b.to('cpu'), om.sb.to('cpu'), mm.to('cpu'), { out: dsk.full([G, mmax, n], 9, { dtype: 'bf16' }) })
      .toArray()) as Float32Array;
    // unaligned segments exercise the per-expert passes of mixed tiles
    const idxU = Array.from({ length: 333 }, (_, r) => (r % 41 === 3 ? -1 : [1, 3, 0, 2][Math.floor(r / 90)]));
    const ou = await operands('cuda:0', [333], [G], 160, 256, 79);
    const mIdxU = dsk.tensor(idxU, { dtype: 'i32', device: 'cuda:0' });
    const wantU = (await dsk.ops
      .fp8GroupedGemmContiguous(ou.a.to('cpu'), ou.sa.to('cpu'), ou.b.to('cpu'), ou.sb.to('cpu'), mIdxU.to('cpu'), { out: dsk.full([333, 160], 5, { dtype: 'bf16' }) })
      .toArray()) as Float32Array;
    const failures: string[] = [];
    for (const cfg of configs) {
      try {
        dsk.ops.fp8GemmTesting.force(cfg);
        if (cc === '9.0') {
          const asRun = cfg.replace('.mcB', '.mcA'); // grouped layouts pair CTAs along N only
          const cc1 = dsk.ops.fp8GemmTesting.choice(0, 'contiguous', M, n, k, G), cc2 = dsk.ops.fp8GemmTesting.choice(0, 'masked', mmax, n, k, G);
          if (cc1 !== asRun || cc2 !== asRun) failures.push(`${cfg}: ran ${cc1} / ${cc2}`);
        }
        const outC = dsk.full([M, n], 7, { dtype: 'bf16', device: 'cuda:0' });
        dsk.ops.fp8GroupedGemmContiguous(oc.a, oc.sa, oc.b, oc.sb, mIdx, { out: outC });
        const gotC = (await outC.toArray()) as Float32Array;
        const eC = relErrAll(gotC, wantC, n, (r) => idx[r] >= 0);
        if (!(eC < TOL)) failures.push(`${cfg} contiguous: ${eC}`);
        let bad = 0;
        for (let r = 0; r < M; r++) if (idx[r] < 0) for (let j = 0; j < n; j += 3) if (gotC[r * n + j] !== 7) bad++;
        if (bad) failures.push(`${cfg} contiguous: ${bad} padding values overwritten`);
        const outM = dsk.full([G, mmax, n], 9, { dtype: 'bf16', device: 'cuda:0' });
        dsk.ops.fp8GroupedGemmMasked(om.a, om.sa, om.b, om.sb, mm, { out: outM });
        const gotM = (await outM.toArray()) as Float32Array;
        const eM = relErrAll(gotM, wantM, n, (r) => r % mmax < masked[Math.floor(r / mmax)]);
        if (!(eM < TOL) || !allFinite(gotM)) failures.push(`${cfg} masked: ${eM} finite ${allFinite(gotM)}`);
        bad = 0;
        for (let g = 0; g < G; g++) for (let r = masked[g]; r < mmax; r++) for (let j = 0; j < n; j += 5) if (gotM[(g * mmax + r) * n + j] !== 9) bad++;
        if (bad) failures.push(`${cfg} masked: ${bad} rows-past-maskedM values overwritten`);
        const outU = dsk.full([333, 160], 5, { dtype: 'bf16', device: 'cuda:0' });
        dsk.ops.fp8GroupedGemmContiguous(ou.a, ou.sa, ou.b, ou.sb, mIdxU, { out: outU });
        const gotU = (await outU.toArray()) as Float32Array;
        const eU = relErrAll(gotU, wantU, 160, (r) => idxU[r] >= 0);
        if (!(eU < TOL)) failures.push(`${cfg} unaligned contiguous: ${eU}`);
        const badU = Array.from(gotU).filter((v, i) => idxU[Math.floor(i / 160)] < 0 && v !== 5).length;
        if (badU) failures.push(`${cfg} unaligned contiguous: ${badU} padding values overwritten`);
      } catch (e) {
        failures.push(`${cfg}: ${(e as Error).message}`);
      }
    }
    dsk.ops.fp8GemmTesting.force('');
    expect(failures).toEqual([]);
    // the float64 reference on some rows of the CPU results (so the comparisons above rest on float64)
    const rowsC = [0, 299, 384, 512].filter((r) => idx[r] >= 0);
    expect(relErr(wantC, n, rowsC, rowsC.map((r) => refRow(oc, r, idx[r], n, k)))).toBeLessThan(TOL);
  });

  it('rejects an unknown configuration name', () => {
    expect(() => dsk.ops.fp8GemmTesting.force('m999n1')).toThrow(/unknown configuration/);
  });
});
