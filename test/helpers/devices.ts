// Which devices a suite runs on. CUDA suites run when a GPU is present and are skipped otherwise;
// DSK_REQUIRE_CUDA=1 turns a missing GPU into a failure, so a GPU run cannot pass silently.
import { cuda } from '../../lib/index';

export const hasCuda = cuda.isAvailable();
export const requireCuda = process.env.DSK_REQUIRE_CUDA === '1';

if (requireCuda && !hasCuda) {
  throw new Error(`DSK_REQUIRE_CUDA=1 but no GPU is usable: ${cuda.status().reason}`);
}

/** Devices to run device-generic tests on: cpu always, cuda:0 when present. */
export const testDevices: ('cpu' | 'cuda:0')[] = hasCuda ? ['cpu', 'cuda:0'] : ['cpu'];

/** `describe` for CUDA-only suites: skipped without a GPU (a failure under DSK_REQUIRE_CUDA=1). */
export { hasCuda as cudaPresent };
