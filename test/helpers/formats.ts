// Float formats decoded from their definitions, independently of native/core/dtype.h, and
// round-to-nearest-even by search over every representable value: the ground truth for conversions.

export interface Format {
  name: 'bf16' | 'f16' | 'fp8e4m3';
  bits: number;
  expBits: number;
  mantBits: number;
  bias: number;
  /** fp8e4m3 has no infinities: only S.1111.111 is NaN and the top exponent holds normal values. */
  ieeeSpecials: boolean;
}

export const BF16: Format = { name: 'bf16', bits: 16, expBits: 8, mantBits: 7, bias: 127, ieeeSpecials: true };
export const F16: Format = { name: 'f16', bits: 16, expBits: 5, mantBits: 10, bias: 15, ieeeSpecials: true };
export const FP8: Format = { name: 'fp8e4m3', bits: 8, expBits: 4, mantBits: 3, bias: 7, ieeeSpecials: false };

export function decode(f: Format, code: number): number {
  const sign = (code >> (f.bits - 1)) & 1 ? -1 : 1;
  const e = (code >> f.mantBits) & ((1 << f.expBits) - 1);
  const m = code & ((1 << f.mantBits) - 1);
  const emax = (1 << f.expBits) - 1;
  if (f.ieeeSpecials && e === emax) return m ? NaN : sign * Infinity;
  if (!f.ieeeSpecials && e === emax && m === (1 << f.mantBits) - 1) return NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - f.mantBits);
  return sign * (1 + m / 2 ** f.mantBits) * 2 ** (e - f.bias);
}

/** Sorted non-negative finite values with their codes. */
function table(f: Format): { v: number; code: number }[] {
  const out: { v: number; code: number }[] = [];
  for (let c = 0; c < 1 << (f.bits - 1); c++) {
    const v = decode(f, c);
    if (Number.isFinite(v)) out.push({ v, code: c });
  }
  return out.sort((a, b) => a.v - b.v);
}
const tables = new Map<string, { v: number; code: number }[]>();

/** The code of the value nearest to x (ties to even code), with the format's overflow rule. */
export function encode(f: Format, x: number): number {
  if (Number.isNaN(x)) return f.bits === 16 ? 0x7fff : 0x7f;
  let t = tables.get(f.name);
  if (!t) tables.set(f.name, (t = table(f)));
  const signBit = x < 0 || Object.is(x, -0) ? 1 << (f.bits - 1) : 0;
  const a = Math.abs(x);
  const top = t[t.length - 1];
  if (!f.ieeeSpecials) {
    if (a >= top.v) return signBit | top.code; // saturate (inf too)
  } else {
    const ulpTop = 2 ** (Math.floor(Math.log2(top.v)) - f.mantBits);
    if (a >= top.v + ulpTop / 2 || a === Infinity) return signBit | (((1 << f.expBits) - 1) << f.mantBits); // to inf
  }
  let lo = 0, hi = t.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (t[mid].v <= a) lo = mid;
    else hi = mid;
  }
  if (a <= t[lo].v) return signBit | t[lo].code;
  if (a >= t[hi].v) return signBit | t[hi].code;
  const dl = a - t[lo].v, dh = t[hi].v - a;
  const pick = dl < dh ? t[lo] : dh < dl ? t[hi] : (t[lo].code & 1) === 0 ? t[lo] : t[hi];
  return signBit | pick.code;
}
