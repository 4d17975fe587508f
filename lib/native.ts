// The loaded addon, with our error classes registered so native failures surface as DskCudaError etc.
import { loadNative } from '../bindings/loader';
import type { Native } from '../bindings/native';
import { DskCudaError, DskError } from './errors';

let native: Native | undefined;

export function getNative(): Native {
  if (!native) {
    native = loadNative();
    native.setErrorClasses(DskError, DskCudaError);
  }
  return native;
}
