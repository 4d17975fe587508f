// The model tests need every op of the forward pass. While an op is still missing from this build (the
// ops land from parallel work), those suites are skipped and say which ops they wait for.
import { missingOps } from '../../lib/model/kernels';

export const missingModelOps = missingOps();
export const modelOpsReady = missingModelOps.length === 0;
if (!modelOpsReady) console.warn(`model suites skipped: this build lacks ${missingModelOps.join(', ')}`);
// A GPU run (DSK_REQUIRE_CUDA=1) is a full run: a missing op there is a failure, not a skip.
if (!modelOpsReady && process.env.DSK_REQUIRE_CUDA === '1') throw new Error(`DSK_REQUIRE_CUDA=1 but the model ops ${missingModelOps.join(', ')} are missing`);
