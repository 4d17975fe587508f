// CUDA graphs: record the ops a function enqueues on one device and replay them with a single launch.
// Decode steps use this: per-op launch overhead would otherwise dominate them.
import { deviceIndex, type DeviceLike } from './device';
import { getNative } from './native';

interface NativeGraph {
  replay(): void;
  time(replays: number): Promise<Float64Array>;
  dispose(): void;
  readonly arenaBytes: number;
}

export interface CudaGraph<T> {
  /** What `fn` returned at capture time (typically the output tensors, rewritten by every replay). */
  readonly outputs: T;
  /** Device bytes owned by the graph (tensors allocated during capture). */
  readonly arenaBytes: number;
  /** Enqueues one replay on the device's queue. */
  replay(): void;
  /** Replays `replays` times and resolves with the device time of each replay in milliseconds. */
  time(replays: number): Promise<Float64Array>;
  /** Frees the graph; its memory goes once the tensors allocated inside it are disposed too. */
  dispose(): void;
  [Symbol.dispose](): void;
}

const disposeSymbol: typeof Symbol.dispose = (Symbol as { dispose?: typeof Symbol.dispose }).dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose);

/**
 * Captures the ops `fn` enqueues on `device` into a replayable CUDA graph. During capture nothing runs:
 * tensors created inside are allocated from the graph's own memory and hold their values only after a
 * replay. Inputs are tensors that exist before the capture and stay alive (the graph keeps them
 * referenced); update them between replays with `t.copyFrom(src)`. Reads (`toArray`), host writes and
 * cross-device transfers are refused while capturing.
 */
export function graph<T>(device: DeviceLike, fn: () => T): CudaGraph<T> {
  const idx = deviceIndex(device);
  if (typeof fn !== 'function') throw new TypeError('graph: fn must be a function');
  const n = getNative() as unknown as {
    captureBegin(d: number): void;
    captureEnd(d: number, keep: boolean): NativeGraph | undefined;
  };
  n.captureBegin(idx);
  let outputs: T;
  try {
    outputs = fn();
    if (outputs && typeof (outputs as { then?: unknown }).then === 'function')
      throw new TypeError('graph: fn must enqueue its ops synchronously (it returned a promise)');
  } catch (e) {
    n.captureEnd(idx, false);
    throw e;
  }
  const g = n.captureEnd(idx, true)!;
  return {
    outputs,
    get arenaBytes() {
      return g.arenaBytes;
    },
    replay: () => g.replay(),
    time: (replays: number) => g.time(replays),
    dispose: () => g.dispose(),
    [disposeSymbol]: () => g.dispose(),
  };
}
