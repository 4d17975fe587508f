// Hopper FP8 block-scaled GEMM: warp-specialized TMA producer + WGMMA math warpgroups, persistent grid.
//
// One CTA = one or two math warpgroups (64 rows each with BM 64 / 128; 128 rows as two m64 waves each with
// BM 256) + a producer warp and a record warp (grouped layouts, below) in the last warpgroup: 256 threads with BM 64,
// 320 with BM 128, 384 with BM 256 and m128n160 (whose producer warpgroup gives registers to the math warpgroups by
// setmaxnreg 40 / 232).
//  - Producer: per 128-wide K block, lane 0 issues the TMA loads of the A tile (BM x 128 B) and the B tile (BN x 128
//    B) into a stage of the shared-memory ring, completing on the stage's `full` barrier. The scales come from the
//    row-major [rows, K/128] (A) and [groups, N/128, K/128] (B) matrices, no transpose pass: by TMA, every 4th K
//    block, one box of BM rows x 4 K blocks (16 B per row) and one of the tile's two B-scale rows x 4 K blocks, into
//    a ring of scale slots (needs K/128 % 4 == 0; the host picks it where it measured faster); otherwise all 32 lanes
//    copy the K block's scales with 4-byte cp.async and arrive on `full` when they land
//    (cp.async.mbarrier.arrive.noinc).
//  - Math warpgroups: wait `full`, issue 4 WGMMAs m64nBNk32 (e4m3, fp32 accumulate) into a partial accumulator (while
//    they run, test the next stage's `full` and work out its addresses), wait for them, release the stage on `empty`
//    (and on the cluster peer's when the stage was filled by multicast, else on its own again), then promote:
//    acc += partial * aScale[row] * bScale[col block] on the CUDA cores (DeepSeek-V3's fp32 promotion every 128 K). Two math
//    warpgroups issue their WGMMAs side by side (taking turns measured 30% slower: bench/NOTES.md, "v7"); m64n128
//    alternates two partial accumulators (kb's WGMMAs run while kb - 1 is released and promoted), and m256n88 gives
//    each of its two waves a partial accumulator (wave 0 is promoted while wave 1's WGMMAs run; v11).
//  - Epilogue: bf16 through shared memory (stmatrix into the TMA store's swizzled layout), then a TMA store per
//    warpgroup that overlaps the next tile's main loop. The deep BM 256 variant (m256n128s4, v8) stages one 64 x 64
//    chunk at a time, which buys its ring a 4th stage (picked for K >= 7168 in a single wave, v17). Tiles with rows
//    the op must not write (contiguous padding rows, masked rows past maskedM) are copied out row-masked with 16-byte
//    stores.
//  - Persistent grid over the SMs (the fewest clusters that take the units in as many waves); units of work are
//    tiles, or pairs of tiles on a 2-CTA cluster that share the A tile (pair along N: each CTA loads half of A and
//    multicasts it) or the B tile (pair along M), or one BM 64 tile whose K blocks a pair splits (split-K: the second
//    CTA's fp32 partial sums are added in the first's shared memory, through distributed shared memory; for few-tile
//    shapes). A rasterizing scheduler orders units in bands of N for L2 reuse; the contiguous layout reads each M
//    block's expert from mIndices (an M block holding several experts is computed once per expert, writing only that
//    expert's rows: the record warp hands the math warpgroups each pass's expert and row mask through shared
//    memory, v9); the masked layout walks the groups' maskedM.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "../cluster_launch.cuh"
#include "../../../ptx/cluster.h"
#include "../../../ptx/cp_async.h"
#include "../../../ptx/elect.h"
#include "../../../ptx/fence.h"
#include "../../../ptx/mbarrier.h"
#include "../../../ptx/named_barrier.h"
#include "../../../ptx/setmaxnreg.h"
#include "../../../ptx/stmatrix.h"
#include "../../../ptx/timer.h"
#include "../../../ptx/tma.h"
#include "../../../ptx/wgmma.h"
#include "../../core/dtype.h"
#include "../../core/errors.h"
#include "fp8_gemm_sm90.h"

namespace dsk::cuda::sm90 {

// kMcA: CTA pair along N shares A; kMcB: along M shares B; kSplitK: a pair splits the tile's K blocks, and the
// second CTA's partial sums go to the first through distributed shared memory (v7, BM 64 kernels built for it).
enum Multicast : int32_t { kMcNone = 0, kMcA = 1, kMcB = 2, kSplitK = 3 };

struct Params {
  Fp8GemmKind kind;
  int32_t mc;
  const float* sa;
  const float* sb;
  const int32_t* m_indices;
  const int32_t* masked_m;
  uint16_t* d;
  DiagRecord* diag;
  int32_t m;  // rows (normal, contiguous) or Mmax (masked)
  int32_t n;
  int32_t groups;
  int32_t rows_total;
  int32_t kb_count;  // K / 128
  int32_t nb_count;  // ceil(N / 128)
  int32_t scales_tma;  // 1: scales by TMA (K/128 % 4 == 0: 16-byte row pitch); 0: by cp.async
  int32_t wait_next;   // 1: the loop, not DRAM, bounds the time (estimate_us): the look-ahead may wait (kPeelLast)
  uint64_t* trace;     // null, or kTraceWords clock64 stamps of CTA 0 (DSK_FP8_GEMM_TRACE, a diagnostic)
};

// Trace layout (CTA 0 only): [0..3] clock64 and %globaltimer at start and at the math warps' exit; per
// pipeline step i (K block of a tile, in order) the producer's stamps after the empty wait and after
// issuing, and the first math thread's after the full wait, after wgmma.wait_group and after promotion;
// per tile the first math thread's stamps around its epilogue.
constexpr int kTraceSteps = 1024, kTraceTiles = 256;
constexpr int kTraceProd = 16, kTraceCons = kTraceProd + 2 * kTraceSteps, kTraceTile = kTraceCons + 3 * kTraceSteps;
constexpr int kTraceWords = kTraceTile + 2 * kTraceTiles;

// DSK_FP8_GEMM_TRACE_BUILD=1 (edit here or pass -D) compiles the clock64 trace of DSK_FP8_GEMM_TRACE in.
#ifndef DSK_FP8_GEMM_TRACE_BUILD
#define DSK_FP8_GEMM_TRACE_BUILD 0
#endif
// DSK_FP8_GEMM_PROBE=1 (a timing probe, wrong results: never a default build) promotes only the last K block of a
// tile, so a forced run of it against the normal build prices the promotion's arithmetic per K block (v6). The skip
// tests a parameter that is null at run time (`p.trace`): ptxas deletes WGMMAs whose results are never
// read, and with a skip it could prove, it dropped every non-last K block's WGMMAs too (v15: 0.4x the cycles of
// 4096x4096x7168, below the tensor floor; the v6 probe figures include that).
#ifndef DSK_FP8_GEMM_PROBE
#define DSK_FP8_GEMM_PROBE 0
#endif

constexpr int kSmemLimit = 232448;  // opt-in dynamic shared memory per block on sm_90
constexpr int kBand = 8;            // units per raster band along N
// Up to BM 128 x BN 128, two math warpgroups run with a producer and a record warp (320 threads) and no setmaxnreg:
// every region gets the launch bound's cap (65536 / 320: 200 registers; m128n128 uses 147). BM 256 x BN 128 (two
// m64 waves per warpgroup, 192 accumulator registers per math thread) runs 384 threads, a whole producer warpgroup,
// and moves registers with setmaxnreg 40/232 (128 x 40 + 256 x 232 = the 384 x 168 the CTA is launched with). ptxas
// keeps the raised budget for the math branch only when the final TMA-store wait sits after the role
// branches (it does, for every kernel), and the producer must fit 40 registers (bench/NOTES.md, "v4").
constexpr int kProducerRegs = 40, kMathRegs = 232;

// Contiguous layout: which expert each pass over a tile computes, and which of the tile's rows are its, are worked
// out by the record warp (a warp of the producer's warpgroup, see write_pass_records) ahead of the producer and the
// math warpgroups, into a ring of records in shared memory (v9); a slot is free again once every math warp and
// (Traits::kProducerReadsRecords) the producer have read it. The math warpgroups used to walk the tile's mIndices
// rows themselves, three times per tile (the pass's expert, the epilogue's row mask, and that no pass follows): an L2
// round trip and dependent loads on the tensor cores' critical path, where both warpgroups wait at once.
// Record: [0] the expert (INT_MAX: no row of the tile has one, no pass), [4] 1 on the tile's last pass,
// [16 + 4j] bit r of word j: row 32j + r of the tile belongs to the expert.
constexpr int kRecSlots = 4, kRecBytes = 64;

// DEEP (BM 256): one more pipeline stage, paid for by staging D one 64 x 64 chunk at a time (v8).
// gcd(bn, 128) for a multiple of 8: tiles of width bn start at multiples of it into a 128-column B-scale block.
constexpr int scale_block_gcd(int bn) { return (bn & -bn) < 128 ? (bn & -bn) : 128; }

template <int BM, int BN, int KS = 1, bool DEEP = false>
struct Traits {
  static_assert(BM == 64 || BM == 128 || BM == 256, "BM is 64 (one math warpgroup), 128 or 256 (two)");
  static_assert(BN % 8 == 0 && BN >= 16 && BN <= (BM == 64 ? 192 : BM == 128 ? 160 : 128),
                "BN is a multiple of 8 in [16, 192] (160 at BM 128, 128 at BM 256)");
  // Tiles start at multiples of BN, so at multiples of g = gcd(BN, 128) into a 128-column B-scale block, at most
  // 128 - g in: a tile touches at most the two scale blocks the kernel reads while BN <= 128 + g (136, 144, 160, 192).
  static_assert(BN <= 128 + scale_block_gcd(BN), "a tile would touch three B-scale blocks");
  static constexpr int kMathWG = BM == 64 ? 1 : 2;
  // KS 2: the kernel runs as a split-K pair (kSplitK), with a buffer for the partner's fp32 partial sums.
  static_assert(KS == 1 || (KS == 2 && BM == 64), "split-K pairs are BM 64");
  static_assert(!DEEP || BM == 256, "the deep ring is a BM 256 variant");
  static constexpr int kRedBytes = KS == 2 ? 64 * BN * 4 : 0;
  // m64 WGMMA waves per math warpgroup: BM 256 gives each warpgroup 128 rows as two waves that share one
  // partial accumulator (the B tile is read once per 256 rows: half the L2 traffic per FLOP of BM 128).
  static constexpr int kWaves = BM / (64 * kMathWG);
  static constexpr int kWGRows = 64 * kWaves;
  // BM 64 x BN 128: two partial accumulators, so K block kb's WGMMAs run while kb - 1 is promoted (v5b). Measured
  // (bench/NOTES.md, "v5b"): 2-4% faster for m64n128, 1-6% slower for m64n32 / m64n56 (short WGMMAs: nothing to
  // hide the promotion behind), even for m64n96; so only m64n128 has it.
  static constexpr bool kDualPart = BM == 64 && BN == 128 && KS == 1;
  // BM 256 x BN <= 96: a partial accumulator per wave, both waves' WGMMAs issued together, wave 0 promoted while
  // wave 1's run (2 x BN/2 partials + 2 x BN/2 accumulators fit the 232 registers up to BN 96).
  static constexpr bool kWaveParts = BM == 256 && BN <= 96;
  // BN divides 128: a tile never straddles two 128-column B-scale blocks, so the promotion needs one B scale.
  static constexpr bool kOneSb = 128 % BN == 0;
  // BM 256 x BN 128 (v16): the pass's last K block peeled off the K loop, so every other K block knows at compile
  // time that another follows, and its look-ahead waits for the next stage instead of testing it. Each warpgroup
  // must issue its next wave before the other's wave (256 tensor cycles) drains, after its own wave's wait and
  // promotion; the `landed` test and the branches on it were on that path. Measured (bench/NOTES.md, "v16"): 1-4%
  // fewer cycles on the m256n128 shapes; waiting without the peel 1-4% more on some, and m256n112 1.7% more.
  // Waiting there holds the release of the stage before until the next one lands: one load fewer in flight. The
  // 3-stage ring therefore waits only where the loop bounds the time (Params::wait_next; DRAM-bound, at
  // m:4x256x4096x7168, it measured 4% slower), the 4-stage ring always.
  static constexpr bool kPeelLast = kWaves == 2 && kOneSb && !kWaveParts;
  // BM 128 tiles that straddle two B-scale blocks: the K loop is compiled once per place of the boundary in the tile
  // (first_hi, see with_first_hi), so the promotion takes each n8 block's scale without a runtime select (DeepGEMM's
  // way): m128n160 ran 17% fewer cycles (bench/NOTES.md, "v13"); m128n112 / m128n96 measured 5-7% faster in v10.
  // (At BM 256 the copies cost register moves: 2-4% slower, v10.)
  static constexpr bool kFirstHiSwitch = BM == 128 && !kOneSb;
  // + the producer warp, alone in its warpgroup; BM 256 launches the whole producer warpgroup (setmaxnreg
  // is per warpgroup) and moves registers to the math warpgroups. So does BM 128 past BN 136: at 320 threads ptxas
  // held m128n160 (160 accumulator and partial registers) to 168 registers, with 52 bytes of spills.
  static constexpr bool kRegMove = BM == 256 || (BM == 128 && BN > 136);
  static constexpr int kRecWarp = kMathWG * 4 + 1;  // the producer's warp, then the record warp
  // Contiguous layout: the producer takes each pass's expert from the records too, except with BM 64, whose
  // producer walks the tile's rows itself. Measured (bench/NOTES.md, "v9"): from the records, m128n128.mcA and
  // the BM 256 kernels ran 3-7% faster than walking, but m64n128.mcA 30% slower at 130 experts x 128 rows x
  // 7168 x 2048 (1160 against 860 us; a deeper record ring did not change it). Why is not known.
  static constexpr bool kProducerReadsRecords = BM != 64;
  // BM 128: 8 math warps, the producer's and the record warp's; BM 64 and 256 have spare warps in the producer's warpgroup.
  static constexpr int kThreads = kRegMove ? 384 : kMathWG == 2 ? 320 : 256;
  static constexpr int kABytes = BM * 128, kBBytes = BN * 128;  // multiples of 1024: stages stay 1024-aligned
  // The D staging buffer of each wave: BN/CW chunks of [64 rows][CW cols] bf16, each chunk one TMA store box,
  // swizzled so stmatrix writes hit distinct banks (an odd count of 16-byte granules per row needs no swizzle).
  static constexpr int kDSwizzle = (BN * 2) % 128 == 0 ? 128 : (BN * 2) % 64 == 0 ? 64 : (BN * 2) % 32 == 0 ? 32 : 0;
  static constexpr int kDChunkCols = kDSwizzle ? kDSwizzle / 2 : BN;
  static constexpr int kDChunks = BN / kDChunkCols;
  static constexpr int kDChunkBytes = 64 * kDChunkCols * 2;
  static constexpr int kDWaveBytes = (kDChunks * kDChunkBytes + 127) / 128 * 128;
  // A warpgroup stages its D in passes of `units` chunks: whole waves (units a multiple of kDChunks, each wave
  // kDWaveBytes) or single chunks.
  static constexpr int d_bytes_per_wg(int units) {
    return ((units % kDChunks == 0 ? units / kDChunks * kDWaveBytes : units * kDChunkBytes) + 1023) / 1024 * 1024;
  }
  // Scale slots, one layout for both paths: a slot holds, for 4 K blocks (column c at 4c), the A scales of the
  // BM rows (16 bytes per row) and the tile's two B-scale blocks (+0, +16; 128-byte slots: TMA destinations).
  //  - By TMA (K/128 % 4 == 0): one A box (BM rows x 16 B, K blocks [kb & ~3, +4) of the row-major
  //    [rows, K/128] matrix) and one B box every 4 K blocks into the next slot of a ring of
  //    ceil((S + 3) / 4): the producer refills a slot for K-block group G at step 4G, after the consumer
  //    released step 4G - S, and the group G - slots it held was last read at step 4(G - slots) + 3 <= 4G - S.
  //  - By cp.async (any K): stage s's K block goes to slot s / 4, column s % 4 (ceil(S / 4) slots: the
  //    4 bytes per row per stage of v2).
  // v3 gave every stage a whole slot (16 B per row), which cost m64n56 a stage (14 -> 13) and m128n96 one
  // (7 -> 6); the stage count is now the cp.async layout's (v2's), and a kernel whose TMA ring does not fit
  // beside its stages (m128n96) takes its scales by cp.async.
  static constexpr int kSaSlotBytes = BM * 16, kSbSlotBytes = 128;
  static constexpr int cp_slots(int s) { return (s + 3) / 4; }
  static constexpr int tma_slots(int s) { return (s + 6) / 4; }
  static constexpr int smem_for(int s, bool tma, int d_units) {
    return s * (kABytes + kBBytes) + kMathWG * d_bytes_per_wg(d_units) + kRedBytes + (tma ? tma_slots(s) : cp_slots(s)) * (kSaSlotBytes + kSbSlotBytes) +
           s * 16 + 16 + 1024;  // + barriers (and the split-K pair's two), + alignment slack
  }
  static constexpr int stages_fit(int d_units) {
    int best = 0;
    for (int s = 1; s <= 16; ++s)
      if (smem_for(s, false, d_units) <= kSmemLimit) best = s;
    return best;
  }
  // D chunks staged per pass: all of the warpgroup's (one buffer per wave), or, where that buys a stage, one wave's
  // (BM 256 x BN 112: 4 stages instead of 3), or with DEEP one chunk (BM 256 x BN 128: 4 stages instead of 3, for
  // four store passes per tile), each pass waiting until the TMA store of the previous one has read its buffer.
  static constexpr int pick_d_units() {
    int best = kWaves * kDChunks, best_s = stages_fit(best);
    if (kWaves > 1 && stages_fit(kDChunks) > best_s) best = kDChunks, best_s = stages_fit(kDChunks);
    if (DEEP && kDChunks > 1 && stages_fit(1) > best_s) best = 1;
    return best;
  }
  static constexpr int kDUnits = pick_d_units();
  static constexpr int kDWaves = kDUnits / kDChunks;  // waves per pass; 0: one chunk per pass (DEEP)
  static constexpr int kDBytesPerWG = d_bytes_per_wg(kDUnits);
  static constexpr int kStages = stages_fit(kDUnits);
  static_assert(kStages >= 3, "tile too large for the shared-memory ring");
  static_assert(!DEEP || kStages > Traits<BM, BN, KS>::kStages, "DEEP buys no stage for this tile");
  static constexpr bool kScalesTma = smem_for(kStages, true, kDUnits) <= kSmemLimit;  // the TMA scale ring fits too
  static constexpr int kTmaSlots = tma_slots(kStages);
  static constexpr int kScaleSlots = kScalesTma ? kTmaSlots : cp_slots(kStages);  // slots in shared memory
  // Layout (offsets from the 1024-aligned base).
  static constexpr int kOffA = 0;
  static constexpr int kOffB = kOffA + kStages * kABytes;
  static constexpr int kOffD = kOffB + kStages * kBBytes;
  static constexpr int kOffRed = kOffD + kMathWG * kDBytesPerWG;
  static constexpr int kOffSa = kOffRed + kRedBytes;
  static constexpr int kOffSb = kOffSa + kScaleSlots * kSaSlotBytes;
  static constexpr int kOffBar = kOffSb + kScaleSlots * kSbSlotBytes;
  static constexpr int kOffStash = kOffBar + kStages * 16 + 16;  // the lean producer's tile state (48 B)
  static constexpr int kOffRec = kOffStash + (kRegMove ? 48 : 0);   // contiguous layout: the pass records
  static constexpr int kOffRecBar = kOffRec + kRecSlots * kRecBytes;  // and their full, then empty barriers
  static constexpr int kSmemBytes = kOffRecBar + kRecSlots * 16 + 1024;
  static_assert(kSmemBytes <= kSmemLimit && kOffSb % 128 == 0 && kOffBar % 8 == 0 && kOffRec % 16 == 0, "shared-memory layout");
};

// ---- scheduling ----

struct Tile {
  int32_t g;           // group (masked) or 0; the contiguous expert is chosen per pass
  int32_t m_block;     // within the group's rows
  int32_t n_block;
  int32_t row0;        // first row of the tile in a / d
  int32_t rows_valid;  // rows of the tile inside the group (normal: M; masked: maskedM) from row0, may be <= 0
};

// Units of work -> tiles. All 32-bit: the host keeps rows, G*N and unit counts below 2^31.
template <int BM, int BN>
struct Scheduler {
  // masked: group cursor. The unit counts are recomputed from the parameters per tile (no registers held:
  // the BM 256 producer runs at 40).
  int32_t g = 0, base = 0, g_units = -1, g_rows = 0;

