/**
 * deepseek-kernels: DeepSeek-V3 inference kernels for Node.js.
 *
 *   import * as dsk from 'deepseek-kernels';
 *   const x = dsk.randn([4, 7168], { device: 'cuda:0', dtype: 'bf16', seed: 1 });
 *   const { q, scale } = dsk.ops.quantizeActivation(x);
 */
export { Tensor, type Shape, type ToArrayOptions } from './tensor';
export { type DType, DTYPES, DTYPE_SIZE } from './dtype';
export { type Device, type DeviceLike, type DeviceDescription, devices, synchronize, memoryStats } from './device';
export { cuda } from './cuda';
export { DskError, DskCudaError } from './errors';
export { graph, type CudaGraph } from './graph';
export {
  tensor,
  fromBytes,
  empty,
  zeros,
  ones,
  full,
  rand,
  randn,
  randint,
  arange,
  type CreateOptions,
  type TensorOptions,
  type RandomOptions,
  type TensorData,
} from './factory';
export * as ops from './ops';
export {
  dist,
  ep,
  launch,
  RendezvousServer,
  RendezvousClient,
  DistError,
  simulateDispatch,
  simulateCombine,
  deepepRouting,
  skewedRouting,
  EpMoeLayer,
  type EpMoeConfig,
  type EpMoeWeights,
  type MoeOps,
} from './dist';
// Model runner: load a Hugging Face DeepSeek-V3 / V2 checkpoint, generate, stream.
export {
  loadModel,
  Model,
  type LoadModelOptions,
  type GenerateOptions,
  type GenerateEvent,
  type GenerateSummary,
  type GenerateStream,
} from './runner/model';
export { makeModel, type MakeModelOptions } from './model/make_model';
export { inspectCheckpoint, type InspectReport } from './model/inspect';
export { parseConfig, type ModelConfig, UnsupportedConfigError } from './model/config';
export { SafetensorsFile, SafetensorsError, writeSafetensors } from './model/safetensors';
export { Checkpoint, CheckpointError } from './model/checkpoint';
export { ModelTokenizer, type ChatMessage } from './model/tokenizer';
export { KvCacheFullError } from './model/kv_cache';
export { PRESETS, type Preset } from './model/presets';
