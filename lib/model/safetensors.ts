// Our own safetensors reader and writer.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {...}}, then the data buffer; offsets are relative to the buffer. The
// reader checks everything before a byte of tensor data is used: header size, JSON shape, dtype and
// shape against the byte count, offsets inside the file, no overlaps and no holes. Every error names
// the file and the tensor. Tensor data is read in bounded chunks, never the whole file at once.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import type { DType } from '../dtype';

/** safetensors dtype names and their sizes in bytes. */
export const ST_DTYPE_SIZE: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Our dtype for a safetensors dtype, where we have one. */
export const ST_TO_DTYPE: Readonly<Record<string, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16', F8_E4M3: 'fp8e4m3', I32: 'i32', I64: 'i64', U8: 'u8' };
export const DTYPE_TO_ST: Readonly<Record<DType, string>> = { f32: 'F32', bf16: 'BF16', f16: 'F16', fp8e4m3: 'F8_E4M3', i32: 'I32', i64: 'I64', u8: 'U8' };

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  /** safetensors dtype name, e.g. 'BF16', 'F8_E4M3'. */
  dtype: string;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  offset: number;
  nbytes: number;
}

/** A malformed, truncated or inconsistent safetensors file; the message names the file and the tensor. */
export class SafetensorsError extends Error {
  readonly file: string;
  readonly tensor?: string;
  constructor(file: string, message: string, tensor?: string) {
    super(`${file}${tensor !== undefined ? `: tensor ${JSON.stringify(tensor)}` : ''}: ${message}`);
    this.name = 'SafetensorsError';
    this.file = file;
    this.tensor = tensor;
  }
}

/** A validated safetensors file: its tensor table; data is read on demand. */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fileSize: number;
  readonly dataOffset: number;

  private constructor(readonly path: string, tensors: Map<string, TensorInfo>, metadata: Record<string, string>, fileSize: number, dataOffset: number) {
    this.tensors = tensors;
    this.metadata = metadata;
    this.fileSize = fileSize;
    this.dataOffset = dataOffset;
  }

  /** Opens `path` and validates its header against the file's size. Reads only the header. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(path, `is ${size} bytes long, too short for the 8-byte header length (truncated?)`);
      const lenBuf = Buffer.alloc(8);
      readExactly(fd, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
      const headerLen = Number(n);
      if (8 + headerLen > size)
        throw new SafetensorsError(path, `header length ${headerLen} runs past the end of the ${size}-byte file (truncated or corrupt)`);
      const hbuf = Buffer.alloc(headerLen);
      readExactly(fd, hbuf, 8, path);
      return SafetensorsFile.fromHeader(path, hbuf, size);
    } finally {
      closeSync(fd);
    }
  }

  /** Validates a header (the JSON bytes) for a file of `fileSize` bytes. */
  static fromHeader(path: string, header: Buffer, fileSize: number): SafetensorsFile {
    const dataOffset = 8 + header.length;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(header);
    } catch {
      throw new SafetensorsError(path, 'header is not valid UTF-8 (corrupt file?)');
    }
    if (!text.startsWith('{')) throw new SafetensorsError(path, 'header does not start with "{" (not a safetensors file, or corrupt)');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(path, `header is not valid JSON (${(e as Error).message})`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(path, 'header must be a JSON object');
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const dataSize = fileSize - dataOffset;
    for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (!v || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string'))
          throw new SafetensorsError(path, '__metadata__ must map strings to strings');
        metadata = v as Record<string, string>;
        continue;
      }
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(path, 'entry must be an object', name);
      const e = v as Record<string, unknown>;
      if (typeof e.dtype !== 'string' || !(e.dtype in ST_DTYPE_SIZE))
        throw new SafetensorsError(path, `unknown dtype ${JSON.stringify(e.dtype)}`, name);
      if (!Array.isArray(e.shape) || e.shape.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0))
        throw new SafetensorsError(path, `shape ${JSON.stringify(e.shape)} must be an array of non-negative integers`, name);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || off.some((x) => typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0))
        throw new SafetensorsError(path, `data_offsets ${JSON.stringify(off)} must be two non-negative integers`, name);
      const [b, end] = off as number[];
      if (end < b) throw new SafetensorsError(path, `data_offsets [${b}, ${end}] end before they begin`, name);
      const shape = e.shape as number[];
      const numel = shape.reduce((a, s) => a * s, 1);
      const want = numel * ST_DTYPE_SIZE[e.dtype];
      if (end - b !== want)
        throw new SafetensorsError(path, `${e.dtype} [${shape.join(', ')}] needs ${want} bytes but data_offsets [${b}, ${end}] hold ${end - b}`, name);
      if (end > dataSize)
        throw new SafetensorsError(path, `data_offsets [${b}, ${end}] run past the end of the data (${dataSize} bytes after the header): file truncated`, name);
      tensors.set(name, { name, dtype: e.dtype, shape, offset: dataOffset + b, nbytes: end - b });
    }
    // No overlaps and no holes: sorted by offset, each tensor starts where the previous ended.
    const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset || a.nbytes - b.nbytes);
    let pos = dataOffset;
    let prev: TensorInfo | undefined;
    for (const t of sorted) {
      if (t.offset < pos)
        throw new SafetensorsError(path, `bytes [${t.offset - dataOffset}, ${t.offset - dataOffset + t.nbytes}) overlap tensor ${JSON.stringify(prev!.name)}`, t.name);
      if (t.offset > pos)
        throw new SafetensorsError(path, `a gap of ${t.offset - pos} unindexed bytes precedes this tensor (corrupt file)`, t.name);
      pos = t.offset + t.nbytes;
      prev = t;
    }
    if (pos !== fileSize)
      throw new SafetensorsError(path, `${fileSize - pos} bytes after the last tensor are not indexed by the header (corrupt file)`);
    return new SafetensorsFile(path, tensors, metadata, fileSize, dataOffset);
  }

  get(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, 'is not in this file', name);
    return t;
  }
}