  __device__ explicit Scheduler(const Params&) {}
  __device__ static int32_t units_n(const Params& p) {
    const int32_t nb = (p.n + BN - 1) / BN;
    return p.mc == kMcA ? (nb + 1) / 2 : nb;
  }
  __device__ static int32_t units_m(const Params& p) {
    const int32_t mb = (p.m + BM - 1) / BM;
    return p.mc == kMcB ? (mb + 1) / 2 : mb;
  }

  // Unit u -> this CTA's (cluster rank `rank`) tile. False once u is past the last unit.
  __device__ bool get(const Params& p, int32_t u, uint32_t rank, Tile& t, bool report) {
    int32_t um, un;
    if (p.kind == Fp8GemmKind::Masked) {
      for (;;) {
        if (g >= p.groups) return false;
        if (g_units < 0) {
          int32_t mm = __ldg(p.masked_m + g);
          if (mm < 0 || mm > p.m) {
            if (report) diag_report(p.diag, kDiagMaskedM, mm, static_cast<int64_t>(p.m) + 1);
            mm = 0;
          }
          g_rows = mm;
          g_units = (mm + BM - 1) / BM * units_n(p);
        }
        if (u < base + g_units) break;
        base += g_units;
        ++g;
        g_units = -1;
      }
      const int32_t local = u - base, mbg = (g_rows + BM - 1) / BM;
      un = local / mbg;
      um = local % mbg;
      t.g = g;
      t.m_block = um;
      t.n_block = p.mc == kMcA ? un * 2 + static_cast<int32_t>(rank) : un;
      t.row0 = g * p.m + um * BM;
      t.rows_valid = g_rows - um * BM;
    } else {
      const int32_t un_count = units_n(p), band_units = kBand * units_m(p);
      if (u >= band_units / kBand * un_count) return false;
      const int32_t band = u / band_units, within = u % band_units;
      const int32_t width = min(kBand, un_count - band * kBand);
      um = within / width;
      un = band * kBand + within % width;
      t.g = 0;  // (a split-K pair: both CTAs take the same tile)
      t.m_block = p.mc == kMcB ? um * 2 + static_cast<int32_t>(rank) : um;
      t.n_block = p.mc == kMcA ? un * 2 + static_cast<int32_t>(rank) : un;
      t.row0 = t.m_block * BM;
      t.rows_valid = p.m - t.row0;
    }
    return true;
  }
};

// Contiguous layout: the expert of row `row` (-1: a padding row, past the rows, or a bad index, reported).
__device__ __forceinline__ int32_t row_expert(const Params& p, int32_t row, bool report) {
  int32_t e = row < p.m ? __ldg(p.m_indices + row) : -1;
  if (e != -1 && (e < 0 || e >= p.groups)) {
    if (report) diag_report(p.diag, kDiagGroupedGemmIndices, e, p.groups);
    e = -1;
  }
  return e;
}

// Contiguous layout: the smallest expert above `prev` among the rows [row0, row0 + BM) (INT_MAX if none), the
// rows read one after the other (no registers held). One warp; every lane gets it. (The BM 64 producer's walk:
// see Traits::kProducerReadsRecords.)
template <int BM>
__device__ __forceinline__ int32_t expert_after(const Params& p, int32_t row0, int32_t prev) {
  const int32_t lane = static_cast<int32_t>(threadIdx.x % 32);
  int32_t best = INT_MAX;
#pragma unroll 1
  for (int j = 0; j < BM / 32; ++j) {
    const int32_t e = row_expert(p, row0 + 32 * j + lane, false);
    if (e > prev && e < best) best = e;
  }
  return __reduce_min_sync(0xffffffffu, best);
}

// Rows [0, valid) as WORDS mask words.
template <int WORDS>
__device__ __forceinline__ void rows_mask(int32_t valid, uint32_t* mask) {
#pragma unroll
  for (int j = 0; j < WORDS; ++j) {
    const int32_t lo = valid - 32 * j;
    mask[j] = lo >= 32 ? 0xffffffffu : lo <= 0 ? 0u : ((1u << lo) - 1u);
  }
}

// ---- the kernel ----

// Calls f(std::integral_constant<int, first_hi>) for the runtime first_hi of a BN-wide tile: tiles start at
// multiples of BN, so k * gcd(BN, 128) columns into a 128-column B-scale block, and first_hi = (128 - that) / 8.
// One compare per candidate, once per tile.
template <int BN, class F, int... I>
__device__ __forceinline__ void with_first_hi_seq(int first_hi, F& f, std::integer_sequence<int, I...>) {
  constexpr int g = scale_block_gcd(BN);
  bool done = false;
  ((done = done || (first_hi == (128 - I * g) / 8 ? (f(std::integral_constant<int, (128 - I * g) / 8>{}), true) : false)), ...);
}
template <int BN, class F>
__device__ __forceinline__ void with_first_hi(int first_hi, F& f) {
  with_first_hi_seq<BN>(first_hi, f, std::make_integer_sequence<int, 128 / scale_block_gcd(BN)>{});
}

__device__ __forceinline__ float ld_shared_f32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
  return v;
}

__device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t ld_shared_u32(uint32_t addr) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void st_shared_u32x4(uint32_t addr, int32_t a, int32_t b, int32_t c, int32_t d) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" ::"r"(addr), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}
__device__ __forceinline__ int4 ld_shared_u32x4(uint32_t addr) {
  int4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
  return v;
}

// `next` (another K block follows in the pass) known at run time (bool) or at compile time (std::true_type /
// std::false_type: the K loops that peel the pass's last K block off, Traits::kPeelLast).
__device__ __forceinline__ bool as_bool(bool b) { return b; }
template <bool B>
__device__ __forceinline__ constexpr bool as_bool(std::integral_constant<bool, B>) { return B; }

// One K block's 4 WGMMAs m64nBNk32 into P (D = A * B, then += for k32 steps 2-4), committed as one group: the
// descriptors of A's and B's 128-byte rows advance 32 bytes (2 units of 16) per step. The operand fences keep
// the compiler from touching P across the asynchronous WGMMAs.
template <int BN>
__device__ __forceinline__ void wgmma_k_block(float (&P)[BN / 2], uint64_t da, uint64_t db) {
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(P[i]);
  ptx::wgmma_fence();
#pragma unroll
  for (int k = 0; k < 4; ++k) ptx::WgmmaE4M3<BN>::mma(P, da + 2 * k, db + 2 * k, k > 0);
  ptx::wgmma_commit();
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(P[i]);
}

