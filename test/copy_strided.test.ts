// Strided copies (Tensor.contiguous / copyFrom into views) on every device, against the element each
// output position must hold, computed here from the source's raw values and the view's index math.
// On CUDA the same-dtype copies whose rows are whole, aligned 16-byte vectors take a row kernel (the
// prefill's head slices, the k_pe broadcast, permutes that keep the last dim); the other cases the
// element kernel. Both are checked, with the untouched parts of a destination view.
import { describe, expect, it } from 'vitest';
import * as dsk from '../lib/index';
import { broadcastDim } from '../lib/model/kernels';
import { testDevices } from './helpers/devices';

type Dev = 'cpu' | 'cuda:0';

/** Raw values of a random bf16 tensor of `shape` (distinct bit patterns, no zeros to hide a missed copy). */
async function source(shape: number[], seed: number, device: Dev): Promise<{ t: dsk.Tensor; raw: Uint16Array }> {
  const t = dsk.randn(shape, { seed, dtype: 'bf16', device });
  const raw = (await t.toArray({ raw: true })) as Uint16Array;
  return { t, raw };
}

async function rawOf(t: dsk.Tensor): Promise<Uint16Array> {
  return (await t.toArray({ raw: true })) as Uint16Array;
}

describe.each(testDevices)('strided copies on %s', (device: Dev) => {
  it('a slice of the last dim made contiguous (the v half of kv_b: aligned rows)', async () => {
    const [T, H, W] = [37, 5, 256];
    const x = await source([T, H, W], 1, device);
    for (const [from, to] of [[128, 256], [0, 128], [3, 19]]) {
      const got = await rawOf(x.t.slice(2, from, to).contiguous());
      const n = to - from;
      const want = new Uint16Array(T * H * n);
      for (let i = 0; i < T * H; i++) for (let d = 0; d < n; d++) want[i * n + d] = x.raw[i * W + from + d];
      expect(got, `columns ${from}..${to}`).toEqual(want);
    }
  });

  it('into a slice of a wider destination, leaving the other columns alone', async () => {
    const [T, H] = [29, 6];
    const kv = await source([T, H, 256], 2, device);
    const dst = await source([T, H, 192], 3, device);
    dst.t.slice(2, 0, 128).copyFrom(kv.t.slice(2, 0, 128));
    const got = await rawOf(dst.t);
    const want = dst.raw.slice();
    for (let i = 0; i < T * H; i++) for (let d = 0; d < 128; d++) want[i * 192 + d] = kv.raw[i * 256 + d];
    expect(got).toEqual(want);
  });

  it('a [T, 64] row broadcast to every head of a [T, H, 64] slice (stride 0)', async () => {
    const [T, H] = [33, 7];
    const pe = await source([T, 64], 4, device);
    const dst = await source([T, H, 192], 5, device);
    dst.t.slice(2, 128).copyFrom(broadcastDim(pe.t, 1, H));
    const got = await rawOf(dst.t);
    const want = dst.raw.slice();
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < 64; d++) want[(t * H + h) * 192 + 128 + d] = pe.raw[t * 64 + d];
    expect(got).toEqual(want);
  });

  it('permutes that keep the last dim, and ones that do not', async () => {
    const [A, B, C] = [6, 37, 128];
    const x = await source([A, B, C], 6, device);
    const p = await rawOf(x.t.permute([1, 0, 2]).contiguous());
    const q = await rawOf(x.t.permute([2, 1, 0]).contiguous());
    const wantP = new Uint16Array(A * B * C), wantQ = new Uint16Array(A * B * C);
    for (let a = 0; a < A; a++)
      for (let b = 0; b < B; b++)
        for (let c = 0; c < C; c++) {
          wantP[(b * A + a) * C + c] = x.raw[(a * B + b) * C + c];
          wantQ[(c * B + b) * A + a] = x.raw[(a * B + b) * C + c];
        }
    expect(p, 'permute [1, 0, 2]').toEqual(wantP);
    expect(q, 'permute [2, 1, 0]').toEqual(wantQ);
  });

  it('a view starting off a 16-byte boundary, and a copy that converts dtype', async () => {
    const [T, W] = [19, 136];
    const x = await source([T, W], 7, device);
    const off = await rawOf(x.t.slice(1, 4, 132).contiguous()); // rows of 256 bytes starting 8 bytes in
    const want = new Uint16Array(T * 128);
    for (let t = 0; t < T; t++) for (let d = 0; d < 128; d++) want[t * 128 + d] = x.raw[t * W + 4 + d];
    expect(off).toEqual(want);
    const f = await x.t.slice(1, 8, 136).cast('f32').toArray();
    const bf = (await x.t.slice(1, 8, 136).toArray()) as Float32Array; // decoded through the same path
    expect(Array.from(f)).toEqual(Array.from(bf));
    expect(f.some((v) => v !== 0)).toBe(true);
  });
});
