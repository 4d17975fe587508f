// Shared bits of the inline-PTX wrappers: the 32-bit shared-memory address of a generic pointer.
#pragma once
#include <cstdint>

namespace dsk::ptx {

// cvta.to.shared: the shared-window address that PTX shared-space operands take.
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

}  // namespace dsk::ptx