// The record warp (Traits::kRecWarp): walks this CTA's units as the producer does. Contiguous layout: writes each
// tile's pass records (see kRecSlots), up to kRecSlots ahead of their last reader. Grouped layouts: reports bad
// maskedM / mIndices values (the other roles do not carry the reporting code; the BM 256 producer runs at 40
// registers, as does this warp there).
template <int BM, int BN>
__device__ __forceinline__ void write_pass_records(const Params& p, uint32_t rec, uint32_t rec_bar, uint32_t rank, int32_t cluster_id, int32_t num_clusters) {
  if (p.kind == Fp8GemmKind::Normal) return;
  const int32_t lane = static_cast<int32_t>(threadIdx.x % 32);
  Scheduler<BM, BN> sched(p);
  int32_t slot = 0;
  uint32_t phase = 0;
  for (int32_t u = cluster_id;; u += num_clusters) {
    Tile t;
    if (!sched.get(p, u, rank, t, lane == 0)) break;
    if (p.kind != Fp8GemmKind::Contiguous) continue;
    // The experts of the tile's rows, all loaded at once (one memory round trip per tile). Every row is checked
    // (and a bad index reported) once: by the first CTA of the M block's first unit.
    int32_t e[BM / 32];
#pragma unroll
    for (int j = 0; j < BM / 32; ++j) e[j] = row_expert(p, t.row0 + 32 * j + lane, t.n_block == 0 && rank == 0);
    auto first_above = [&](int32_t prev) {  // the smallest expert above `prev` among the rows (INT_MAX: none)
      int32_t best = INT_MAX;
#pragma unroll
      for (int j = 0; j < BM / 32; ++j)
        if (e[j] > prev && e[j] < best) best = e[j];
      return __reduce_min_sync(0xffffffffu, best);
    };
    int32_t g = first_above(-1);
    for (;;) {
      const uint32_t r = rec + slot * kRecBytes, full = rec_bar + slot * 8;
      ptx::mbarrier_wait_parity(full + kRecSlots * 8, phase ^ 1);  // the slot's `empty` barrier
#pragma unroll
      for (int j = 0; j < BM / 32; ++j) {
        const uint32_t w = __ballot_sync(0xffffffffu, e[j] == g);  // (no row's expert is INT_MAX)
        if (lane == 0) st_shared_u32(r + 16 + 4 * j, w);
      }
      const int32_t next = g == INT_MAX ? INT_MAX : first_above(g);
      if (lane == 0) {
        st_shared_u32x4(r, g, next == INT_MAX ? 1 : 0, 0, 0);
        ptx::mbarrier_arrive_if(full, true);  // release: the record's stores are seen by whoever waits on `full`
      }
      if (++slot == kRecSlots) slot = 0, phase ^= 1;
      if (next == INT_MAX) break;
      g = next;
    }
  }
}

// A producer's read of pass record n (see kRecSlots): the expert (INT_MAX: no pass) and whether it is the tile's
// last pass; the slot is given back at once (the math warpgroups give it back too, after the epilogue's row mask).
__device__ __forceinline__ int32_t take_record(uint32_t rec, uint32_t bar_rec, uint32_t n, bool& last) {
  const uint32_t slot = n % kRecSlots, r = rec + slot * kRecBytes;
  ptx::mbarrier_wait_parity(bar_rec + slot * 8, (n / kRecSlots) & 1);
  const int32_t g = static_cast<int32_t>(ld_shared_u32(r));
  last = ld_shared_u32(r + 4) != 0;
  __syncwarp();
  ptx::mbarrier_arrive_if(bar_rec + (kRecSlots + slot) * 8, threadIdx.x % 32 == 0);
  return g;
}

// A pass's loads, the same for each of its K blocks (both producers work it out once per pass): the A and B rows
// this CTA issues (-1: none; a pair issues its half of the multicast tile), the bytes each K block brings (both
// halves where they lie inside the tensors: boxes wholly past the M or N edge are not loaded, and the barrier
// expects only the bytes requested; both CTAs of a pair compute the same), and the scale boxes of every 4th K
// block: rows [row0, row0 + BM) of the A scales, rows nb0, nb0 + 1 of the group's B scales (-1: past the tensor).
struct IssuePlan {
  int32_t a_row, b_row, bytes, scale_bytes, sa_row, sb_row;
};
template <int BM, int BN, class T>
__device__ __forceinline__ IssuePlan issue_plan(const Params& p, int32_t row0, int32_t g, int32_t n_block, uint32_t rank) {
  const int32_t b_rows = p.groups * p.n, b_row = g * p.n + n_block * BN, sb_row = g * p.nb_count + (n_block * BN) / 128;
  IssuePlan q{-1, -1, 0, 0, -1, -1};
  if (p.mc == kMcA) {
    q.bytes += row0 < p.rows_total ? T::kABytes / 2 : 0;
    q.bytes += row0 + BM / 2 < p.rows_total ? T::kABytes / 2 : 0;
    const int32_t half_row = row0 + static_cast<int32_t>(rank) * (BM / 2);
    q.a_row = half_row < p.rows_total ? half_row : -1;
  } else {
    q.bytes += row0 < p.rows_total ? T::kABytes : 0;
    q.a_row = row0 < p.rows_total ? row0 : -1;
  }
  if (p.mc == kMcB) {
    q.bytes += b_row < b_rows ? T::kBBytes / 2 : 0;
    q.bytes += b_row + BN / 2 < b_rows ? T::kBBytes / 2 : 0;
    const int32_t half_row = b_row + static_cast<int32_t>(rank) * (BN / 2);
    q.b_row = half_row < b_rows ? half_row : -1;
  } else {
    q.bytes += b_row < b_rows ? T::kBBytes : 0;
    q.b_row = b_row < b_rows ? b_row : -1;
  }
  const bool sa_box = row0 < p.rows_total, sb_box = sb_row < p.groups * p.nb_count;
  q.scale_bytes = (sa_box ? T::kSaSlotBytes : 0) + (sb_box ? 32 : 0);
  q.sa_row = sa_box ? row0 : -1;
  q.sb_row = sb_box ? sb_row : -1;
  return q;
}

// One K block's loads of a plan into `stage` (the elected thread): A and B first, then, every 4th K block, the
// scale boxes into slot `sslot` (K blocks [kb, kb + 4): the box starts 16-byte aligned, an unaligned start faults).
template <class T>
__device__ __forceinline__ void issue_k_block(const IssuePlan& q, const Params& p, const CUtensorMap* tm_a, const CUtensorMap* tm_b,
                                              const CUtensorMap* tm_sa, const CUtensorMap* tm_sb, uint32_t smem, uint32_t full,
                                              int32_t stage, int32_t sslot, int32_t kb, bool scales_now, uint32_t rank) {
  ptx::mbarrier_arrive_expect_tx(full, static_cast<uint32_t>(q.bytes + (scales_now ? q.scale_bytes : 0)));
  const uint32_t a_dst = smem + T::kOffA + stage * T::kABytes, b_dst = smem + T::kOffB + stage * T::kBBytes;
  if (q.a_row >= 0) {
    if (p.mc == kMcA) ptx::tma_load_2d_multicast(a_dst + rank * (T::kABytes / 2), tm_a, full, kb * 128, q.a_row, 0x3);
    else ptx::tma_load_2d(a_dst, tm_a, full, kb * 128, q.a_row);
  }
  if (q.b_row >= 0) {
    if (p.mc == kMcB) ptx::tma_load_2d_multicast(b_dst + rank * (T::kBBytes / 2), tm_b, full, kb * 128, q.b_row, 0x3);
    else ptx::tma_load_2d(b_dst, tm_b, full, kb * 128, q.b_row);
  }
  if (scales_now) {
    if (q.sa_row >= 0) ptx::tma_load_2d(smem + T::kOffSa + sslot * T::kSaSlotBytes, tm_sa, full, kb, q.sa_row);
    if (q.sb_row >= 0) ptx::tma_load_2d(smem + T::kOffSb + sslot * T::kSbSlotBytes, tm_sb, full, kb, q.sb_row);
  }
}

// The producer of the kernels that move registers (BM 256, m128n160), which runs at setmaxnreg's 40 registers.
// Same protocol as the producer in the kernel below (see there for the why of each step), but the tile's state
// (row, group, column block, the scheduler's cursor) waits in a small stash in shared memory through the K loop,
// so nothing else is hoisted into registers for the whole loop; the scale copy loop is not unrolled. Each pass's
// issue plan (rows to load, bytes, scale boxes: six registers) is worked out once: when a stage is released the
// producer only issues, the big A / B loads first. (Working it out at every K block put ~40 instructions and their
// branches between a stage's release and its refill; the producer fell behind and the math warps waited on
// stages: with the plan, 1-7% fewer cycles, bench/NOTES.md, "v14".)
template <int BM, int BN, bool DEEP>
__device__ __forceinline__ void produce_lean(const CUtensorMap* tm_a, const CUtensorMap* tm_b, const CUtensorMap* tm_sa, const CUtensorMap* tm_sb,
                                             const Params& p, uint32_t smem, uint32_t rank, int32_t cluster_id, int32_t num_clusters, bool scales_tma,
                                             uint64_t* tr) {
  using T = Traits<BM, BN, 1, DEEP>;
  constexpr int S = T::kStages;
  const int32_t lane = static_cast<int32_t>(threadIdx.x % 32);
  // [0] the scheduler's cursor, [16] unit, last pass, row0, group, [32] n_block, records read
  const uint32_t stash = smem + T::kOffStash;
  Scheduler<BM, BN> sched(p);
  int32_t stage = 0, sslot = T::kTmaSlots - 1, tstep = 0;
  uint32_t phase = 0, recs = 0;
  for (int32_t u = cluster_id;; u += num_clusters) {
    Tile t;
    if (!sched.get(p, u, rank, t, false)) break;  // bad indices are reported by the record warp
    for (;;) {  // passes over the tile: one, or (contiguous) one per expert among its rows
      int32_t g = t.g, last = 1;
      if (p.kind == Fp8GemmKind::Contiguous) {
        bool l;
        g = take_record(smem + T::kOffRec, smem + T::kOffRecBar, recs++, l);
        last = l ? 1 : 0;
        if (g == INT_MAX) break;
      }
      st_shared_u32x4(stash, sched.g, sched.base, sched.g_units, sched.g_rows);
      st_shared_u32x4(stash + 16, u, last, t.row0, g);
      st_shared_u32x4(stash + 32, t.n_block, static_cast<int32_t>(recs), 0, 0);
      const IssuePlan plan = issue_plan<BM, BN, T>(p, t.row0, g, t.n_block, rank);
#pragma unroll 1
      for (int32_t kb = 0; kb < p.kb_count; ++kb) {
        const uint32_t full = smem + T::kOffBar + stage * 8;
        const bool scales_now = scales_tma && (kb & 3) == 0;
        if (scales_now) sslot = sslot + 1 == T::kTmaSlots ? 0 : sslot + 1;
        // trace builds (CTA 0): the step's empty wait starts, and below, its loads are issued (bench/gemm_trace.ts)
        const bool stamp = DSK_FP8_GEMM_TRACE_BUILD && tr && lane == 0 && tstep < kTraceSteps;
        if (stamp) tr[kTraceProd + 2 * tstep] = clock64();
        ptx::mbarrier_wait_parity(full + S * 8, phase ^ 1);  // this stage's `empty` barrier
        if (ptx::elect_one()) {
          issue_k_block<T>(plan, p, tm_a, tm_b, tm_sa, tm_sb, smem, full, stage, sslot, kb, scales_now, rank);
        }
        if (!scales_tma) {
          // One 4-byte cp.async per row into slot stage / 4, column stage % 4.
          const int4 tile = ld_shared_u32x4(stash + 16);  // .z = row0, .w = group
          const int32_t row0 = tile.z, g_ = tile.w, n_block = ld_shared_u32x4(stash + 32).x;
          const uint32_t sa_dst = smem + T::kOffSa + (stage >> 2) * T::kSaSlotBytes + lane * 16 + (stage & 3) * 4;
#pragma unroll 1
          for (int32_t j = 0; j < BM / 32; ++j) {
            const int32_t r = row0 + lane + 32 * j;
            const bool ok = r < p.rows_total;
            ptx::cp_async_4(sa_dst + 512 * j, ok ? p.sa + static_cast<int64_t>(r) * p.kb_count + kb : p.sa, ok);
          }
          if (lane < 2) {
            const int32_t nb = (n_block * BN) / 128 + lane;
            const bool ok = nb < p.nb_count;
            ptx::cp_async_4(smem + T::kOffSb + (stage >> 2) * T::kSbSlotBytes + lane * 16 + (stage & 3) * 4,
                            ok ? p.sb + (static_cast<int64_t>(g_) * p.nb_count + nb) * p.kb_count + kb : p.sb, ok);
          }
          ptx::cp_async_mbarrier_arrive_noinc(full);
        }
        if (stamp) tr[kTraceProd + 2 * tstep + 1] = clock64();
        ++tstep;
        if (++stage == S) stage = 0, phase ^= 1;
      }
      const int4 c = ld_shared_u32x4(stash), up = ld_shared_u32x4(stash + 16), nr = ld_shared_u32x4(stash + 32);
      sched.g = c.x, sched.base = c.y, sched.g_units = c.z, sched.g_rows = c.w;
      u = up.x, t.row0 = up.z;
      t.n_block = nr.x, recs = static_cast<uint32_t>(nr.y);
      if (up.y) break;
    }
  }
}

