import { cpus } from 'node:os';
import type { CudaDeviceInfo } from '../bindings/native';
import { getNative } from './native';

/** `cpu` or `cuda:N`. */
export type Device = 'cpu' | `cuda:${number}`;
export type DeviceLike = Device | 'cuda' | number;

/** Device id as the addon numbers it: -1 = cpu, N = cuda:N. */
export function deviceIndex(d: DeviceLike | undefined, name = 'device'): number {
  if (d === undefined || d === 'cpu') return -1;
  if (d === 'cuda') return 0;
  if (typeof d === 'number' && Number.isInteger(d) && d >= -1) return d;
  if (typeof d === 'string') {
    const m = /^cuda:(\d+)$/.exec(d);
    if (m) return Number(m[1]);
  }
  throw new TypeError(`${name} must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(d)}`);
}

export function deviceName(index: number): Device {
  return index < 0 ? 'cpu' : `cuda:${index}`;
}

/** Parses and checks that the device exists on this machine. */
export function resolveDevice(d: DeviceLike | undefined, name = 'device'): number {
  const i = deviceIndex(d, name);
  if (i >= 0) {
    const st = getNative().cudaStatus();
    if (i >= st.count)
      throw new RangeError(
        `${name}: cuda:${i} does not exist (${st.count ? `${st.count} GPU(s) present` : `no GPU: ${st.reason}`})`,
      );
  }
  return i;
}

export interface DeviceDescription {
  id: Device;
  type: 'cpu' | 'cuda';
  name: string;
  /** CPU: worker threads used by kernels. */
  threads?: number;
  smCount?: number;
  computeCapability?: string;
  totalMemory?: number;
  l2Bytes?: number;
  sharedMemoryPerBlock?: number;
  memoryBusWidth?: number;
}

/** Every device usable on this machine: `cpu` first, then each GPU. */
export function devices(): DeviceDescription[] {
  const n = getNative();
  const out: DeviceDescription[] = [
    { id: 'cpu', type: 'cpu', name: cpus()[0]?.model?.trim() || 'cpu', threads: n.buildInfo().cpuThreads },
  ];
  const count = n.cudaStatus().count;
  for (let i = 0; i < count; i++) {
    const info: CudaDeviceInfo = n.deviceInfo(i);
    out.push({ id: `cuda:${i}`, type: 'cuda', ...info });
  }
  return out;
}

/** Resolves once all work queued on the device so far has finished; rejects with the first kernel-side error. */
export function synchronize(device: DeviceLike = 'cpu'): Promise<void> {
  return getNative().synchronize(resolveDevice(device));
}


/** Buffers (and their bytes) this process holds on a device; with cuda, also the pool's figures. */
export function memoryStats(device: DeviceLike = 'cpu'): { liveBuffers: number; liveBytes: number; used?: number; reserved?: number; free?: number; total?: number } {
  return getNative().memoryStats(resolveDevice(device));
}
