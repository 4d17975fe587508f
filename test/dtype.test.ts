// Conversions between dtypes: the CPU reference against formats decoded from their definitions, and
// every device against the CPU, bit for bit.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { BF16, F16, FP8, type Format, decode, encode } from './helpers/formats';
import { normal64, uniform64 } from './helpers/philox';
import { hasCuda, testDevices } from './helpers/devices';

const formats: Format[] = [BF16, F16, FP8];

function allCodes(f: Format): Uint16Array | Uint8Array {
  const n = 1 << f.bits;
  return f.bits === 16 ? Uint16Array.from({ length: n }, (_, i) => i) : Uint8Array.from({ length: n }, (_, i) => i);
}

/** f32 inputs that exercise rounding: random magnitudes, exact ties, boundaries, specials. */
function hardInputs(f: Format, seed: number): Float32Array {
  const out: number[] = [0, -0, Infinity, -Infinity, NaN, 448, 449, 464, 465, 480, 1e30, -1e30, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 2 ** -10, 2 ** -9, 2 ** -133, 1e-45];
  // Midpoints between neighbouring codes (ties) and just either side of them.
  const codes = allCodes(f);
  for (let c = 0; c + 1 < codes.length; c++) {
    const a = decode(f, c), b = decode(f, c + 1);
    if (Number.isFinite(a) && Number.isFinite(b) && Math.sign(a) === Math.sign(b) && a !== b) {
      const mid = Math.fround((a + b) / 2);
      if (c % 7 === 0) out.push(mid, Math.fround(mid * (1 + 2 ** -20)), Math.fround(mid * (1 - 2 ** -20)));
    }
  }
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < 20000; i++) out.push((rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 60 - 30) * (1 + rnd()));
  return Float32Array.from(out);
}

describe('dtype conversions: CPU reference against the format definitions', () => {
  for (const f of formats) {
    it(`${f.name} -> f32 decodes all ${1 << f.bits} codes`, async () => {
      const codes = allCodes(f);
      const t = dsk.fromBytes(codes, { dtype: f.name });
      const got = (await t.toArray()) as Float32Array;
      for (let c = 0; c < codes.length; c++) {
        const want = decode(f, c);
        if (Number.isNaN(want)) expect(Number.isNaN(got[c]), `code ${c}`).toBe(true);
        else expect(got[c], `code 0x${c.toString(16)}`).toBe(Math.fround(want));
      }
    });

    it(`f32 -> ${f.name} rounds to nearest even${f.name === 'fp8e4m3' ? ', saturating at ±448' : ''}`, async () => {
      const xs = hardInputs(f, 12345);
      const got = await dsk.tensor(xs, { dtype: 'f32' }).cast(f.name).toArray({ raw: true });
      for (let i = 0; i < xs.length; i++) {
        const want = encode(f, xs[i]);
        if (got[i] !== want) throw new Error(`${f.name}(${xs[i]}) = 0x${got[i].toString(16)}, expected 0x${want.toString(16)}`);
      }
    });
  }

  it('integers: f32 -> i32 truncates and saturates, NaN -> 0; i64 <-> i32 exact within range', async () => {
    const xs = Float32Array.from([1.9, -1.9, 3e9, -3e9, NaN, 0.5, -0.5, 16777216]);
    expect(Array.from((await dsk.tensor(xs).cast('i32').toArray()) as Int32Array)).toEqual([1, -1, 2147483647, -2147483648, 0, 0, 0, 16777216]);
    const big = dsk.tensor(BigInt64Array.from([1n, -5n, 1n << 40n, -(1n << 40n)]));
    expect(Array.from((await big.cast('i32').toArray()) as Int32Array)).toEqual([1, -5, 2147483647, -2147483648]);
    expect(Array.from((await dsk.tensor([300, -4, 7], { dtype: 'i32' }).cast('u8').toArray()) as Uint8Array)).toEqual([255, 0, 7]);
  });
});

describe.each(testDevices)('dtype conversions on %s', (device) => {
  it('every dtype round-trips through the device bit-exactly', async () => {
    const bytes = new Uint8Array(8 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    for (const dt of dsk.DTYPES) {
      const host = dsk.fromBytes(bytes, { dtype: dt });
      const back = host.to(device).to('cpu');
      expect(new Uint8Array((await back.toArray({ raw: true })).buffer), dt).toEqual(bytes);
    }
  });

  it('casts between every pair of dtypes give the CPU bits', async () => {
    const xs = Float32Array.from(hardInputs(FP8, 99).subarray(0, 4096));
    for (const from of dsk.DTYPES) {
      const src = dsk.tensor(xs).cast(from);
      for (const to of dsk.DTYPES) {
        const cpu = await src.cast(to).toArray({ raw: true });
        const dev = await src.to(device).cast(to).toArray({ raw: true });
        expect(dev, `${from} -> ${to}`).toEqual(cpu);
      }
    }
  });
});

describe.each(testDevices)('random numbers on %s', (device) => {
  it('randn matches float64 Box-Muller on the same Philox stream', async () => {
    const seed = 0x1234_5678_9abcn;
    const got = (await dsk.randn([4096], { seed, device }).toArray()) as Float32Array;
    for (let i = 0; i < got.length; i++) {
      const want = normal64(seed, i);
      expect(Math.abs(got[i] - want), `element ${i}`).toBeLessThan(2e-6 * Math.max(1, Math.abs(want)));
    }
    const u = (await dsk.rand([1024], { seed, device }).toArray()) as Float32Array;
    for (let i = 0; i < u.length; i++) expect(u[i]).toBe(uniform64(seed, i));
  });

  it('randn is standard normal and randint stays in range', async () => {
    const z = (await dsk.randn([1 << 18], { seed: 3, device }).toArray()) as Float32Array;
    let s = 0, s2 = 0;
    for (const v of z) { s += v; s2 += v * v; }
    const mean = s / z.length, std = Math.sqrt(s2 / z.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(std - 1)).toBeLessThan(0.01);
    const r = (await dsk.randint([10000], -3, 5, { seed: 4, device }).toArray()) as Int32Array;
    const seen = new Set(r);
    expect([...seen].sort((a, b) => a - b)).toEqual([-3, -2, -1, 0, 1, 2, 3, 4]);
  });
});

describe.runIf(hasCuda)('random numbers: same seed, same bits on every device', () => {
  it.each(['f32', 'bf16', 'f16', 'fp8e4m3'] as const)('randn/rand %s', async (dtype) => {
    for (const seed of [0, 1, 2n ** 63n + 5n]) {
      const a = await dsk.randn([3, 1000], { seed, dtype }).toArray({ raw: true });
      const b = await dsk.randn([3, 1000], { seed, dtype, device: 'cuda:0' }).toArray({ raw: true });
      expect(b).toEqual(a);
      const c = await dsk.rand([777], { seed, dtype, low: -2, high: 5 }).toArray({ raw: true });
      const d = await dsk.rand([777], { seed, dtype, low: -2, high: 5, device: 'cuda:0' }).toArray({ raw: true });
      expect(d).toEqual(c);
    }
  });
});
