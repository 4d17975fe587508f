// Typed view of what the native addon exports (native/addon/*.cc). Tensor arguments are the JS Tensor
// objects themselves: the addon reads their storage, offset, shape, strides and dtype.
import type { DType } from '../lib/dtype';

export interface NativeStorage {
  readonly nbytes: number;
  readonly device: number; // -1 = cpu, N = cuda:N
  readonly released: boolean;
  release(): void;
}

/** What the addon reads from a tensor argument. */
export interface TensorLike {
  readonly storage: NativeStorage;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly dtype: DType;
}

export interface CudaDeviceInfo {
  name: string;
  smCount: number;
  computeCapability: string;
  totalMemory: number;
  l2Bytes: number;
  sharedMemoryPerBlock: number;
  clockKHz: number;
  memoryClockKHz: number;
  memoryBusWidth: number;
}

export interface NativeCore {
  Storage: new (device: number, nbytes: number) => NativeStorage;
  setErrorClasses(dskError: Function, cudaError: Function): void;
  buildInfo(): { cuda: boolean; cudaRuntimeVersion?: number; cpuThreads: number };
  cudaStatus(): { count: number; reason: string; driverVersion: number };
  deviceInfo(device: number): CudaDeviceInfo;
  memoryStats(device: number): { liveBuffers: number; liveBytes: number; used?: number; reserved?: number; free?: number; total?: number };
  write(storage: NativeStorage, byteOffset: number, data: ArrayBufferView | ArrayBuffer): void;
  read(storage: NativeStorage, byteOffset: number, nbytes: number): Promise<ArrayBuffer>;
  transfer(dst: NativeStorage, dstByteOffset: number, src: NativeStorage, srcByteOffset: number, nbytes: number): void;
  synchronize(device: number): Promise<void>;
  externalMemory(): number;

  captureBegin(device: number): void;
  captureEnd(device: number, keep: boolean): unknown;
  flushL2(device: number, bytes: number): void;

  copy(dst: TensorLike, src: TensorLike): void;
  fill(dst: TensorLike, value: number): void;
  random(dst: TensorLike, kind: 0 | 1 | 2, seedHigh: number, seedLow: number, a: number, b: number): void;
}

/** Ops exported by native/addon/ops_*.cc; each file documents its functions. Outputs are passed in. */
export interface NativeOps {
  // ops_layers.cc
  embedding(ids: TensorLike, table: TensorLike, out: TensorLike): void;

  // ops_ep.cc (expert parallelism; lib/dist)
  epLayout(indices: TensorLike, numExperts: number, worldSize: number, tokensPerRank: TensorLike, tokensPerExpert: TensorLike,
    inRank: TensorLike, tokenIdxInRank: TensorLike, posInExpert: TensorLike, sendList: TensorLike, scratch: TensorLike): void;
  epGroupCreate(device: number, rank: number, world: number, maxChannels: number, slots: number, slotBytes: number,
    maxExperts: number, timeoutMs: number): { handle: Uint8Array; bytes: number };
  epGroupOpen(handles: Uint8Array[], devices: number[]): void;
  epGroupInfo(): { created: boolean; device: number; rank: number; world: number; bytes: number; slots: number; slotBytes: number;
    maxChannels: number; maxExperts: number; aborted: number };
  epAbort(rank: number): void;
  epGroupDestroy(): void;
  epNotify(epoch: number, numExperts: number, hidden: number, fp8: boolean, channels: number, indices: TensorLike,
    tokensPerExpert: TensorLike, tokensPerRank: TensorLike, sendList: TensorLike, plan: TensorLike, summary: TensorLike): Promise<Int32Array>;
  epDispatch(x: TensorLike, xScale: TensorLike | null, weights: TensorLike, indices: TensorLike, posInExpert: TensorLike,
    sendList: TensorLike, plan: TensorLike, numExperts: number, channels: number, chunk: number, stagedX: TensorLike,
    stagedScale: TensorLike | null, recvWeights: TensorLike, recvTokenRows: TensorLike, join: boolean): void;
  epExpand(x: TensorLike, xScale: TensorLike | null, weights: TensorLike, indices: TensorLike, posInExpert: TensorLike, sendList: TensorLike,
    plan: TensorLike, numExperts: number, channels: number, stagedX: TensorLike, stagedScale: TensorLike | null, recvTokenRows: TensorLike,
    recvWeights: TensorLike, mIndices: TensorLike, recvX: TensorLike, recvScale: TensorLike | null, part: 0 | 1 | 2): void;
  epReduce(y: TensorLike, recvWeights: TensorLike, recvTokenRows: TensorLike, plan: TensorLike, numExperts: number, channels: number,
    partial: TensorLike, part: 0 | 1 | 2): void;
  epCombine(partial: TensorLike, staged: TensorLike, plan: TensorLike, numExperts: number, channels: number, chunk: number, join: boolean): void;
  epSum(partial: TensorLike, staged: TensorLike, tokenIdxInRank: TensorLike, plan: TensorLike, numExperts: number, channels: number,
    out: TensorLike): void;
  epJoin(device: number): void;
  epTimerCreate(device: number): number;
  epTimerRecord(id: number, onComm: boolean): void;
  epTimerElapsed(start: number, end: number): Promise<number>;
  epTimerDestroy(id: number): void;
  epPeerCopy(peerRank: number, bytes: number, iters: number): void;
  epBusy(out: TensorLike, iters: number): void;
  epGate(device: number, us: number, onComm: boolean): void;
  // ops_moe.cc
  moeGate(logits: TensorLike, bias: TensorLike | null, indices: TensorLike, weights: TensorLike, scoring: 0 | 1, nGroup: number,
    topkGroup: number, groupScore: 0 | 1, normTopk: boolean, routedScale: number): void;
  moeCount(indices: TensorLike, counts: TensorLike): void;
  moeBiasUpdate(bias: TensorLike, tokensPerExpert: TensorLike, out: TensorLike, gamma: number): void;
  moePermute(x: TensorLike, indices: TensorLike, scale: TensorLike | null, out: TensorLike, scaleOut: TensorLike | null,
    mIndices: TensorLike, map: TensorLike, counts: TensorLike, offsets: TensorLike, workspace: TensorLike, align: number): void;
  moeUnpermute(y: TensorLike, map: TensorLike, weights: TensorLike, out: TensorLike): void;
  // ops_attention.cc
  rope(
    x: TensorLike,
    positions: TensorLike,
    out: TensorLike,
    theta: number,
    ropeDim: number,
    yarnFactor: number,
    originalMaxPosition: number,
    betaFast: number,
    betaSlow: number,
    mscale: number,
    mscaleAllDim: number,
  ): void;
  attentionPrefill(q: TensorLike, k: TensorLike, v: TensorLike, cuSeqlens: TensorLike, out: TensorLike, maxSeqlen: number, causal: boolean, scale: number): void;
  mlaCacheWrite(cache: TensorLike, latent: TensorLike, slots: TensorLike): void;
  mlaDecode(
    q: TensorLike,
    cache: TensorLike,
    blockTable: TensorLike,
    seqLens: TensorLike,
    out: TensorLike,
    lse: TensorLike,
    workspace: TensorLike | null,
    nsplit: number,
    scale: number,
    causal: boolean,
  ): void;