template <int BM, int BN, int KS, bool DEEP>
__global__ void __launch_bounds__(Traits<BM, BN, KS, DEEP>::kThreads, 1)
    fp8_gemm_sm90_kernel(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
                         const __grid_constant__ CUtensorMap tm_d, const __grid_constant__ CUtensorMap tm_sa,
                         const __grid_constant__ CUtensorMap tm_sb, const Params p) {
  using T = Traits<BM, BN, KS, DEEP>;
  constexpr int S = T::kStages;
  extern __shared__ uint8_t smem_raw[];
  // Everything in shared memory is addressed by 32-bit shared-window addresses from one 1024-aligned base.
  const uint32_t smem = (ptx::smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sm_a = smem + T::kOffA, sm_b = smem + T::kOffB, sm_d = smem + T::kOffD;
  const uint32_t sm_sa = smem + T::kOffSa, sm_sb = smem + T::kOffSb;
  const uint32_t bar_full = smem + T::kOffBar, bar_empty = bar_full + S * 8;  // S full barriers, then S empty ones
  const uint32_t bar_red = bar_empty + S * 8;  // split-K pairs: partial sums written (+0) / read (+8)
  const uint32_t rec = smem + T::kOffRec, bar_rec = smem + T::kOffRecBar;  // contiguous: pass records, full / empty

  const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t wg = __shfl_sync(0xffffffffu, warp / 4, 0);  // warp-uniform to the compiler: descriptors in uniform registers
  const uint32_t cs = p.mc == kMcNone ? 1u : 2u;
  const uint32_t rank = cs == 2 ? ptx::cluster_ctarank() : 0u;
  const bool mcast = p.mc == kMcA || p.mc == kMcB;  // a pair whose stages are filled by multicast (released in both)
  // This CTA's K blocks [kb_begin, kb_end): all, or its half of a split-K pair (split at a multiple of 4 K blocks
  // when the scales come by TMA, 4 K blocks per box).
  const int32_t kb_half = KS == 2 ? (p.scales_tma ? (p.kb_count / 2) & ~3 : p.kb_count / 2) : 0;
  const int32_t kb_begin = KS == 2 && rank == 1 ? kb_half : 0, kb_end = KS == 2 && rank == 0 ? kb_half : p.kb_count;
  // The host launches K >= 128 only, so (KS 1) every pass has a K block. Saying so drops a K = 0 path for which ptxas
  // zeroed the accumulators a second time per tile (125 CS2R per tile in m256n128's SASS against 64): 1-1.6% fewer
  // cycles for the 3-stage BM 256 kernels and m256n88, but 1-3% more for m128n136.mcA, m64n32 and the deep BM 256
  // ring, whose code it reshuffled otherwise (bench/NOTES.md, "v12"). So only there.
  if constexpr (KS == 1 && BM == 256 && !DEEP) __builtin_assume(kb_end > kb_begin);
  const int32_t cluster_id = static_cast<int32_t>(blockIdx.x / cs), num_clusters = static_cast<int32_t>(gridDim.x / cs);
  const int32_t KB = p.kb_count;
  // The trace is compiled in only with DSK_FP8_GEMM_TRACE_BUILD=1 (its per-step checks are not free); m128n128
  // has no register to spare for it (ptxas: 40 bytes of spills): traced kernels are the others.
  constexpr bool kTraced = DSK_FP8_GEMM_TRACE_BUILD && !(BM == 128 && BN == 128);
  // Scales by TMA only where the kernel's ring fits (the host checks the same; this drops the path otherwise).
  const bool scales_tma = T::kScalesTma && p.scales_tma != 0;
  uint64_t* const tr = kTraced && blockIdx.x == 0 ? p.trace : nullptr;
  if (tr && threadIdx.x == 0) tr[0] = clock64(), tr[1] = ptx::globaltimer_ns();

  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      // lane 0's arrive.expect_tx (+ 32 lanes' cp.async arrivals when the scales come by cp.async)
      ptx::mbarrier_init(bar_full + s * 8, scales_tma ? 1 : 33);
      ptx::mbarrier_init(bar_empty + s * 8, T::kMathWG * 4 * 2);  // two arrivals per math warp (see peer_empty)
    }
    ptx::mbarrier_init(bar_red, 128);      // split-K: the second CTA's 128 math threads have written their partial sums
    ptx::mbarrier_init(bar_red + 8, 128);  // split-K: the first CTA's have read them
    for (int s = 0; s < kRecSlots; ++s) {
      ptx::mbarrier_init(bar_rec + s * 8, 1);                                // the record warp's lane 0
      ptx::mbarrier_init(bar_rec + (kRecSlots + s) * 8, T::kMathWG * 4 + (T::kProducerReadsRecords ? 1 : 0));  // math warps, producer
    }
    ptx::fence_mbarrier_init();
  }
  if (warp == T::kMathWG * 4 && lane == 0) {
    ptx::tma_prefetch_map(&tm_a);
    ptx::tma_prefetch_map(&tm_b);
    ptx::tma_prefetch_map(&tm_d);
    if (scales_tma) {
      ptx::tma_prefetch_map(&tm_sa);
      ptx::tma_prefetch_map(&tm_sb);
    }
  }
  if (cs == 2) ptx::cluster_sync();
  else __syncthreads();

  // Set by the first thread of a math warpgroup once it has a TMA store in flight; the wait for it sits after
  // the role branches (inside the math branch it made ptxas drop setmaxnreg's raised budget: spills).
  bool store_pending = false;
  if (wg == T::kMathWG) {
    // ---------------- producer warpgroup ----------------
    if constexpr (T::kRegMove) {
      ptx::setmaxnreg_dec<kProducerRegs>();
      if (warp == T::kMathWG * 4) produce_lean<BM, BN, DEEP>(&tm_a, &tm_b, &tm_sa, &tm_sb, p, smem, rank, cluster_id, num_clusters, scales_tma, tr);
      else if (warp == T::kRecWarp) write_pass_records<BM, BN>(p, rec, bar_rec, rank, cluster_id, num_clusters);
    } else if (warp == T::kRecWarp) {
      write_pass_records<BM, BN>(p, rec, bar_rec, rank, cluster_id, num_clusters);
    } else if (warp == T::kMathWG * 4) {
      Scheduler<BM, BN> sched(p);
      int32_t stage = 0, sslot = T::kTmaSlots - 1, tstep = 0;
      uint32_t phase = 0, recs = 0;  // recs: contiguous pass records read
      for (int32_t u = cluster_id;; u += num_clusters) {
        Tile t;
        if (!sched.get(p, u, rank, t, false)) break;  // bad indices are reported by the record warp
        int32_t prev = -1;  // (BM 64, contiguous: the expert of the previous pass)
        for (;;) {  // passes over the tile: one, or (contiguous) one per expert among its rows
          int32_t g = t.g;
          bool last_pass = true;
          if (p.kind == Fp8GemmKind::Contiguous && T::kProducerReadsRecords) {
            g = take_record(rec, bar_rec, recs++, last_pass);
            if (g == INT_MAX) break;
          } else if (p.kind == Fp8GemmKind::Contiguous) {
            g = expert_after<BM>(p, t.row0, prev);
            if (g == INT_MAX) break;
            last_pass = expert_after<BM>(p, t.row0, g) == INT_MAX;
            prev = g;
          }
          const int32_t nb0 = (t.n_block * BN) / 128;
          // This lane's A-scale rows and B-scale block, as element offsets (the K block added per step).
          const float* sa_src = p.sa + static_cast<int64_t>(t.row0 + static_cast<int32_t>(lane)) * KB;
          const int32_t sa_rows_left = p.rows_total - t.row0 - static_cast<int32_t>(lane);
          const int32_t nb = nb0 + static_cast<int32_t>(lane & 1);
          const float* sb_src = p.sb + (static_cast<int64_t>(g) * p.nb_count + (nb < p.nb_count ? nb : 0)) * KB;
          const IssuePlan plan = issue_plan<BM, BN, T>(p, t.row0, g, t.n_block, rank);
          for (int32_t kb = kb_begin; kb < kb_end; ++kb) {
            const uint32_t full = bar_full + stage * 8;
            const bool scales_now = scales_tma && (kb & 3) == 0;
            if (scales_now) sslot = sslot + 1 == T::kTmaSlots ? 0 : sslot + 1;
            ptx::mbarrier_wait_parity(bar_empty + stage * 8, phase ^ 1);
            const bool stamp = tr && lane == 0 && tstep < kTraceSteps;
            if (stamp) tr[kTraceProd + 2 * tstep] = clock64();
            if (ptx::elect_one()) {
              issue_k_block<T>(plan, p, &tm_a, &tm_b, &tm_sa, &tm_sb, smem, full, stage, sslot, kb, scales_now, rank);
            }
            if (!scales_tma) {
              // One 4-byte cp.async per row into slot stage / 4, column stage % 4, completing on the full barrier
              // with the lane's arrival.
              const uint32_t col = (stage & 3) * 4;
              const uint32_t sa_dst = sm_sa + (stage >> 2) * T::kSaSlotBytes + lane * 16 + col;
#pragma unroll
              for (int j = 0; j < BM / 32; ++j) {
                const bool ok = 32 * j < sa_rows_left;
                ptx::cp_async_4(sa_dst + 512 * j, ok ? sa_src + 32 * j * KB + kb : p.sa, ok);
              }
              if (lane < 2) ptx::cp_async_4(sm_sb + (stage >> 2) * T::kSbSlotBytes + lane * 16 + col, sb_src + kb, nb < p.nb_count);
              ptx::cp_async_mbarrier_arrive_noinc(full);
            }
            if (stamp) tr[kTraceProd + 2 * tstep + 1] = clock64();
            ++tstep;
            if (++stage == S) stage = 0, phase ^= 1;
          }
          if (last_pass) break;
        }
      }
    }
  } else {
    // ---------------- math warpgroups ----------------
    if constexpr (T::kRegMove) ptx::setmaxnreg_inc<kMathRegs>();
    // A math warp releases a stage with two arrivals: on this CTA's `empty` barrier and on the peer's, which is this
    // CTA's own where the stages are not multicast (a launch without clusters is a cluster of one). No branch, and the
    // peer's address is mapped once: with `if (mcast)` ptxas re-derived mcast from the parameters and mapped the
    // address again at every K block, on the path from a K block's last WGMMAs to the next one's (v10, ncu source
    // counters: ~2% of the math warps' stall samples there).
    const uint32_t peer_empty = ptx::map_shared_cluster(bar_empty, mcast ? rank ^ 1u : rank);
    // The probe build's skip of the promotion (DSK_FP8_GEMM_PROBE): a run-time test, so ptxas keeps the WGMMAs.
    const bool probe_skip = DSK_FP8_GEMM_PROBE && p.trace == nullptr;
    constexpr int W = T::kWaves;
    const uint32_t wt = threadIdx.x % 128;  // thread within the warpgroup
    const uint32_t w = wt / 32;             // warp within the warpgroup
    const int wg_rows = static_cast<int>(wg) * T::kWGRows;  // this warpgroup's first row in the tile
    const int row_lo = wg_rows + static_cast<int>(w * 16 + lane / 4);  // wave j: rows row_lo + 64 j, +8
    float acc[W][BN / 2], part[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) part[i] = 0.0f;
    Scheduler<BM, BN> sched(p);
    int32_t stage = 0, sslot = T::kTmaSlots - 1, tstep = 0, astep = 0, ttile = 0;
    uint32_t red_phase = 0, red_count = 0;  // split-K pairs: the phase of the partial-sum exchange, and exchanges done
    uint32_t phase = 0;
    uint32_t recs = 0;  // contiguous: pass records read (slot recs % kRecSlots)
    // After the warp's reads of the record: release its slot to the record warp.
    auto release_record = [&]() {
      __syncwarp();
      ptx::mbarrier_arrive_if(bar_rec + (kRecSlots + recs % kRecSlots) * 8, lane == 0);
      ++recs;
    };
    // Descriptors of stage 0 (this warpgroup's first wave); a stage, a wave and a k32 step add to the start
    // address field (16-byte units; shared addresses stay below 2^18, so the field never carries).
    const uint64_t desc_a0 = ptx::wgmma_desc_k128b(sm_a + wg_rows * 128), desc_b0 = ptx::wgmma_desc_k128b(sm_b);
    // the first math thread of CTA 0 stamps (the pointer re-read from the parameters: no register held)
#define DSK_TRM (kTraced && p.trace != nullptr && threadIdx.x == 0 && blockIdx.x == 0 ? p.trace : nullptr)

    for (int32_t u = cluster_id;; u += num_clusters) {
      Tile t;
      if (!sched.get(p, u, rank, t, false)) break;
      for (;;) {  // passes over the tile: one, or (contiguous) one per expert among its rows
        bool last_pass = true;
        if (p.kind == Fp8GemmKind::Contiguous) {
          ptx::mbarrier_wait_parity(bar_rec + (recs % kRecSlots) * 8, (recs / kRecSlots) & 1);
          if (ld_shared_u32(rec + (recs % kRecSlots) * kRecBytes) == static_cast<uint32_t>(INT_MAX)) {  // no row has an expert
            release_record();
            break;
          }
        }
        // n8 blocks from `first_hi` on take the tile's second B scale block.
        const int first_hi = (128 - (t.n_block * BN) % 128) / 8;
#pragma unroll
        for (int j = 0; j < W; ++j)
#pragma unroll
          for (int i = 0; i < BN / 2; ++i) acc[j][i] = 0.0f;

        if constexpr (T::kDualPart) {
          // BM 64 (v5b): two partial accumulators, taken by K block parity. K block kb's WGMMAs are left in
          // flight while the warpgroup retires kb - 1 (wait_group 1, release its stage, promote it), so the
          // promotion overlaps the tensor core and the next full wait overlaps kb's WGMMAs. Each product and
          // the order of the promotions (acc += partial * aScale * bScale, K block by K block) are unchanged.
          float part2[BN / 2];
#pragma unroll
          for (int i = 0; i < BN / 2; ++i) part2[i] = 0.0f;
          float q00 = 0.0f, q01 = 0.0f, q10 = 0.0f, q11 = 0.0f;  // the scales of the K block in flight
          uint32_t fly_stage = 0;                                // and its stage
          auto issue = [&](float(&P)[BN / 2], uint32_t st) {
            wgmma_k_block<BN>(P, desc_a0 + st * (T::kABytes >> 4), desc_b0 + st * (T::kBBytes >> 4));
          };
          auto retire = [&](float(&P)[BN / 2], bool last) {  // after the wait_group that completed P's K block
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(P[i]);
            ptx::mbarrier_arrive_if(bar_empty + fly_stage * 8, lane == 0);
            ptx::mbarrier_arrive_mapped_if(peer_empty + fly_stage * 8, lane == 0);
            if (probe_skip && !last) return;
#pragma unroll
            for (int i = 0; i < BN / 8; ++i) {
              const bool hi = !T::kOneSb && i >= first_hi;
              const float s_lo = hi ? q01 : q00, s_hi = hi ? q11 : q10;
              acc[0][4 * i + 0] += P[4 * i + 0] * s_lo;
              acc[0][4 * i + 1] += P[4 * i + 1] * s_lo;
              acc[0][4 * i + 2] += P[4 * i + 2] * s_hi;
              acc[0][4 * i + 3] += P[4 * i + 3] * s_hi;
            }
          };
          for (int32_t kb = 0; kb < KB; ++kb) {
            ptx::mbarrier_wait_parity(bar_full + stage * 8, phase);
            if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep] = clock64();
            // the scales are read here, before the stage (and, by TMA, its slot) can be released
            if (scales_tma && (kb & 3) == 0) sslot = sslot + 1 == T::kTmaSlots ? 0 : sslot + 1;
            const int32_t slot = scales_tma ? sslot : stage >> 2, col = scales_tma ? (kb & 3) : (stage & 3);
            const uint32_t sa_stage = sm_sa + slot * T::kSaSlotBytes + col * 4, sb_stage = sm_sb + slot * T::kSbSlotBytes + col * 4;
            const float sa_lo = ld_shared_f32(sa_stage + row_lo * 16), sa_hi = ld_shared_f32(sa_stage + (row_lo + 8) * 16);
            const float sb0 = ld_shared_f32(sb_stage), sb1 = T::kOneSb ? 0.0f : ld_shared_f32(sb_stage + 16);
            if (kb & 1) issue(part2, stage);
            else issue(part, stage);
            if (kb > 0) {
              ptx::wgmma_wait<1>();
              if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 1] = clock64();
              if (kb & 1) retire(part, false);
              else retire(part2, false);
            }
            if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 2] = clock64();
            q00 = sa_lo * sb0, q10 = sa_hi * sb0;
            if constexpr (!T::kOneSb) q01 = sa_lo * sb1, q11 = sa_hi * sb1;
            fly_stage = stage;
            ++tstep;
            if (++stage == S) stage = 0, phase ^= 1;
          }
          ptx::wgmma_wait<0>();
          if ((KB - 1) & 1) retire(part2, true);
          else retire(part, true);
        } else {
          // v7: K block kb's chain is its WGMMAs -> wait -> release -> promotion -> kb + 1's WGMMAs. The descriptors
          // are the tile's base + a stage offset (uniform registers). While kb's (last wave of) WGMMAs run, kb + 1's
          // stage, scale addresses and descriptors are worked out (v8: the descriptors too; ptxas had put them between
          // the promotion and the next WGMMAs: m256n128s4 4% fewer cycles) and its full barrier tested, not waited on:
          // if it has landed its scales are read there too; if not, it is waited for after kb's release, so a late
          // stage never holds back the release of the one before it (3-stage rings, memory-bound shapes), and its
          // scales are read before kb's promotion (read right before the next WGMMAs, they stalled them).
          // bench/NOTES.md, "v7". (BM 256 x BN 128 waits there instead: Traits::kPeelLast, v16.)
          uint32_t cur = 0, sa_next = 0, sb_next = 0;  // stage and scale addresses of the K block issued next
          uint64_t da_next = 0, db_next = 0;           // and its WGMMA descriptors
          float sa_lo0 = 0.0f, sa_hi0 = 0.0f, sb0 = 0.0f, sb1 = 0.0f;  // its wave-0 row scales and B scales
          auto locate = [&](int32_t kb) {  // K block kb is in `stage`: its addresses; advance the ring
            if (scales_tma && (kb & 3) == 0) sslot = sslot + 1 == T::kTmaSlots ? 0 : sslot + 1;
            const int32_t slot = scales_tma ? sslot : stage >> 2, col = scales_tma ? (kb & 3) : (stage & 3);
            sa_next = sm_sa + slot * T::kSaSlotBytes + col * 4;
            sb_next = sm_sb + slot * T::kSbSlotBytes + col * 4;
            cur = stage;
            da_next = desc_a0 + stage * (T::kABytes >> 4);
            db_next = desc_b0 + stage * (T::kBBytes >> 4);
          };
          auto read_scales = [&]() {  // after the full wait of `cur`
            if (DSK_TRM && astep < kTraceSteps) DSK_TRM[kTraceCons + 3 * astep] = clock64();
            ++astep;
            sa_lo0 = ld_shared_f32(sa_next + row_lo * 16);
            sa_hi0 = ld_shared_f32(sa_next + (row_lo + 8) * 16);
            sb0 = ld_shared_f32(sb_next);
            sb1 = T::kOneSb ? 0.0f : ld_shared_f32(sb_next + 16);
            if (++stage == S) stage = 0, phase ^= 1;
          };
          if (kb_begin < kb_end) {
            locate(kb_begin);
            ptx::mbarrier_wait_parity(bar_full + stage * 8, phase);
            read_scales();
          }
          // acc (one wave's accumulator) += P * scales. Each element is one FFMA. v6: where BN divides 128 the tile lies
          // in one B-scale block (first_hi >= BN / 8), so `hi` is false at compile time: no select, no second product or
          // load. (Pinning the four products for the straddling BNs, to select between registers instead of sa x
          // select(sb0, sb1) per n8 block, measured 3% slower for m256n112: ptxas kept the predicates in registers.)
          // fh: std::integral_constant<int, FH>, FH >= 0 the tile's first_hi known at compile time (T::kFirstHiSwitch).
          auto promote = [&](float(&A)[BN / 2], const float(&P)[BN / 2], float a_lo, float a_hi, float c0, float c1, auto fh) {
            constexpr int FH = decltype(fh)::value;
            const float s00 = a_lo * c0, s01 = a_lo * c1, s10 = a_hi * c0, s11 = a_hi * c1;
#pragma unroll
            for (int i = 0; i < BN / 8; ++i) {
              const bool hi = !T::kOneSb && i >= (FH >= 0 ? FH : first_hi);
              const float s_lo = hi ? s01 : s00, s_hi = hi ? s11 : s10;
              A[4 * i + 0] += P[4 * i + 0] * s_lo;
              A[4 * i + 1] += P[4 * i + 1] * s_lo;
              A[4 * i + 2] += P[4 * i + 2] * s_hi;
              A[4 * i + 3] += P[4 * i + 3] * s_hi;
            }
          };
          // The stage release: see peer_empty.
          auto release = [&](uint32_t st) {
            ptx::mbarrier_arrive_if(bar_empty + st * 8, lane == 0);
            ptx::mbarrier_arrive_mapped_if(peer_empty + st * 8, lane == 0);
          };
          using RuntimeFirstHi = std::integral_constant<int, -1>;
          // next: kb + 1 < kb_end (bool, or a compile-time tag); wait_c: std::bool_constant, the look-ahead waits (kPeelLast)
          auto k_block = [&](int32_t kb, auto next_c, auto fh, auto wait_c) {
            const bool next = as_bool(next_c);
            // This K block's stage and scales (every shared read of the stage comes before its release).
            const uint32_t st = cur, sa_stage = sa_next;
            const float cb0 = sb0, cb1 = sb1;
            float sa_lo[W], sa_hi[W];
            sa_lo[0] = sa_lo0, sa_hi[0] = sa_hi0;
            const uint64_t da = da_next, db = db_next;
            bool landed = false;
#pragma unroll
            for (int j = 0; j < W; ++j) {
              if (j > 0) {  // a later wave's row scales when it starts: 2 registers fewer through wave 0 of BM 256
                sa_lo[j] = ld_shared_f32(sa_stage + (row_lo + 64 * j) * 16);
                sa_hi[j] = ld_shared_f32(sa_stage + (row_lo + 64 * j + 8) * 16);
              }
              wgmma_k_block<BN>(part, da + j * (64 * 128 >> 4), db);
              if (j == W - 1 && next) {
                locate(kb + 1);
                if constexpr (decltype(wait_c)::value) {  // see kPeelLast: wait here (a late stage holds the release back)
                  ptx::mbarrier_wait_parity(bar_full + stage * 8, phase);
                  landed = true;
                } else {
                  landed = ptx::mbarrier_test_wait_parity(bar_full + stage * 8, phase);
                }
                if (landed) read_scales();
              }
              ptx::wgmma_wait<0>();
#pragma unroll
              for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(part[i]);
              if (j == W - 1) {
                if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 1] = clock64();
                release(st);
                if (next && !landed) {
                  ptx::mbarrier_wait_parity(bar_full + stage * 8, phase);
                  read_scales();
                }
              }
              if (probe_skip && next) continue;
              promote(acc[j], part, sa_lo[j], sa_hi[j], cb0, cb1, fh);
            }
            if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 2] = clock64();
            ++tstep;
          };
          // BM 256 x BN <= 96 (kWaveParts, v11): both waves' WGMMAs are issued at once, each into its own partial
          // accumulator; wave 0 is promoted while wave 1's WGMMAs run, wave 1 after the stage is released. With one
          // partial, each wave's WGMMAs waited behind the previous wave's promotion, which at n88 (44 cycles of tensor
          // work per WGMMA) takes about as long as the other warpgroup's WGMMAs, and the tensor pipe idled between them.
          // Measured (bench/NOTES.md, "v11"): m256n88 6% fewer cycles at 4096x2112x7168. Issuing the next K block's wave
          // 0 before wave 1's promotion as well (across K blocks) was 5% slower than this.
          float part2[BN / 2];  // (dropped by the compiler in the other kernels, which never read it)
