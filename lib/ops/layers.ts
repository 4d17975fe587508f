// Layer ops: embedding, norms, rotary, activations, elementwise, reductions.
import { getNative } from '../native';
import { Tensor } from '../tensor';
import { Check } from './validate';

/**
 * Rows of `table` [V, D] picked by `ids` (i32, any shape) -> [...ids.shape, D].
 * An id outside [0, V) is skipped and makes the next read on the device reject with a RangeError.
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const c = new Check('embedding');
  c.tensor(ids, 'ids', { dtypes: ['i32'] });
  c.tensor(table, 'table', { ndim: 2 });
  const dev = c.sameDevice([ids, 'ids'], [table, 'table']);
  const flatIds = ids.reshape([-1]);
  const tab = table.contiguous();
  const out = Tensor.alloc([flatIds.numel, table.shape[1]], table.dtype, dev);
  try {
    getNative().embedding(flatIds, tab, out);
  } finally {
    flatIds.dispose();
    tab.dispose();
  }
  const shaped = out.view([...ids.shape, table.shape[1]]);
  out.dispose();
  return shaped;
}
