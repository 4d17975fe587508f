// A total order on float values for argmax, topk and sampling, identical on every device: the key is an
// unsigned integer that compares like the value, with every NaN equal and above +inf, and -0 equal to +0.
// Ties between equal keys go to the lower index.
#pragma once
#include <cstdint>

#include "../core/dtype.h"

namespace dsk {

DSK_HD uint32_t float_order_key(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0xffffffffu;  // NaN: the largest
  if (u == 0x80000000u) u = 0;                              // -0 == +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The value of a key (NaN for the NaN key, +0 for zero).
DSK_HD float order_key_float(uint32_t k) {
  if (k == 0xffffffffu) return bits_f32(0x7fc00000u);
  return bits_f32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// (key, index) ordered so that a larger key wins and equal keys go to the lower index.
DSK_HD bool order_before(uint32_t ka, int64_t ia, uint32_t kb, int64_t ib) { return ka > kb || (ka == kb && ia < ib); }

}  // namespace dsk
