// Philox4x32-10 in JS (BigInt arithmetic), to check the native random numbers against float64 math.
const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9n, W1 = 0xbb67ae85n, MASK = 0xffffffffn;

export function philox(counter: bigint, seed: bigint): number[] {
  let c0 = counter & MASK, c1 = (counter >> 32n) & MASK, c2 = 0n, c3 = 0n;
  let k0 = seed & MASK, k1 = (seed >> 32n) & MASK;
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * c0, p1 = M1 * c2;
    const n0 = (p1 >> 32n) ^ c1 ^ k0, n2 = (p0 >> 32n) ^ c3 ^ k1;
    c0 = n0; c1 = p1 & MASK; c2 = n2; c3 = p0 & MASK;
    k0 = (k0 + W0) & MASK; k1 = (k1 + W1) & MASK;
  }
  return [Number(c0), Number(c1), Number(c2), Number(c3)];
}

/** Float64 value of element i of randn(seed) (mean 0, std 1) and of rand(seed) in [0, 1). */
export function normal64(seed: bigint, i: number): number {
  const [w0, w1] = philox(BigInt(i), seed);
  const u1 = ((w0 >>> 8) + 1) / 2 ** 24;
  const u2 = (w1 >>> 8) / 2 ** 24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
export function uniform64(seed: bigint, i: number): number {
  return (philox(BigInt(i), seed)[0] >>> 8) / 2 ** 24;
}
