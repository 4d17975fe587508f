// dsk.ops: typed ops. Each validates its arguments (TypeError/RangeError naming the argument) before
// anything is enqueued, then calls the addon, which runs the CPU reference or the CUDA kernel.
export * from './layers';
export * from './moe';
export * from './rope';
export * from './attention';
export * from './quant';
export * from './activation';
export * from './gemm';
export * from './norm';
export * from './elementwise';
export * from './reduce';
export * from './sample';
export * from './fp8_gemm';