#pragma unroll
          for (int i = 0; i < BN / 2; ++i) part2[i] = 0.0f;
          auto k_block_waves = [&](int32_t kb, bool next) {
            static_assert(!T::kWaveParts || W == 2, "two waves");
            const uint32_t st = cur, sa_stage = sa_next;
            const float cb0 = sb0, cb1 = sb1, a_lo0 = sa_lo0, a_hi0 = sa_hi0;
            const float a_lo1 = ld_shared_f32(sa_stage + (row_lo + 64) * 16), a_hi1 = ld_shared_f32(sa_stage + (row_lo + 72) * 16);
            const uint64_t da = da_next, db = db_next;
            wgmma_k_block<BN>(part, da, db);
            wgmma_k_block<BN>(part2, da + (64 * 128 >> 4), db);
            bool landed = false;
            if (next) {
              locate(kb + 1);
              landed = ptx::mbarrier_test_wait_parity(bar_full + stage * 8, phase);
              if (landed) read_scales();
            }
            ptx::wgmma_wait<1>();  // wave 0 done, wave 1 in flight
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(part[i]);
            if (!probe_skip || !next) promote(acc[0], part, a_lo0, a_hi0, cb0, cb1, RuntimeFirstHi{});
            ptx::wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) ptx::wgmma_fence_operand(part2[i]);
            if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 1] = clock64();
            release(st);
            if (next && !landed) {
              ptx::mbarrier_wait_parity(bar_full + stage * 8, phase);
              read_scales();
            }
            if (!probe_skip || !next) promote(acc[W - 1], part2, a_lo1, a_hi1, cb0, cb1, RuntimeFirstHi{});
            if (DSK_TRM && tstep < kTraceSteps) DSK_TRM[kTraceCons + 3 * tstep + 2] = clock64();
            ++tstep;
          };
          // v9: a 4-stage ring whose passes are whole rounds of 4 K blocks (K / 128 % 4 == 0, so every pass starts at
          // stage 0 and a round's scales share one TMA slot) runs the K blocks 4 at a time, each with its stage known
          // at compile time: barrier, descriptor and scale addresses become immediates (DeepGEMM unrolls its K loop
          // by its stage count the same way). At a round's start stage == 1 (the next block's) and cur == 0 already;
          // saying so lets the compiler fold them. Measured (bench/NOTES.md, "v9"): m256n128s4 2% faster
          // (4096x7168x16384 808 -> 789 us), but the B-scale-straddling m256n88 / m256n112 2-4% slower: only where
          // BN divides 128.
          if (T::kStages == 4 && T::kOneSb && scales_tma && kb_begin == 0 && kb_end % 4 == 0) {
            if constexpr (T::kPeelLast) {
              for (int32_t r = 0; r + 1 < kb_end / 4; ++r) {
                stage = 1, cur = 0;
#pragma unroll
                for (int u = 0; u < 4; ++u) k_block(4 * r + u, std::true_type{}, RuntimeFirstHi{}, std::true_type{});
              }
              stage = 1, cur = 0;
#pragma unroll
              for (int u = 0; u < 3; ++u) k_block(kb_end - 4 + u, std::true_type{}, RuntimeFirstHi{}, std::true_type{});
              k_block(kb_end - 1, std::false_type{}, RuntimeFirstHi{}, std::true_type{});
            } else {
              for (int32_t r = 0; r < kb_end / 4; ++r) {
                stage = 1, cur = 0;
#pragma unroll
                for (int u = 0; u < 4; ++u) k_block(4 * r + u, u < 3 || 4 * r + 4 < kb_end, RuntimeFirstHi{}, std::false_type{});
              }
            }
          } else if constexpr (T::kWaveParts) {
            for (int32_t kb = kb_begin; kb < kb_end; ++kb) k_block_waves(kb, kb + 1 < kb_end);
          } else if constexpr (T::kFirstHiSwitch) {
            auto run = [&](auto fh) {
              for (int32_t kb = kb_begin; kb < kb_end; ++kb) k_block(kb, kb + 1 < kb_end, fh, std::false_type{});
            };
            with_first_hi<BN>(first_hi, run);
          } else if constexpr (T::kPeelLast) {
            auto peeled = [&](auto wait_c) {
              for (int32_t kb = kb_begin; kb + 1 < kb_end; ++kb) k_block(kb, std::true_type{}, RuntimeFirstHi{}, wait_c);
              k_block(kb_end - 1, std::false_type{}, RuntimeFirstHi{}, wait_c);
            };
            if (p.wait_next) peeled(std::true_type{});
            else peeled(std::false_type{});
          } else {
            for (int32_t kb = kb_begin; kb < kb_end; ++kb) k_block(kb, kb + 1 < kb_end, RuntimeFirstHi{}, std::false_type{});
          }
        }
        if constexpr (KS == 2) {
          // Split-K pair: the second CTA writes its partial sums into the first's buffer (thread t of each holds
          // the same elements), the first adds them to its own and stores the tile. Two mbarriers, both released and
          // acquired at cluster scope: written (the remote stores are seen) and read (the first's loads of the buffer
          // are done before the second overwrites it with the next tile's sums). The "read" handshake is skipped where
          // no next tile follows (a pair's first tile finds the buffer free; its last needs no arrive): its release
          // fence cost a single-tile pair ~0.35 us (v8).
          const uint32_t red = smem + T::kOffRed + wt * 4;
          if (rank == 1) {
            if (red_count > 0) ptx::mbarrier_wait_parity_acquire_cluster(bar_red + 8, red_phase ^ 1);  // the previous sums were read
            const uint32_t remote = ptx::map_shared_cluster(red, 0);
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) ptx::st_shared_cluster_f32(remote + i * 512, acc[0][i]);
            ptx::mbarrier_arrive_release_cluster(ptx::map_shared_cluster(bar_red, 0));
          } else {
            ptx::mbarrier_wait_parity_acquire_cluster(bar_red, red_phase);
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) acc[0][i] += ld_shared_f32(red + i * 512);
            // Another exchange follows if this unit has another pass (contiguous) or the pair another unit.
            Scheduler<BM, BN> ahead = sched;
            Tile nt;
            if (p.kind == Fp8GemmKind::Contiguous || ahead.get(p, u + num_clusters, rank, nt, false))
              ptx::mbarrier_arrive_release_cluster(ptx::map_shared_cluster(bar_red + 8, 1));
          }
          red_phase ^= 1;
          ++red_count;
        }
        if (DSK_TRM && ttile < kTraceTiles) DSK_TRM[kTraceTile + 2 * ttile] = clock64();

        // ---- epilogue: this warpgroup's rows, one 64-row wave at a time ----
        // the mask words of this warpgroup's rows (2 per 64-row wave)
        uint32_t wmask[2 * W];
        if (p.kind == Fp8GemmKind::Contiguous) {
          const uint32_t r = rec + (recs % kRecSlots) * kRecBytes;
#pragma unroll
          for (int q = 0; q < 2 * W; ++q) wmask[q] = ld_shared_u32(r + 16 + 4 * (wg_rows / 32 + q));
          last_pass = ld_shared_u32(r + 4) != 0;
          release_record();
        } else {
          rows_mask<2 * W>(t.rows_valid - wg_rows, wmask);
        }
        uint32_t any = 0;
