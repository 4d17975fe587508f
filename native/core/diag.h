// Errors that only a kernel can see (an index read from device memory that is out of range).
//
// Checking such indices before enqueueing would need a device round-trip, so kernels check them as they
// read them: an out-of-range index is skipped (nothing outside the tensors is touched) and the first one
// is recorded here. The next read or synchronize on that device rejects with a RangeError naming the
// op, the argument, the value and the valid range.
#pragma once
#include <cstdint>
#include "dtype.h"

namespace dsk {

struct DiagRecord {
  int32_t code;   // 0 = nothing recorded, else a DiagSite
  int32_t pad;
  int64_t value;  // the offending value
  int64_t bound;  // the valid range is [0, bound)
};

// One entry per (op, argument) that checks indices in a kernel. Append only; names in diag_site_name.
enum DiagSite : int32_t {
  kDiagNone = 0,
  kDiagEmbeddingIds,
  kDiagGroupedGemmIndices,
  kDiagMoeIndices,
  kDiagCacheSlots,
  kDiagBlockTable,
  kDiagSeqLens,
  kDiagMaskedM,
  kDiagGatherIndex,
  kDiagMoeMap,
  kDiagCuSeqlens,
  kDiagPrefillLength,
  kDiagPrefillCoverage,
  kDiagSiteCount
};

inline const char* diag_site_name(int32_t site) {
  switch (site) {
    case kDiagEmbeddingIds: return "embedding: ids";
    case kDiagGroupedGemmIndices: return "fp8GroupedGemmContiguous: mIndices";
    case kDiagMoeIndices: return "moe: indices";
    case kDiagCacheSlots: return "mlaCacheWrite: slots";
    case kDiagBlockTable: return "mlaDecode: blockTable";
    case kDiagSeqLens: return "mlaDecode: seqLens";
    case kDiagMaskedM: return "fp8GroupedGemmMasked: maskedM";
    case kDiagGatherIndex: return "gather: index";
    case kDiagMoeMap: return "moeUnpermute: map";
    case kDiagCuSeqlens: return "attentionPrefill: cuSeqlens";
    case kDiagPrefillLength: return "attentionPrefill: a sequence length cuSeqlens[b+1] - cuSeqlens[b] (at most maxSeqlen)";
    case kDiagPrefillCoverage: return "attentionPrefill: the tokens outside cuSeqlens (cuSeqlens must run from 0 to T)";
    default: return "kernel: index";
  }
}

// Record the first bad index; later ones are dropped.
DSK_HD void diag_report(DiagRecord* d, int32_t site, int64_t value, int64_t bound) {
  if (!d) return;
#if defined(__CUDA_ARCH__)
  if (atomicCAS_system(&d->code, 0, site) == 0) {
    d->value = value;
    d->bound = bound;
    __threadfence_system();
  }
#else
  int32_t expected = 0;
  if (__atomic_compare_exchange_n(&d->code, &expected, site, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    d->value = value;
    d->bound = bound;
  }
#endif
}

// True when 0 <= v < bound; otherwise reports it.
DSK_HD bool diag_check_index(DiagRecord* d, int32_t site, int64_t v, int64_t bound) {
  if (v >= 0 && v < bound) return true;
  diag_report(d, site, v, bound);
  return false;
}

}  // namespace dsk
