// Expert-parallel communication: where everything lives in a rank's peer buffer, and the per-op plan.
// Shared by the host (allocation, CPU reference) and the kernels, so both agree on every offset.
//
// Each rank allocates one buffer (cudaMalloc), exports it with CUDA IPC, and maps every peer's. The
// buffer holds, at the same offsets on every rank:
//   counters  u64, one per 64-byte line:
//     tail_in[s][c]   how many slots rank s has published into my ring (s -> me, channel c); written by s
//     head_in[d][c]   how many slots rank d has consumed from its ring (me -> d, c); written by d
//     tail_own[d][c]  my own copy of what I have published to d (persistent across ops)
//     head_own[s][c]  my own copy of what I have consumed from s
//   notify    two parities x W slots of the count exchange (one written by each rank), and W flags
//   rings     ring[s][c]: `slots` slots of `slot_bytes`, written by rank s, read by me
// Counters only grow (u64), so consecutive ops need no reset: an op's receiver consumes exactly what the
// same op's sender published, in FIFO order, as long as every rank issues the same sequence of ops.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace dsk {

constexpr int kEpMaxWorld = 16;       // named barriers (16 per CTA) bound the groups of a block
constexpr int kEpMaxTopk = 16;        // routing entries per token
constexpr int kEpAlign = 128;         // expert segments are padded to this many rows
constexpr int kEpNotifyHeader = 8;    // ints before the counts in a notify slot
constexpr int64_t kEpCounterStride = 64;  // bytes between counters

struct EpGeometry {
  int32_t world = 1, max_channels = 1, slots = 2, max_experts = 1;
  int64_t slot_bytes = 16;
  int64_t off_tail_in = 0, off_head_in = 0, off_tail_own = 0, off_head_own = 0;
  int64_t off_notify_flag = 0, off_notify_data = 0, notify_stride = 0, off_rings = 0, total = 0;
};

DSK_HD int64_t ep_round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

DSK_HD EpGeometry ep_geometry(int32_t world, int32_t max_channels, int32_t slots, int64_t slot_bytes, int32_t max_experts) {
  EpGeometry g;
  g.world = world;
  g.max_channels = max_channels;
  g.slots = slots;
  g.slot_bytes = ep_round_up(slot_bytes, 128);
  g.max_experts = max_experts;
  const int64_t counters = int64_t(world) * max_channels * kEpCounterStride;
  int64_t off = 0;
  g.off_tail_in = off; off += counters;
  g.off_head_in = off; off += counters;
  g.off_tail_own = off; off += counters;
  g.off_head_own = off; off += counters;
  g.off_notify_flag = off; off += int64_t(world) * kEpCounterStride;
  g.notify_stride = ep_round_up(int64_t(kEpNotifyHeader + max_experts + world * max_channels) * 4, 128);
  g.off_notify_data = off; off += 2 * int64_t(world) * g.notify_stride;
  off = ep_round_up(off, 4096);
  g.off_rings = off; off += int64_t(world) * max_channels * slots * g.slot_bytes;
  g.total = off;
  return g;
}

// Byte offsets of one counter / ring slot inside a buffer.
DSK_HD int64_t ep_counter(int64_t region, const EpGeometry& g, int peer, int channel) {
  return region + (int64_t(peer) * g.max_channels + channel) * kEpCounterStride;
}
DSK_HD int64_t ep_ring_slot(const EpGeometry& g, int src, int channel, int64_t slot) {
  return g.off_rings + ((int64_t(src) * g.max_channels + channel) * g.slots + slot) * g.slot_bytes;
}
DSK_HD int64_t ep_notify_slot(const EpGeometry& g, int parity, int src) {
  return g.off_notify_data + (int64_t(parity) * g.world + src) * g.notify_stride;
}

// Token range [begin, end) of channel c when T tokens are split over C channels.
DSK_HD int64_t ep_channel_begin(int64_t T, int C, int c) { return T * c / C; }

// A dispatch slot: payload (H * elt bytes), then fp8 scales (H/128 f32), then K rows (i32) and K weights.
struct EpSlotLayout {
  int64_t payload_bytes = 0, scale_off = 0, scale_count = 0, meta_off = 0, bytes = 0;
};
DSK_HD EpSlotLayout ep_dispatch_slot(int64_t H, bool fp8, int K) {
  EpSlotLayout s;
  s.payload_bytes = H * (fp8 ? 1 : 2);
  s.scale_off = ep_round_up(s.payload_bytes, 16);
  s.scale_count = fp8 ? H / 128 : 0;
  s.meta_off = ep_round_up(s.scale_off + s.scale_count * 4, 16);
  s.bytes = s.meta_off + int64_t(K) * 8;
  return s;
}

// The plan of one dispatch (i32, computed by the count exchange; kept in the handle for the combine):
//   row_base[E]            row where my entries for expert e start on e's rank
//   send_start[W][C+1]     position, in my stream to rank d, of the first token of channel c ([C]: total)
//   recv_count[W][C]       tokens rank s sends me in channel c
//   recv_start[W][C]       their position in s's stream to me (prefix over c)
//   recv_offset[W+1]       where s's tokens start among all tokens I receive ([W]: total R)
//   seg_start[Eloc+1]      my expert segments (padded to kEpAlign; [Eloc]: total rows M)
//   seg_count[Eloc]        real rows of each segment
struct EpPlanLayout {
  int32_t row_base = 0, send_start = 0, recv_count = 0, recv_start = 0, recv_offset = 0, seg_start = 0, seg_count = 0, total = 0;
};
DSK_HD EpPlanLayout ep_plan_layout(int E, int W, int C) {
  EpPlanLayout p;
  int32_t o = 0;
  const int Eloc = E / W;
  p.row_base = o; o += E;
  p.send_start = o; o += W * (C + 1);
  p.recv_count = o; o += W * C;
  p.recv_start = o; o += W * C;
  p.recv_offset = o; o += W + 1;
  p.seg_start = o; o += Eloc + 1;
  p.seg_count = o; o += Eloc;
  p.total = o;
  return p;
}

// What the host learns after the count exchange: [M, R, R_self, S, seg_count[0..Eloc)] (R_self: the
// tokens of R that are this rank's own; S: the tokens this rank sends to other ranks, counted per rank).
constexpr int kEpSummaryHeader = 4;

// Where received token jg (0..R) is staged between the exchange and the per-expert layout: peers' tokens
// in a buffer of R - R_self rows (own tokens are read from x where they are), i.e. row jg with the own
// range [own_begin, own_end) taken out; -1 for an own token.
DSK_HD int64_t ep_staged_row(int64_t jg, int64_t own_begin, int64_t own_end) {
  return jg < own_begin ? jg : jg >= own_end ? jg - (own_end - own_begin) : -1;
}

// Where a combine's exchange stages the sum rank d returns for this rank's token at position j of its
// stream to d: a block of rows per other rank, in rank order (S rows in all).
DSK_HD int64_t ep_returned_row(const int32_t* plan, const EpPlanLayout& L, int C, int me, int d, int64_t j) {
  int64_t off = 0;
  for (int e = 0; e < d; e++)
    if (e != me) off += plan[L.send_start + e * (C + 1) + C];
  return off + j;
}

}  // namespace dsk