#pragma unroll
        for (int q = 0; q < 2 * W; ++q) any |= wmask[q];
        if (static_cast<int64_t>(t.n_block) * BN < p.n && any != 0 && (KS == 1 || rank == 0)) {
          const uint32_t d_wg = sm_d + wg * T::kDBytesPerWG;
          // d_addr(slot, row, col): slot = the wave's D buffer within the warpgroup's (DEEP: 0, col within the chunk)
          auto d_addr = [&](int slot, int row, int col) -> uint32_t {
            const int chunk = col / T::kDChunkCols, granule = (col % T::kDChunkCols) / 8;
            int swz = 0;
            if constexpr (T::kDSwizzle == 128) swz = row & 7;
            if constexpr (T::kDSwizzle == 64) swz = (row >> 1) & 3;
            if constexpr (T::kDSwizzle == 32) swz = (row >> 2) & 1;
            return d_wg + slot * T::kDWaveBytes + chunk * T::kDChunkBytes + row * (T::kDChunkCols * 2) + ((granule ^ swz) * 16);
          };
          auto pack = [](float lo, float hi) -> uint32_t {
            __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
            return *reinterpret_cast<uint32_t*>(&v);
          };
          const int mj = static_cast<int>(lane / 8);
          const int st_row = static_cast<int>(w * 16) + (mj & 1) * 8 + static_cast<int>(lane & 7);
          const int32_t col0 = t.n_block * BN;
          if constexpr (T::kDWaves == 0) {
            // DEEP (v8): one 64 x CW chunk at a time through a single chunk buffer (4 passes for BM 256 x BN 128), each
            // waiting until the previous chunk's TMA store has read the buffer. (Writing the other kernels' passes the
            // same way, per chunk, measured 2-7% slower for them: they keep the per-wave passes below.)
            constexpr int CI = T::kDChunkCols / 8;
            static_assert(CI % 2 == 0, "whole stmatrix x4 blocks per chunk");
#pragma unroll
            for (int q = 0; q < W * T::kDChunks; ++q) {
              const int j = q / T::kDChunks, c = q % T::kDChunks;
              if (wt == 0 && store_pending) ptx::tma_store_wait_read<0>();
              ptx::bar_sync(1 + wg, 128);
#pragma unroll
              for (int i = c * CI; i < (c + 1) * CI; i += 2)
                ptx::stmatrix_x4(d_addr(0, st_row, 8 * (i - c * CI + (mj >> 1))), pack(acc[j][4 * i], acc[j][4 * i + 1]), pack(acc[j][4 * i + 2], acc[j][4 * i + 3]),
                                 pack(acc[j][4 * i + 4], acc[j][4 * i + 5]), pack(acc[j][4 * i + 6], acc[j][4 * i + 7]));
              ptx::fence_proxy_async_smem();
              ptx::bar_sync(1 + wg, 128);
              const uint32_t m_lo = wmask[2 * j], m_hi = wmask[2 * j + 1];
              if ((m_lo | m_hi) == 0) continue;
              const int32_t wave_row0 = t.row0 + wg_rows + 64 * j;
              if (p.kind == Fp8GemmKind::Normal || (m_lo == 0xffffffffu && m_hi == 0xffffffffu)) {
                if (wt == 0) {
                  ptx::tma_store_2d(&tm_d, d_wg, col0 + c * T::kDChunkCols, wave_row0);
                  ptx::tma_store_commit();
                  store_pending = true;
                }
              } else {
                for (int idx = static_cast<int>(wt); idx < 64 * CI; idx += 128) {  // row-masked 16-byte granules
                  const int r = idx / CI, jj = idx % CI;
                  const int32_t col = col0 + c * T::kDChunkCols + jj * 8;
                  if (!(((r < 32 ? m_lo : m_hi) >> (r % 32)) & 1u) || col >= p.n) continue;
                  *reinterpret_cast<int4*>(p.d + static_cast<int64_t>(wave_row0 + r) * p.n + col) = ld_shared_u32x4(d_addr(0, r, jj * 8));
                }
              }
            }
          } else {
            // One pass per fill of the D buffers: all waves at once, or (kDWaves == 1) one wave after the other,
            // each pass waiting until the previous pass's TMA store has read the buffer.
#pragma unroll
            for (int j0 = 0; j0 < W; j0 += T::kDWaves) {
              if (wt == 0 && store_pending) ptx::tma_store_wait_read<0>();
              ptx::bar_sync(1 + wg, 128);
#pragma unroll
              for (int j = j0; j < j0 + T::kDWaves; ++j) {
#pragma unroll
                for (int i = 0; i + 1 < BN / 8; i += 2) {
                  ptx::stmatrix_x4(d_addr(j - j0, st_row, 8 * (i + (mj >> 1))), pack(acc[j][4 * i], acc[j][4 * i + 1]), pack(acc[j][4 * i + 2], acc[j][4 * i + 3]),
                                   pack(acc[j][4 * i + 4], acc[j][4 * i + 5]), pack(acc[j][4 * i + 6], acc[j][4 * i + 7]));
                }
                if constexpr ((BN / 8) % 2 == 1) {
                  constexpr int i = BN / 8 - 1;
                  ptx::stmatrix_x2(d_addr(j - j0, st_row, 8 * i), pack(acc[j][4 * i], acc[j][4 * i + 1]), pack(acc[j][4 * i + 2], acc[j][4 * i + 3]));
                }
              }
              ptx::fence_proxy_async_smem();
              ptx::bar_sync(1 + wg, 128);
              bool stored = false;
#pragma unroll
              for (int j = j0; j < j0 + T::kDWaves; ++j) {
                const uint32_t m_lo = wmask[2 * j], m_hi = wmask[2 * j + 1];
                if ((m_lo | m_hi) == 0) continue;
                const int32_t wave_row0 = t.row0 + wg_rows + 64 * j;
                const bool full_tile = p.kind == Fp8GemmKind::Normal || (m_lo == 0xffffffffu && m_hi == 0xffffffffu);
                if (full_tile) {
                  if (wt == 0) {
#pragma unroll
                    for (int c = 0; c < T::kDChunks; ++c)
                      ptx::tma_store_2d(&tm_d, d_wg + (j - j0) * T::kDWaveBytes + c * T::kDChunkBytes, col0 + c * T::kDChunkCols, wave_row0);
                    stored = true;
                  }
                } else {
                  // Row-masked copy: 16-byte granules of the rows this pass owns.
                  constexpr int kGranules = BN / 8;
                  for (int idx = static_cast<int>(wt); idx < 64 * kGranules; idx += 128) {
                    const int r = idx / kGranules, jj = idx % kGranules;
                    const uint32_t bits = r < 32 ? m_lo : m_hi;
                    const int32_t col = col0 + jj * 8;
                    if (!((bits >> (r % 32)) & 1u) || col >= p.n) continue;
                    uint4 v;
                    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(d_addr(j - j0, r, jj * 8)));
                    *reinterpret_cast<uint4*>(p.d + static_cast<int64_t>(wave_row0 + r) * p.n + col) = v;
                  }
                }
              }
              if (stored) {
                ptx::tma_store_commit();
                store_pending = true;
              }
            }
          }
        }
        if (DSK_TRM && ttile < kTraceTiles) DSK_TRM[kTraceTile + 2 * ttile + 1] = clock64();
        ++ttile;
        if (last_pass) break;
      }
    }
    if (DSK_TRM) DSK_TRM[2] = clock64(), DSK_TRM[3] = ptx::globaltimer_ns();
#undef DSK_TRM
  }
  if (store_pending) ptx::tma_store_wait<0>();  // only a math warpgroup's first thread has stores in flight


  // The cluster peer may still multicast into this CTA's ring or arrive on its barriers until it is done.
  if (cs == 2) ptx::cluster_sync();
}

// ---- host side ----

