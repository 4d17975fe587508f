// dsk.cuda: GPU availability, memory statistics and graphs.
import { resolveDevice, type DeviceLike } from './device';
import { graph } from './graph';
import { getNative } from './native';

export const cuda = {
  /** Captures ops into a replayable CUDA graph; see graph(). */
  graph,
  /** Whether a GPU is usable (a driver, a GPU, and a build with CUDA). */
  isAvailable(): boolean {
    return getNative().cudaStatus().count > 0;
  },
  deviceCount(): number {
    return getNative().cudaStatus().count;
  },
  /** Why no GPU is usable ('' when one is). */
  status(): { available: boolean; count: number; reason: string; driverVersion: number; builtWithCuda: boolean } {
    const n = getNative();
    const s = n.cudaStatus();
    return { available: s.count > 0, ...s, builtWithCuda: n.buildInfo().cuda };
  },
  /**
   * Device memory: the stream-ordered pool's bytes in use (`used`) and reserved, the driver's free/total,
   * and the live buffers this process holds there.
   */
  memoryStats(device: DeviceLike = 'cuda:0'): { used: number; reserved: number; free: number; total: number; liveBuffers: number; liveBytes: number } {
    const i = resolveDevice(device);
    if (i < 0) throw new RangeError("device: cuda.memoryStats is for cuda devices; use memoryStats('cpu')");
    return getNative().memoryStats(i) as ReturnType<typeof cuda.memoryStats>;
  },
};
