// Proxy fences: order generic-proxy shared-memory writes before async-proxy (TMA, WGMMA) reads.
#pragma once

namespace dsk::ptx {

// fence.proxy.async.shared::cta;
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

}  // namespace dsk::ptx