namespace {

[[noreturn]] void fail(const std::string& msg, cudaError_t e = cudaErrorUnknown) {
  throw Error(ErrorKind::Cuda, "fp8 GEMM (sm90)", msg, cudaGetErrorName(e));
}

struct KernelInfo {
  int bm, bn, ks, stages, threads, smem;  // ks 2: runs only as a split-K pair
  bool deep;        // the DEEP variant (one more stage, D staged a chunk at a time): named m<BM>n<BN>s<stages>
  bool scales_tma;  // its TMA scale ring fits beside the stages
  const void* fn;
  cudaError_t (*launch)(dim3 grid, int cs, cudaStream_t s, const CUtensorMap* maps, const Params&);
};

template <int BM, int BN, int KS, bool DEEP>
cudaError_t launch_kernel(dim3 grid, int cs, cudaStream_t stream, const CUtensorMap* maps, const Params& p) {
  using T = Traits<BM, BN, KS, DEEP>;
  ClusterLaunch l(grid, dim3(T::kThreads), T::kSmemBytes, stream, cs);
  return cudaLaunchKernelEx(&l.cfg, fp8_gemm_sm90_kernel<BM, BN, KS, DEEP>, maps[0], maps[1], maps[2], maps[3], maps[4], p);
}

template <int BM, int BN, int KS = 1, bool DEEP = false>
KernelInfo kernel_info() {
  using T = Traits<BM, BN, KS, DEEP>;
  return {BM, BN, KS, T::kStages, T::kThreads, T::kSmemBytes, DEEP, T::kScalesTma, reinterpret_cast<const void*>(&fp8_gemm_sm90_kernel<BM, BN, KS, DEEP>),
          &launch_kernel<BM, BN, KS, DEEP>};
}

// The curated kernels (template instantiations). Keep this list short: each one is a full compile.
const std::vector<KernelInfo>& kernels() {
  static const std::vector<KernelInfo> k = {
      kernel_info<64, 16>(),  kernel_info<64, 32>(),   kernel_info<64, 56>(),   kernel_info<64, 96>(),
      kernel_info<64, 128>(), kernel_info<128, 96>(), kernel_info<128, 112>(), kernel_info<128, 128>(), kernel_info<128, 160>(),
      kernel_info<256, 88>(), kernel_info<256, 112>(), kernel_info<256, 128>(), kernel_info<256, 128, 1, true>(), kernel_info<64, 32, 2>(), kernel_info<64, 64, 2>(),
  };
  return k;
}

struct Config {
  int kernel;
  int mc;
  std::string name;
};

const std::vector<Config>& configs() {
  static const std::vector<Config> c = [] {
    std::vector<Config> out;
    const auto& ks = kernels();
    for (int i = 0; i < static_cast<int>(ks.size()); ++i)
      for (int mc : {kMcNone, kMcA, kMcB, kSplitK}) {
        if ((mc == kSplitK) != (ks[i].ks == 2)) continue;  // split-K kernels run only as pairs, the others never
        if (mc == kMcB && (ks[i].bn / 2) % 8 != 0) continue;  // half a B tile must be whole 8-row swizzle atoms
        std::string name = "m" + std::to_string(ks[i].bm) + "n" + std::to_string(ks[i].bn) + (ks[i].deep ? "s" + std::to_string(ks[i].stages) : "") +
                           (mc == kMcA ? ".mcA" : mc == kMcB ? ".mcB" : mc == kSplitK ? ".splitK" : "");
        out.push_back({i, mc, name});
      }
    return out;
  }();
  return c;
}

// A configuration as run for this problem: grouped layouts pair CTAs along N only (a pair along M could
// straddle two experts or groups), so their .mcB becomes .mcA.
int effective_config(const Fp8GemmProblem& p, int cfg) {
  const auto& cs = configs();
  if (cfg < 0 || p.kind == Fp8GemmKind::Normal || cs[cfg].mc != kMcB) return cfg;
  for (int i = 0; i < static_cast<int>(cs.size()); ++i)
    if (cs[i].kernel == cs[cfg].kernel && cs[i].mc == kMcA) return i;
  return cfg;
}

// cuTensorMapEncodeTiled through the runtime's driver entry point: no link against libcuda.
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                   const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_fn() {
  static EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// A 2D tensor map over a row-major [rows, cols] matrix, box [box_rows, box_cols].
bool make_map(CUtensorMap& map, CUtensorMapDataType type, int elem_bytes, const void* base, uint64_t rows, uint64_t cols,
              uint32_t box_rows, uint32_t box_cols, CUtensorMapSwizzle swizzle) {
  EncodeTiledFn enc = encode_fn();
  if (!enc) return false;
  const cuuint64_t dims[2] = {cols, rows};
  const cuuint64_t strides[1] = {cols * static_cast<uint64_t>(elem_bytes)};
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t estr[2] = {1, 1};
  return enc(&map, type, 2, const_cast<void*>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

CUtensorMapSwizzle swizzle_of(int bytes) {
  switch (bytes) {
    case 128: return CU_TENSOR_MAP_SWIZZLE_128B;
    case 64: return CU_TENSOR_MAP_SWIZZLE_64B;
    case 32: return CU_TENSOR_MAP_SWIZZLE_32B;
    default: return CU_TENSOR_MAP_SWIZZLE_NONE;
  }
}

int d_swizzle(int bn) { return (bn * 2) % 128 == 0 ? 128 : (bn * 2) % 64 == 0 ? 64 : (bn * 2) % 32 == 0 ? 32 : 0; }

// Per device and kernel: the smem attribute set, and how many clusters (of 1 and of 2) fit at once.
struct DeviceState {
  std::mutex mu;
  bool ready[16] = {};
  int max_clusters[16][3] = {};
};
DeviceState& device_state(int device) {
  static DeviceState states[64];
  return states[device & 63];
}

bool prepare(int device, int k, int sm_count, int& max1, int& max2) {
  DeviceState& st = device_state(device);
  std::lock_guard<std::mutex> l(st.mu);
  const KernelInfo& ki = kernels()[k];
  if (!st.ready[k]) {
    if (cudaFuncSetAttribute(ki.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, ki.smem) != cudaSuccess) return false;
    for (int cs = 1; cs <= 2; ++cs) {
      ClusterLaunch l(dim3(static_cast<unsigned>(sm_count / cs * cs)), dim3(ki.threads), ki.smem, nullptr, cs);
      int n = 0;
      if (cudaOccupancyMaxActiveClusters(&n, ki.fn, &l.cfg) != cudaSuccess || n <= 0) {
        cudaGetLastError();
        n = sm_count / cs;
      }
      st.max_clusters[k][cs] = n;
    }
    st.ready[k] = true;
  }
  max1 = st.max_clusters[k][1];
  max2 = st.max_clusters[k][2];
  return true;
}

// ---- the heuristic: a small cost model over the curated configurations ----
//
// Measured (v3 sweep, bench/data/fp8_gemm_h100_v3_sweep.json): one K block of one tile costs a nearly fixed
// time per kernel, almost independent of BN (the main loop is latency-bound, not tensor-bound), e.g. 0.32 us
// for m64n32 and 0.59 us for m128n128 per wave of tiles at 4096x7168x16384. So: waves of tiles over the
// clusters that fit x (K blocks x that time + a per-tile cost), floored by the DRAM time of the unique bytes
// at the ~2.2 TB/s the memory-bound shapes reach with the L2 flushed. Near-ties go to the larger BN (fewer
// tiles: the memory-bound shapes measured better with them).
double us_per_k_block(int bm, int bn) {
  // BM 256 (v4, call 2, same run as m128n128.mcA's 0.57 at 4096x7168x16384): m256n128.mcA 863 us / 7 waves /
  // 128 = 0.96 us, m256n112.mcA (4 stages) 1000 / 8 / 128 = 0.98 us per K block (+ the 3% pair gain below).
  // m256n88 (v9, DeepGEMM's tile for N = 2112 = 24 x 88): 0.90, from the sweep of call 7 (bench/NOTES.md, "v9"):
  // 4096x2112x7168 m256n88.mcA 118.4 us against m256n128s4.mcA's 126.2, both 3 waves of 56 K blocks.
  if (bm == 256) return bn <= 88 ? 0.90 : bn <= 112 ? 1.0 : 0.99;
  // BM 64 (v7 sweep, one wave): the K block's time grows with the bytes each SM loads (A's 8 KB + BN x 128 B),
  // so m64n16 over 132 SMs beat m64n32 over 66 at 64x2112x7168 (14.8 vs 15.7 us).
  if (bm == 64) return bn <= 16 ? 0.30 : bn <= 32 ? 0.32 : bn <= 56 ? 0.333 : bn <= 96 ? 0.37 : 0.40;
  // m128n128 at 0.56 (v8 sweep: 4096x2112x7168 m128n128.mcA 121 us, m256n128s4.mcA 125); v7 kept 0.59 because 0.56
  // turned the prefill's grouped GEMMs from m128n128.mcA to m128n128 (1.64 -> 1.85 ms), a DRAM-bound tie that the
  // pair now wins (estimate_us). bench/NOTES.md, "v7" and "v8".
  // BN > 128 (m128n160; v11's m128n136 before it) at 0.75: from m128n136's 1024x2112x7168 30.3 us against m256n88's
  // 35.8 (bench/NOTES.md, "v11"), which keeps m256n88.mcA at 4096 rows of N = 2112. m128n160 (v13, DeepGEMM's tile for
  // the contiguous K = 2048 shapes) took m128n136's picks at that price, each faster: 1024x2112x7168 29.7 against
  // 30.7 us, 2048 rows 58.3-59.0 against 59.0-59.5; and N = 576 at 4096 / 8192 rows (38.9 against m256n88's 40.8,
  // 62.9 against m128n128.mcA's 72.4) and N = 18432 at 64-128 rows (56.3-56.8 against m64n96's 61.2-61.8). So
  // m128n136 went. Normal layout only: see estimate_us.
  return bn <= 96 ? 0.55 : bn <= 112 ? 0.60 : bn <= 128 ? 0.56 : 0.75;
}

// loop_bound (optional): set to whether the K loops, not DRAM, bound the time (Params::wait_next).
double estimate_us(const Fp8GemmProblem& p, const Config& c, int sm_count, bool* loop_bound = nullptr) {
  const KernelInfo& ki = kernels()[c.kernel];
  const double bm = ki.bm, bn = ki.bn, K = static_cast<double>(p.k);
  const int cs = c.mc == kMcNone ? 1 : 2;
  const double rows = static_cast<double>(p.m);
  const double groups = p.kind == Fp8GemmKind::Masked ? static_cast<double>(p.groups) : 1.0;
  const double mb = std::ceil(rows / bm), nb = std::ceil(static_cast<double>(p.n) / bn);
  const double um = c.mc == kMcB ? std::ceil(mb / 2) : mb, un = c.mc == kMcA ? std::ceil(nb / 2) : nb;
  const double units = um * un * groups;
  const double clusters = std::max(1, sm_count / cs);
  const double waves = std::ceil(units / clusters);
  // Split-K pairs (v7): for a single wave of few BM 64 tiles (normal layout), where what each SM loads per K block
  // bounds the time: each CTA of the pair loads half the K blocks; + the exchange of the partial sums.
  const bool split = c.mc == kSplitK;
  if (split && (waves > 1 || p.kind != Fp8GemmKind::Normal)) return 1e30;
  // BN > 128 on the grouped layouts: m128n136 (v11), with every expert's 128 rows filled, beat m64n128.mcA by 1.1-1.6x (call 13:
  // c:256x128x4096x7168 3.9 against 5.4 ms), but in the model, where most padded 128-row segments hold a few rows
  // (decode; prefill at 1024 tokens), a BM 64 tile of padding rows only is skipped while a BM 128 tile is not: the
  // 1024-token prefill took 40.1 against 38.6 ms and batch-64 decode 2259 against 2343 tokens/s (call 14; the model's
  // run-to-run spread is 3-7%, so this is a direction, not a measurement). The heuristic does not see how full the
  // segments are, so it does not offer m128n160 there (forcing it still runs it).
  if (ki.bn > 128 && p.kind != Fp8GemmKind::Normal) return 1e30;
  // m128n160 below 64 rows: the cost model calls it a DRAM-bound tie it wins by filling more SMs, but it measured
  // 8% slower than m64n96 at 1 and 8 rows of N = 18432 (61.4 against 57.0 us; 9% faster from 64 rows on, v13).
  if (ki.bm == 128 && ki.bn > 136 && rows < 64) return 1e30;
  // A pair gains 3-4% on multi-wave shapes (the bytes each CTA loads), once its K loop is long enough to absorb the
  // two CTAs waiting on each other's releases: at K = 512 (4 K blocks per tile) m256n128 measured 146 us against
  // m256n128.mcA's 151 at 4096x32768x512 (v8 sweep, bench/NOTES.md). v9 sweep (call 13): at K = 2048 only over many
  // waves (the contiguous shapes, 54 waves: m256n128.mcA 872-886 us against m256n128's 902-916); over few it lost
  // (4096x7168x2048, 7 waves: 100.3 against 98.5 us; m:2x512x7168x2048, 2 waves: 34.7-35.2 against 33.4).
  const bool pair = c.mc == kMcA || c.mc == kMcB;
  const double mc_gain = pair && waves >= 2 && p.k >= 1024 && (p.k >= 4096 || waves >= 16) ? 0.97 : 1.0;
  // Contiguous layout: a tile runs once per expert among its rows. Segments are padded to 128 rows, so BM
  // <= 128 tiles hold one expert, but a 256-row tile holds two wherever a segment ends half-way into it:
  // about 128 * groups / M of the tiles (every tile with segments of ~128 rows, e.g. a 4096-token prefill
  // over 256 experts or any decode batch, where m256 measured 1.5x slower end to end than m128).
  const double passes = p.kind == Fp8GemmKind::Contiguous && bm > 128
                            ? 1.0 + std::min(1.0, 128.0 * static_cast<double>(p.groups) / std::max(rows, 1.0))
                            : 1.0;
  // The deep BM 256 ring (v8, same run as m256n128): 2-4% less per K block at K >= 7168, about 0.5 us more per tile
  // for its four store passes (4096x32768x512: 162 -> 178 us over 32 waves of 4 K blocks; equal at K = 2048). Since
  // v16's loop (peeled last K block, waiting look-ahead) the 3-stage kernel is the faster one over several waves: 1.3-3.9%
  // fewer cycles at K = 7168-16384 (4096x4096x7168 268.4k against 278.8k, c:4x8192x4096x7168 2057k against 2135k). In a
  // single wave the deep ring stays ahead in the bench (m:2x512x4096x7168 48.1-49.1 us against 51.6-52.0 over five
  // rounds; m:1x1024x4096x7168 swings between processes and decides nothing): bench/NOTES.md, "v17".
  const double deep = !ki.deep ? 1.0 : waves == 1 ? 0.97 : 1.03;
  const double t_unit = K / 128.0 * us_per_k_block(ki.bm, ki.bn) * deep * mc_gain * passes * (split ? 0.5 : 1.0) + 1.0 + (split ? 0.5 : 0.0) +
                        (ki.deep ? 0.6 : 0.0);
  const double all_rows = rows * groups, b_groups = p.kind == Fp8GemmKind::Normal ? 1.0 : static_cast<double>(p.groups);
  const double bytes = all_rows * K + static_cast<double>(p.n) * K * b_groups + all_rows * static_cast<double>(p.n) * 2.0;
  const double t_loop = waves * t_unit, t_dram = bytes / 2.2e12 * 1e6;
  if (loop_bound) *loop_bound = t_loop > t_dram;
  // A split-K pair only pays where the loop bounds the time: at 64x4096x7168 (DRAM-bound) m64n64.splitK measured
  // 17.6 us against m64n32's 16.1; at 64x2112x7168 and 128x2112x7168 it took 15.1 / 15.6 us down to 11.4 / 12.3.
  if (split && t_loop <= t_dram) return 1e30;
  // Where DRAM bounds the time, SMs without a tile in the last wave pull no bytes: the DRAM term grows with
  // the idle share of the waves (tiles with rows over waves x CTAs). Fitted to the same-run v2/v3 A/B
  // (lead, 2026-11-22): 64x24576x1536 m64n96 (256 tiles, 97% of 2 waves) 19.7 us beat m64n128 (192, 73%)
  // 21.3; 64x7168x16384 and 64x7168x2048 m64n56.mcA (128 CTAs) beat m64n128 (56 CTAs).
  const double util = mb * nb * groups * (split ? 2.0 : 1.0) / (waves * clusters * cs);
  // v5b: m64n128 (two partial accumulators) measured faster in a single wave of 56 CTAs than m64n56.mcA's 128
  // at 64x7168x2048 (9.9 vs 11.0 us) and 64x7168x16384 (54.1 vs 54.9): no idle-share term for it in one wave
  // (normal layout only: the grouped ones were not measured).
  const double idle = ki.bm == 64 && ki.bn == 128 && waves == 1 && p.kind == Fp8GemmKind::Normal ? 0.0 : 0.25;
  const double t = std::max(t_loop, t_dram * (1.0 + idle * (1.0 - util))) + 1.5;
  // Tie-breaks of a few percent: the larger BN (v3 sweep); in a single wave, no pair. (Up to v6 a pair won
  // there by 1-2% where the loop bounds the time; with v7's shorter K loop every pair measured 1-10% slower than
  // the same tile alone in one wave, on all 11 single-wave shapes of the sweep: bench/NOTES.md, "v7".)
  double tie = 1.0 - 0.001 * bn;
  if (waves == 1 && pair) tie *= 1.04;
  // Where DRAM bounds both, a pair and the same tile alone tie exactly; over many waves the pair measured faster
  // (the prefill's grouped GEMMs over 256 experts, 62 waves: m128n128.mcA 1.64 ms, m128n128 1.85; bench/NOTES.md,
  // "v7"). (pick_config keeps the earlier of two within 0.1%.)
  if (mc_gain < 1.0 && waves >= 4) tie *= 0.998;
  return t * tie;
}

}  // namespace

bool supports(const Fp8GemmProblem& p) {
  auto aligned = [](const void* x) { return reinterpret_cast<uintptr_t>(x) % 16 == 0; };
  if (!aligned(p.a) || !aligned(p.b) || !aligned(p.d)) return false;
  if (p.k % 128 != 0 || p.n % 8 != 0 || p.k <= 0 || p.n <= 0) return false;  // D rows need 16-byte pitch for TMA
  if (p.rows() >= (int64_t(1) << 31) || p.groups * p.n >= (int64_t(1) << 31) || p.k >= (int64_t(1) << 31)) return false;
  return encode_fn() != nullptr;
}

const std::vector<std::string>& config_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (auto& c : configs()) n.push_back(c.name);
    return n;
  }();
  return names;
}

int config_index(const std::string& name) {
  const auto& n = config_names();
  auto it = std::find(n.begin(), n.end(), name);
  return it == n.end() ? -1 : static_cast<int>(it - n.begin());
}

int pick_config(const Fp8GemmProblem& p, int sm_count) {
  const auto& cs = configs();
  int best = -1;
  double best_t = 1e300;
  for (int i = 0; i < static_cast<int>(cs.size()); ++i) {
    if (p.kind != Fp8GemmKind::Normal && cs[i].mc == kMcB) continue;
    const double t = estimate_us(p, cs[i], sm_count);
    if (t < best_t * 0.999) best_t = t, best = i;
  }
  return best;
}

int resolve_config(const Fp8GemmProblem& p, int cfg) { return effective_config(p, cfg); }

namespace {

// DSK_FP8_GEMM_TRACE=<file> (a diagnostic, bench/gemm_trace.ts): CTA 0 of each launch outside graph capture
// records clock64 stamps (kernel layout above); the launch is then synchronized and the stamps appended
// to <file> as one JSON line.
const char* trace_path() {
  static const char* path = [] {
    const char* e = std::getenv("DSK_FP8_GEMM_TRACE");
    return e && *e ? e : static_cast<const char*>(nullptr);
  }();
  return path;
}

uint64_t* trace_buffer(int device, cudaStream_t stream) {
  static uint64_t* bufs[64] = {};
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone) return nullptr;
  uint64_t*& b = bufs[device & 63];
  if (!b && cudaMalloc(&b, kTraceWords * sizeof(uint64_t)) != cudaSuccess) {
    b = nullptr;
    return nullptr;
  }
  if (cudaMemsetAsync(b, 0, kTraceWords * sizeof(uint64_t), stream) != cudaSuccess) return nullptr;
  return b;
}

void trace_dump(const char* path, const uint64_t* dev, cudaStream_t stream, const Fp8GemmProblem& p, const Config& c, const KernelInfo& ki,
                int64_t ctas) {
  std::vector<uint64_t> h(kTraceWords);
  if (cudaMemcpyAsync(h.data(), dev, h.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream) != cudaSuccess ||
      cudaStreamSynchronize(stream) != cudaSuccess)
    return;
  FILE* f = std::fopen(path, "a");
  if (!f) return;
  std::fprintf(f, "{\"kind\":%d,\"groups\":%d,\"m\":%lld,\"n\":%lld,\"k\":%lld,\"config\":\"%s\",\"stages\":%d,\"ctas\":%lld,\"prod\":%d,\"cons\":%d,\"tile\":%d,\"w\":[",
               static_cast<int>(p.kind), static_cast<int>(p.groups), static_cast<long long>(p.m), static_cast<long long>(p.n), static_cast<long long>(p.k),
               c.name.c_str(), ki.stages, static_cast<long long>(ctas), kTraceProd, kTraceCons, kTraceTile);
  for (int i = 0; i < kTraceWords; ++i) std::fprintf(f, i ? ",%llu" : "%llu", static_cast<unsigned long long>(h[i]));
  std::fprintf(f, "]}\n");
  std::fclose(f);
}

}  // namespace

