// The safetensors reader: round trips with the writer, and refuses truncated, corrupt and inconsistent
// files with messages naming the file and the tensor. Also the checkpoint directory checks on top of it.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, readTensorBytes, readTensorChunks, writeSafetensors, buildHeader } from '../lib/model/safetensors';
import { Checkpoint } from '../lib/model/checkpoint';
import { makeModel } from '../lib/model/make_model';

const dir = mkdtempSync(join(tmpdir(), 'dsk-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A raw file from a header object and a data buffer, bypassing the writer's own consistency. */
function rawFile(name: string, header: Record<string, unknown>, data: Uint8Array, opts: { lenOverride?: bigint } = {}): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lenOverride ?? BigInt(json.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, json, data]));
  return p;
}

const bytes = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

describe('safetensors reader', () => {
  it('round-trips tensors written piece by piece, and streams them back in chunks', async () => {
    const a = bytes(4 * 6, 1), b = bytes(2 * 10, 2), c = bytes(300, 3);
    const p = join(dir, 'ok.safetensors');
    const n = await writeSafetensors(p, [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: () => a },
      { name: 'b.weight', dtype: 'BF16', shape: [10], data: () => [b.subarray(0, 7), b.subarray(7)] },
      { name: 'c', dtype: 'F8_E4M3', shape: [3, 100], data: async function* () { yield c.subarray(0, 100); yield c.subarray(100); } },
    ], { format: 'pt', note: 'x' });
    const f = SafetensorsFile.open(p);
    expect(f.fileSize).toBe(n);
    expect(f.metadata).toEqual({ format: 'pt', note: 'x' });
    expect([...f.tensors.keys()]).toEqual(['a', 'b.weight', 'c']);
    expect(f.get('c').shape).toEqual([3, 100]);
    expect(f.dataOffset % 8).toBe(0);
    expect(Array.from(await readTensorBytes(p, f.get('a')))).toEqual(Array.from(a));
    expect(Array.from(await readTensorBytes(p, f.get('b.weight')))).toEqual(Array.from(b));
    const chunks: number[][] = [];
    for await (const ch of readTensorChunks(p, f.get('c'), { chunkBytes: 128 })) chunks.push(Array.from(ch.bytes));
    expect(chunks.map((x) => x.length)).toEqual([128, 128, 44]);
    expect(chunks.flat()).toEqual(Array.from(c));
  });

  it('refuses a truncated file, naming the file and the tensor', async () => {
    const p = join(dir, 'trunc.safetensors');
    await writeSafetensors(p, [
      { name: 'first', dtype: 'F32', shape: [4], data: () => bytes(16) },
      { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'BF16', shape: [8, 8], data: () => bytes(128) },
    ]);
    truncateSync(p, readFileSync(p).length - 10);
    expect(() => SafetensorsFile.open(p)).toThrow(/trunc\.safetensors: tensor "model\.layers\.0\.mlp\.down_proj\.weight": data_offsets \[16, 144\] run past the end of the data .*truncated/);
    truncateSync(p, 5);
    expect(() => SafetensorsFile.open(p)).toThrow(/trunc\.safetensors: is 5 bytes long/);
  });

  it('refuses a header length past the end and a non-JSON header', () => {
    const p = rawFile('hlen.safetensors', {}, new Uint8Array(0), { lenOverride: 1000n });
    expect(() => SafetensorsFile.open(p)).toThrow(/hlen\.safetensors: header length 1000 runs past the end/);
    const q = rawFile('huge.safetensors', {}, new Uint8Array(0), { lenOverride: 1n << 40n });
    expect(() => SafetensorsFile.open(q)).toThrow(/huge\.safetensors: header length \d+ exceeds/);
    const r = join(dir, 'garbage.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    writeFileSync(r, Buffer.concat([len, Buffer.from('{"a"')]));
    expect(() => SafetensorsFile.open(r)).toThrow(/garbage\.safetensors: header is not valid JSON/);
  });

  it('refuses overlapping tensors, naming both', () => {
    const p = rawFile('overlap.safetensors', {
      x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      y: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
    }, bytes(24));
    expect(() => SafetensorsFile.open(p)).toThrow(/overlap\.safetensors: tensor "y": bytes \[8, 24\) overlap tensor "x"/);
  });

  it('refuses dtype/shape inconsistent with the bytes, unknown dtypes, holes and trailing bytes', () => {
    const bad = rawFile('size.safetensors', { w: { dtype: 'BF16', shape: [3, 4], data_offsets: [0, 16] } }, bytes(16));
    expect(() => SafetensorsFile.open(bad)).toThrow(/size\.safetensors: tensor "w": BF16 \[3, 4\] needs 24 bytes but data_offsets \[0, 16\] hold 16/);
    const dt = rawFile('dtype.safetensors', { w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, bytes(16));
    expect(() => SafetensorsFile.open(dt)).toThrow(/dtype\.safetensors: tensor "w": unknown dtype "F128"/);
    const hole = rawFile('hole.safetensors', { w: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } }, bytes(8));
    expect(() => SafetensorsFile.open(hole)).toThrow(/hole\.safetensors: tensor "w": a gap of 4 unindexed bytes/);
    const tail = rawFile('tail.safetensors', { w: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, bytes(9));
    expect(() => SafetensorsFile.open(tail)).toThrow(/tail\.safetensors: 5 bytes after the last tensor/);
    const neg = rawFile('shape.safetensors', { w: { dtype: 'U8', shape: [-1], data_offsets: [0, 4] } }, bytes(4));
    expect(() => SafetensorsFile.open(neg)).toThrow(/shape\.safetensors: tensor "w": shape \[-1\]/);
  });

  it('reports a file that shrank after its header was read as truncated, naming the tensor', async () => {
    const p = join(dir, 'shrink.safetensors');
    await writeSafetensors(p, [{ name: 'big', dtype: 'U8', shape: [1000], data: () => bytes(1000) }]);
    const f = SafetensorsFile.open(p);
    truncateSync(p, f.dataOffset + 500);
    await expect(readTensorBytes(p, f.get('big'))).rejects.toThrow(/shrink\.safetensors: tensor "big": unexpected end of file after 500 of 1000 bytes/);
  });

  it('pads the header to 8 bytes with spaces', () => {
    const h = buildHeader([{ name: 'abc', dtype: 'U8', shape: [3] }]);
    expect(h.length % 8).toBe(0);
    expect(JSON.parse(h.toString()).abc.data_offsets).toEqual([0, 3]);
  });
});

describe('checkpoint directory', () => {
  it('opens a generated sharded checkpoint and finds every tensor with its FP8 scales', async () => {
    const out = join(dir, 'tiny');
    const r = await makeModel({ out, preset: 'tiny', seed: 3, shardBytes: 40 << 20 });
    const ck = Checkpoint.open(out);
    expect(ck.shards.length).toBeGreaterThan(2);
    expect(ck.totalBytes).toBe(r.totalBytes);
    expect(ck.config.modelType).toBe('deepseek_v3');
    const q = ck.expect('model.layers.1.self_attn.q_b_proj.weight', ['F8_E4M3'], [4 * 192, 128]);
    expect(q.nbytes).toBe(4 * 192 * 128);
    ck.expect('model.layers.1.self_attn.q_b_proj.weight_scale_inv', ['F32'], [6, 1]);
    ck.expect('model.layers.1.mlp.experts.7.down_proj.weight', ['F8_E4M3'], [256, 128]);
    ck.expect('model.layers.1.mlp.gate.e_score_correction_bias', ['F32'], [8]);
    ck.expect('model.layers.2.eh_proj.weight', ['F8_E4M3'], [256, 512]);
    ck.expect('model.layers.2.shared_head.norm.weight', ['BF16'], [256]);
    expect(() => ck.expect('model.norm.weight', ['F32'], [256])).toThrow(/tensor "model\.norm\.weight": has dtype BF16, expected F32/);
    expect(() => ck.get('model.layers.9.input_layernorm.weight')).toThrow(/tensor "model\.layers\.9\.input_layernorm\.weight" is missing/);
  });

  it('refuses an index that names a tensor its shard does not hold, and a missing shard', async () => {
    const out = join(dir, 'tiny-bad');
    await makeModel({ out, preset: 'tiny', seed: 3, layers: 1 });
    const idxPath = join(out, 'model.safetensors.index.json');
    const idx = JSON.parse(readFileSync(idxPath, 'utf8'));
    const shard = idx.weight_map['model.norm.weight'];
    idx.weight_map['model.extra.weight'] = shard;
    writeFileSync(idxPath, JSON.stringify(idx));
    expect(() => Checkpoint.open(out)).toThrow(new RegExp(`${shard}: tensor "model\\.extra\\.weight": is listed in model\\.safetensors\\.index\\.json`));
    delete idx.weight_map['model.extra.weight'];
    idx.weight_map['model.norm.weight'] = 'model-00009-of-00009.safetensors';
    writeFileSync(idxPath, JSON.stringify(idx));
    expect(() => Checkpoint.open(out)).toThrow(/model-00009-of-00009\.safetensors: is named by model\.safetensors\.index\.json but does not exist/);
  });

  it('refuses unknown model types and unsupported values with the file and field', () => {
    const out = join(dir, 'cfg');
    const base = { model_type: 'deepseek_v3', hidden_size: 256, num_attention_heads: 4, kv_lora_rank: 512, qk_rope_head_dim: 64, qk_nope_head_dim: 128, v_head_dim: 128, num_hidden_layers: 1, intermediate_size: 256, vocab_size: 10 };
    const write = (c: object): void => {
      rmSync(out, { recursive: true, force: true });
      require('node:fs').mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'config.json'), JSON.stringify(c));
    };
    write({ ...base, model_type: 'llama' });
    expect(() => Checkpoint.open(out)).toThrow(/config\.json: model_type "llama" is not supported; this runner reads deepseek_v3 and deepseek_v2/);
    write({ ...base, kv_lora_rank: 256 });
    expect(() => Checkpoint.open(out)).toThrow(/config\.json: kv_lora_rank 256 .* need 512 and 64/);
    write({ ...base, rope_scaling: { type: 'linear', factor: 2 } });
    expect(() => Checkpoint.open(out)).toThrow(/rope_scaling\.type "linear" is not supported/);
    write({ ...base, quantization_config: { quant_method: 'fp8', weight_block_size: [64, 64] } });
    expect(() => Checkpoint.open(out)).toThrow(/weight_block_size \[64,64\] is not supported/);
    write({ ...base, hidden_act: 'gelu' });
    expect(() => Checkpoint.open(out)).toThrow(/hidden_act "gelu" is not supported/);
    write(base);
    expect(() => Checkpoint.open(out)).toThrow(/neither model\.safetensors\.index\.json nor model\.safetensors found/);
  });
});