function readExactly(fd: number, buf: Buffer, position: number, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new SafetensorsError(path, `unexpected end of file at byte ${position + done} (truncated)`);
    done += n;
  }
}

/** Default bytes per read when streaming tensor data. */
export const CHUNK_BYTES = 64 << 20;

/**
 * Streams the bytes of `info` from `file` in chunks of at most `chunkBytes` (each chunk a view of one
 * reused buffer: consume it before asking for the next). A file that shrank since its header was read
 * is reported as truncated, naming the tensor.
 */
export async function* readTensorChunks(
  file: string | FileHandle,
  info: TensorInfo,
  opts: { chunkBytes?: number; signal?: AbortSignal; path?: string } = {},
): AsyncGenerator<{ offset: number; bytes: Uint8Array }> {
  const path = typeof file === 'string' ? file : opts.path ?? '<file>';
  const fh = typeof file === 'string' ? await openAsync(file, 'r') : file;
  const chunk = Math.max(1, Math.min(opts.chunkBytes ?? CHUNK_BYTES, info.nbytes || 1));
  const buf = Buffer.allocUnsafe(chunk);
  try {
    let done = 0;
    while (done < info.nbytes) {
      opts.signal?.throwIfAborted();
      const want = Math.min(chunk, info.nbytes - done);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, info.offset + done + got);
        if (bytesRead === 0) throw new SafetensorsError(path, `unexpected end of file after ${done + got} of ${info.nbytes} bytes (truncated)`, info.name);
        got += bytesRead;
      }
      yield { offset: done, bytes: new Uint8Array(buf.buffer, buf.byteOffset, want) };
      done += want;
    }
  } finally {
    if (typeof file === 'string') await fh.close();
  }
}

/** Reads one whole tensor's bytes (for small tensors and tests). */
export async function readTensorBytes(path: string, info: TensorInfo): Promise<Uint8Array> {
  const out = new Uint8Array(info.nbytes);
  for await (const c of readTensorChunks(path, info)) out.set(c.bytes, c.offset);
  return out;
}

/** One tensor to write: its bytes come from `data()` when the writer reaches it. */
export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: readonly number[];
  /** Produces the tensor's bytes (exactly numel * dtype size): all at once, or piece by piece. */
  data: () => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

export function tensorBytes(dtype: string, shape: readonly number[]): number {
  const size = ST_DTYPE_SIZE[dtype];
  if (size === undefined) throw new TypeError(`safetensors: unknown dtype ${JSON.stringify(dtype)}`);
  return shape.reduce((a, s) => a * s, 1) * size;
}

/** The header bytes (JSON padded with spaces to a multiple of 8) for tensors laid out in order. */
export function buildHeader(tensors: readonly { name: string; dtype: string; shape: readonly number[] }[], metadata: Record<string, string> = { format: 'pt' }): Buffer {
  const obj: Record<string, unknown> = { __metadata__: metadata };
  let pos = 0;
  for (const t of tensors) {
    const n = tensorBytes(t.dtype, t.shape);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + n] };
    pos += n;
  }
  let json = JSON.stringify(obj);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  return Buffer.from(json, 'utf8');
}

/**
 * Writes a safetensors file, producing each tensor's bytes only when it is reached, so a file larger
 * than memory can be written. Returns the bytes written.
 */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<number> {
  const header = buildHeader(tensors, metadata);
  const fd = openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeAll(fd, len);
    writeAll(fd, header);
    let total = 8 + header.length;
    for (const t of tensors) {
      const want = tensorBytes(t.dtype, t.shape);
      const d = await t.data();
      let got = 0;
      const put = (p: Uint8Array): void => {
        writeAll(fd, p);
        got += p.byteLength;
      };
      if (d instanceof Uint8Array) put(d);
      else if (Symbol.asyncIterator in d) for await (const p of d as AsyncIterable<Uint8Array>) put(p);
      else for (const p of d as Iterable<Uint8Array>) put(p);
      if (got !== want) throw new SafetensorsError(path, `writer produced ${got} bytes, expected ${want} for ${t.dtype} [${t.shape.join(', ')}]`, t.name);
      total += got;
    }
    return total;
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
}
