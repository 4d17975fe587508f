/** Base class of the errors deepseek-kernels raises besides TypeError and RangeError. */
export class DskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DskError';
  }
}

/** A CUDA call or kernel failed. `op` names the op, `cudaError` the CUDA error (e.g. cudaErrorIllegalAddress). */
export class DskCudaError extends DskError {
  readonly op: string;
  readonly cudaError: string;
  constructor(message: string, op = '', cudaError = '') {
    super(message);
    this.name = 'DskCudaError';
    this.op = op;
    this.cudaError = cudaError;
  }
}