void run(const Fp8GemmProblem& p, int cfg, int device, int sm_count, cudaStream_t stream) {
  cfg = effective_config(p, cfg);
  const Config& c = configs()[cfg];
  const KernelInfo& ki = kernels()[c.kernel];
  int max1 = 0, max2 = 0;
  if (!prepare(device, c.kernel, sm_count, max1, max2)) fail("cannot set the kernel's shared memory size");
  const int cs = c.mc == kMcNone ? 1 : 2;
  const int64_t rows_total = p.rows();

  CUtensorMap maps[5];  // A, B, D, A scales, B scales
  CUtensorMap &ta = maps[0], &tb = maps[1], &td = maps[2], &tsa = maps[3], &tsb = maps[4];
  const uint32_t a_box_rows = static_cast<uint32_t>(c.mc == kMcA ? ki.bm / 2 : ki.bm);
  const uint32_t b_box_rows = static_cast<uint32_t>(c.mc == kMcB ? ki.bn / 2 : ki.bn);
  const int dsw = d_swizzle(ki.bn);
  const uint32_t d_box_cols = static_cast<uint32_t>(dsw ? dsw / 2 : ki.bn);
  bool ok = make_map(ta, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, p.a, static_cast<uint64_t>(rows_total), static_cast<uint64_t>(p.k), a_box_rows, 128,
                     CU_TENSOR_MAP_SWIZZLE_128B) &&
            make_map(tb, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, p.b, static_cast<uint64_t>(p.groups * p.n), static_cast<uint64_t>(p.k), b_box_rows, 128,
                     CU_TENSOR_MAP_SWIZZLE_128B) &&
            make_map(td, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, p.d, static_cast<uint64_t>(rows_total), static_cast<uint64_t>(p.n), 64, d_box_cols,
                     swizzle_of(dsw));
  // Scales by TMA need a 16-byte row pitch (K/128 a multiple of 4) and a kernel whose TMA ring fits;
  // DSK_FP8_GEMM_SCALES=cpasync / =tma forces a path where possible (benchmark knobs).
  static const int force_scales = [] {
    const char* e = std::getenv("DSK_FP8_GEMM_SCALES");
    return !e ? 0 : std::strcmp(e, "cpasync") == 0 ? 1 : std::strcmp(e, "tma") == 0 ? 2 : 0;
  }();
  const int64_t kb_count = p.k / 128, nb_count = (p.n + 127) / 128;
  // Measured (v3, same run): TMA scales win where K/128 % 8 == 0 (K = 2048, 7168, 16384: up to 12%) and at
  // K = 512 with many rows; cp.async wins at K = 1536 (K/128 = 12: 0.5-7%) and at K = 512 with one M block.
  // BM 256 (v4 call 1): its cp.async path (8 rows per lane per K block from the lean producer) made m256n128.mcA
  // 4096x24576x1536 (K/128 = 12) 1.2x slower than m128n128.mcA; it takes TMA scales wherever K/128 % 4 == 0.
  const bool tma_wins = kb_count % 8 == 0 || (kb_count == 4 && rows_total >= 1024) || ki.bm == 256;
  const bool scales_tma = ki.scales_tma && kb_count % 4 == 0 && (force_scales == 2 || (tma_wins && force_scales == 0)) && reinterpret_cast<uintptr_t>(p.sa) % 16 == 0 &&
                          reinterpret_cast<uintptr_t>(p.sb) % 16 == 0;
  if (ok && scales_tma)
    ok = make_map(tsa, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, p.sa, static_cast<uint64_t>(rows_total), static_cast<uint64_t>(kb_count), static_cast<uint32_t>(ki.bm),
                  4, CU_TENSOR_MAP_SWIZZLE_NONE) &&
         make_map(tsb, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, p.sb, static_cast<uint64_t>(p.groups * nb_count), static_cast<uint64_t>(kb_count), 2, 4,
                  CU_TENSOR_MAP_SWIZZLE_NONE);
  else
    tsa = ta, tsb = tb;  // unused
  if (!ok) fail("cuTensorMapEncodeTiled failed");

  Params kp;
  kp.kind = p.kind;
  kp.mc = c.mc;
  kp.sa = p.sa;
  kp.sb = p.sb;
  kp.m_indices = p.m_indices;
  kp.masked_m = p.masked_m;
  kp.d = p.d;
  kp.diag = p.diag;
  kp.m = p.m;
  kp.n = p.n;
  kp.groups = p.groups;
  kp.rows_total = rows_total;
  kp.kb_count = static_cast<int32_t>(p.k / 128);
  kp.nb_count = static_cast<int32_t>(nb_count);
  kp.scales_tma = scales_tma ? 1 : 0;
  bool loop_bound = false;
  estimate_us(p, c, sm_count, &loop_bound);
  kp.wait_next = loop_bound ? 1 : 0;
  const char* tpath = trace_path();
  if (tpath && !DSK_FP8_GEMM_TRACE_BUILD) {
    static std::once_flag warned;
    std::call_once(warned, [] { std::fprintf(stderr, "DSK_FP8_GEMM_TRACE: the addon was built without DSK_FP8_GEMM_TRACE_BUILD=1; no trace\n"); });
  }
  kp.trace = tpath && DSK_FP8_GEMM_TRACE_BUILD ? trace_buffer(device, stream) : nullptr;

  int64_t clusters = cs == 2 ? max2 : max1;
  // Units of work (masked: at most, every group full); the launch needs no more clusters than units.
  const int64_t mb = (p.m + ki.bm - 1) / ki.bm, nb = (p.n + ki.bn - 1) / ki.bn;
  const int64_t units = (c.mc == kMcB ? (mb + 1) / 2 : mb) * (c.mc == kMcA ? (nb + 1) / 2 : nb) * (p.kind == Fp8GemmKind::Masked ? p.groups : 1);
  if (p.kind != Fp8GemmKind::Masked) {
    // The fewest clusters that still take the units in the same number of waves (e.g. 896 BM 256 tiles: 7 waves
    // on 128 SMs as on 132): the same critical path, with fewer SMs drawing power (the clock holds higher) and
    // pulling from L2. DeepGEMM sizes its grid the same way.
    clusters = std::min<int64_t>(clusters, units);
    if (clusters > 0) clusters = (units + (units + clusters - 1) / clusters - 1) / ((units + clusters - 1) / clusters);
  }
  if (clusters < 1) clusters = 1;
  cudaError_t e = ki.launch(dim3(static_cast<unsigned>(clusters * cs)), cs, stream, maps, kp);
  if (e != cudaSuccess) fail(std::string("launch failed: ") + cudaGetErrorString(e), e);
  if (kp.trace) trace_dump(tpath, kp.trace, stream, p, c, ki, clusters * cs);
}

}  // namespace dsk::cuda::sm90
