// Errors that only a kernel can see (an index read from device memory that is out of range).
//
// Checking such indices before enqueueing would need a device round-trip, so kernels check them as they
// read them: an out-of-range index is skipped (nothing outside the tensors is touched) and the first one
// is recorded here. The next read or synchronize on that device rejects with a RangeError naming the
// op, the argument, the value and the valid range.
#pragma once
#include <cstdint>
#include <string>
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
  kDiagEpIndices,   // ep.layout / ep.dispatch: an expert index outside [-1, E)
  kDiagEpTimeout,   // expert-parallel kernel: no progress from rank `value` for `bound` ms
  kDiagEpMismatch,  // expert-parallel kernel: rank `value` called the op with other sizes (field `bound`)
  kDiagEpAborted,   // expert-parallel kernel: stopped because rank `value` failed (CPU-side detection)
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
    case kDiagEpIndices: return "ep: indices";
    case kDiagEpTimeout: return "ep: peer rank";
    case kDiagEpMismatch: return "ep: peer rank";
    case kDiagEpAborted: return "ep: peer rank";
    case kDiagMoeMap: return "moeUnpermute: map";
    case kDiagCuSeqlens: return "attentionPrefill: cuSeqlens";
    case kDiagPrefillLength: return "attentionPrefill: a sequence length cuSeqlens[b+1] - cuSeqlens[b] (at most maxSeqlen)";
    case kDiagPrefillCoverage: return "attentionPrefill: the tokens outside cuSeqlens (cuSeqlens must run from 0 to T)";
    default: return "kernel: index";
  }
}

// Messages of the expert-parallel sites, which report peers rather than bad indices; empty for others.
inline std::string diag_ep_message(int32_t code, int64_t value, int64_t bound) {
  const std::string r = "rank " + std::to_string(value);
  switch (code) {
    case kDiagEpTimeout:
      return "ep: no progress from " + r + " for " + std::to_string(bound) + " ms (it died, stopped answering, or did not "
             "call the same op); the expert-parallel group is unusable, restart the processes";
    case kDiagEpMismatch:
      return "ep: " + r + " called the op with different sizes (" +
             (bound == 1 ? std::string("hidden") : bound == 2 ? std::string("topk") : bound == 3 ? std::string("numExperts")
              : bound == 4 ? std::string("fp8") : bound == 5 ? std::string("channels") : std::string("op sequence")) +
             " differs); every rank must issue the same expert-parallel ops, with the same hidden size, topk, "
             "numExperts, payload type and SM count";
    case kDiagEpAborted:
      return "ep: stopped because " + r + " failed (the process group reported it); the expert-parallel group is unusable";
    default:
      return {};
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
