// The exchange kernels in a group of one rank on cuda:0 (the direct-write paths of dispatch and the
// local reduction of combine), bit for bit against the CPU simulation. Skipped without a GPU.
import { describe, it } from 'vitest';
import { hasCuda } from './helpers/devices';
import { groupSuite } from './helpers/ep_group_suite';

if (hasCuda) groupSuite('cuda:0');
else describe.skip('a group of one rank on cuda:0 (no GPU)', () => it('needs a GPU', () => {}));