  // ops_quant.cc
  quantizeActivation(x: TensorLike, q: TensorLike, scale: TensorLike): void;
  quantizeWeight(w: TensorLike, q: TensorLike, scale: TensorLike): void;
  dequantize(q: TensorLike, scale: TensorLike, weightLayout: boolean, out: TensorLike): void;
  swiglu(gate: TensorLike, up: TensorLike, out: TensorLike): void;
  swigluQuant(gate: TensorLike, up: TensorLike, q: TensorLike, scale: TensorLike, mIndices: TensorLike | null): void;
  // ops_gemm.cc
  gemm(a: TensorLike, b: TensorLike, out: TensorLike): void;
  // ops_norm.cc
  rmsNorm(x: TensorLike, weight: TensorLike, residual: TensorLike | null, eps: number, out: TensorLike, residualOut: TensorLike | null): void;
  // ops_elementwise.cc
  binary(op: 0 | 1, a: TensorLike, b: TensorLike, out: TensorLike): void;
  scale(x: TensorLike, s: number, out: TensorLike): void;
  // ops_reduce.cc
  softmax(x: TensorLike, log: boolean, out: TensorLike): void;
  argmax(x: TensorLike, out: TensorLike): void;
  topk(x: TensorLike, k: number, values: TensorLike, indices: TensorLike): void;
  // ops_sample.cc
  sample(logits: TensorLike, temperature: number, topK: number, topP: number, seedHigh: number, seedLow: number, out: TensorLike): void;

  // ops_fp8_gemm.cc
  fp8Gemm(a: TensorLike, aScale: TensorLike, b: TensorLike, bScale: TensorLike, out: TensorLike): void;
  fp8GroupedGemmContiguous(a: TensorLike, aScale: TensorLike, b: TensorLike, bScale: TensorLike, mIndices: TensorLike, out: TensorLike): void;
  fp8GroupedGemmMasked(a: TensorLike, aScale: TensorLike, b: TensorLike, bScale: TensorLike, maskedM: TensorLike, out: TensorLike): void;
  fp8GemmConfigs(): string[];
  fp8GemmForceConfig(name: string): void;
  fp8GemmChoice(device: number, kind: 0 | 1 | 2, m: number, n: number, k: number, groups: number): string;

  // bench_fp8_gemm.cc (CUDA builds only; benchmarks, not ops)
  benchCublasLtStatus?(): string;
  benchCublasLtFp8Gemm?(a: TensorLike, aScaleT: TensorLike, b: TensorLike, bScale: TensorLike, out: TensorLike): void;
}

export type Native = NativeCore & NativeOps;
