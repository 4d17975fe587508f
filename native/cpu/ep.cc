#include "ep.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/runtime.h"

namespace dsk::cpu {

void ep_layout(const int32_t* idx, int64_t T, int K, int E, int W, int32_t* tokens_per_rank, int32_t* tokens_per_expert,
               uint8_t* in_rank, int32_t* token_idx_in_rank, int32_t* pos_in_expert, int32_t* send_list, DiagRecord* diag) {
  const int Eloc = E / W;
  const int64_t nchunks = (T + kEpLayoutChunk - 1) / kEpLayoutChunk;
  const int cats = E + W;  // experts, then ranks
  auto valid = [&](int64_t t, int k) {
    int32_t e = idx[t * K + k];
    if (e == -1) return -1;
    if (!diag_check_index(diag, kDiagEpIndices, e, E)) return -1;
    return static_cast<int>(e);
  };
  auto rank_mask = [&](int64_t t) {
    uint32_t m = 0;
    for (int k = 0; k < K; k++) { int e = valid(t, k); if (e >= 0) m |= 1u << (e / Eloc); }
    return m;
  };
  // Pass 1: counts per chunk.
  std::vector<int32_t> counts(static_cast<size_t>(nchunks) * cats, 0);
  parallel_for(nchunks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      int32_t* c = &counts[b * cats];
      for (int64_t t = b * kEpLayoutChunk; t < std::min(T, (b + 1) * kEpLayoutChunk); t++) {
        for (int k = 0; k < K; k++) { int e = valid(t, k); if (e >= 0) c[e]++; }
        uint32_t m = rank_mask(t);
        for (int d = 0; d < W; d++) if (m >> d & 1) c[E + d]++;
      }
    }
  });
  // Exclusive scan over chunks.
  std::vector<int32_t> base(counts.size());
  for (int cat = 0; cat < cats; cat++) {
    int32_t run = 0;
    for (int64_t b = 0; b < nchunks; b++) { base[b * cats + cat] = run; run += counts[b * cats + cat]; }
    if (cat < E) tokens_per_expert[cat] = run; else tokens_per_rank[cat - E] = run;
  }
  for (int64_t i = 0; i < int64_t(W) * T; i++) send_list[i] = -1;
  // Pass 2: positions, in (t, k) order inside each chunk.
  parallel_for(nchunks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int32_t> run(cats);
    for (int64_t b = b0; b < b1; b++) {
      std::copy(&base[b * cats], &base[b * cats] + cats, run.begin());
      for (int64_t t = b * kEpLayoutChunk; t < std::min(T, (b + 1) * kEpLayoutChunk); t++) {
        for (int k = 0; k < K; k++) { int e = valid(t, k); pos_in_expert[t * K + k] = e >= 0 ? run[e]++ : -1; }
        uint32_t m = rank_mask(t);
        for (int d = 0; d < W; d++) {
          bool in = m >> d & 1;
          in_rank[t * W + d] = in;
          if (in) { int32_t j = run[E + d]++; token_idx_in_rank[t * W + d] = j; send_list[int64_t(d) * T + j] = static_cast<int32_t>(t); }
          else token_idx_in_rank[t * W + d] = -1;
        }
      }
    }
  });
}

void ep_channel_counts(int64_t T, int W, int C, const int32_t* send_list, const int32_t* tokens_per_rank, int32_t* chan) {
  for (int d = 0; d < W; d++) {
    const int32_t* list = send_list + int64_t(d) * T;
    for (int c = 0; c < C; c++) {
      int64_t t0 = ep_channel_begin(T, C, c), t1 = ep_channel_begin(T, C, c + 1);
      auto lo = std::lower_bound(list, list + tokens_per_rank[d], static_cast<int32_t>(t0));
      auto hi = std::lower_bound(list, list + tokens_per_rank[d], static_cast<int32_t>(t1));
      chan[d * C + c] = static_cast<int32_t>(hi - lo);
    }
  }
}

void ep_plan(int me, int W, int E, int C, const int32_t* cnt, const int32_t* chan, int32_t* plan, int32_t* summary) {
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int Eloc = E / W;
  // Segment starts of every rank's experts, and where my entries go inside them.
  std::vector<int32_t> seg(E);
  for (int d = 0; d < W; d++) {
    int32_t run = 0;
    for (int le = 0; le < Eloc; le++) {
      int e = d * Eloc + le;
      int32_t total = 0;
      for (int s = 0; s < W; s++) total += cnt[int64_t(s) * E + e];
      seg[e] = run;
      run += static_cast<int32_t>(ep_round_up(total, kEpAlign));
    }
  }
  for (int e = 0; e < E; e++) {
    int32_t before = 0;
    for (int s = 0; s < me; s++) before += cnt[int64_t(s) * E + e];
    plan[L.row_base + e] = seg[e] + before;
  }
  // My stream to each rank, per channel.
  for (int d = 0; d < W; d++) {
    int32_t run = 0;
    for (int c = 0; c < C; c++) { plan[L.send_start + d * (C + 1) + c] = run; run += chan[(int64_t(me) * W + d) * C + c]; }
    plan[L.send_start + d * (C + 1) + C] = run;
  }
  // What I receive.
  int32_t off = 0, own = 0;
  for (int s = 0; s < W; s++) {
    plan[L.recv_offset + s] = off;
    int32_t run = 0;
    for (int c = 0; c < C; c++) {
      int32_t n = chan[(int64_t(s) * W + me) * C + c];
      plan[L.recv_count + s * C + c] = n;
      plan[L.recv_start + s * C + c] = run;
      run += n;
    }
    if (s == me) own = run;
    off += run;
  }
  plan[L.recv_offset + W] = off;
  int32_t rows = 0;
  for (int le = 0; le < Eloc; le++) {
    int e = me * Eloc + le;
    int32_t total = 0;
    for (int s = 0; s < W; s++) total += cnt[int64_t(s) * E + e];
    plan[L.seg_start + le] = rows;
    plan[L.seg_count + le] = total;
    summary[kEpSummaryHeader + le] = total;
    rows += static_cast<int32_t>(ep_round_up(total, kEpAlign));
  }
  plan[L.seg_start + Eloc] = rows;
  summary[0] = rows;
  summary[1] = off;
  summary[2] = own;
  int32_t sent = 0;
  for (int d = 0; d < W; d++)
    if (d != me) sent += plan[L.send_start + d * (C + 1) + C];
  summary[3] = sent;
}

void ep_expand(int part, int me, int W, int E, int C, int64_t T, int64_t H, int elt, int K, int64_t M, const void* x, const float* x_scale,
               const float* weights, const int32_t* idx, const int32_t* pos_in_expert, const int32_t* send_list, const int32_t* plan,
               const void* staged_x, const float* staged_scale, int32_t* recv_token_rows, float* recv_weights, int32_t* m_indices,
               void* recv_x, float* recv_scale) {
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int Eloc = E / W;
  const int64_t R = plan[L.recv_offset + W], own_begin = plan[L.recv_offset + me], own_end = plan[L.recv_offset + me + 1];
  const int64_t row_bytes = H * elt, nscale = x_scale ? H / 128 : 0;
  parallel_for(part == 2 ? 0 : M, 1024, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      int le = static_cast<int>(std::upper_bound(plan + L.seg_start, plan + L.seg_start + Eloc + 1, static_cast<int32_t>(r)) - (plan + L.seg_start)) - 1;
      m_indices[r] = r - plan[L.seg_start + le] < plan[L.seg_count + le] ? le : -1;
    }
  });
  parallel_for(R, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
      const int64_t staged = ep_staged_row(j, own_begin, own_end);
      if ((part == 1 && staged >= 0) || (part == 2 && staged < 0)) continue;  // not this call's part
      const int64_t t = staged < 0 ? send_list[int64_t(me) * T + (j - own_begin)] : 0;
      const char* src = staged < 0 ? static_cast<const char*>(x) + t * row_bytes : static_cast<const char*>(staged_x) + staged * row_bytes;
      const float* ssrc = !nscale ? nullptr : staged < 0 ? x_scale + t * nscale : staged_scale + staged * nscale;
      for (int k = 0; k < K; k++) {
        int32_t row;
        if (staged < 0) {  // an own token: its routing is written here
          const int32_t e = idx[t * K + k], p = pos_in_expert[t * K + k];
          row = (e >= 0 && e < E && p >= 0 && e / Eloc == me) ? plan[L.row_base + e] + p : -1;
          if (row >= M) row = -1;
          recv_token_rows[j * K + k] = row;
          if (row >= 0) recv_weights[row] = weights[t * K + k];
        } else {
          row = recv_token_rows[j * K + k];
          if (row >= M) row = -1;
        }
        if (row < 0) continue;
        std::memcpy(static_cast<char*>(recv_x) + row * row_bytes, src, row_bytes);
        if (nscale) std::memcpy(recv_scale + row * nscale, ssrc, nscale * 4);
      }
    }
  });
}

void ep_reduce(int part, const uint16_t* y, int64_t M, int64_t H, const float* recv_weights, const int32_t* recv_token_rows, int64_t R,
               int K, const int32_t* plan, int E, int W, int me, int C, uint16_t* partial) {
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int64_t own_begin = plan[L.recv_offset + me], own_end = plan[L.recv_offset + me + 1];
  parallel_for(R, 4, [&](int64_t j0, int64_t j1) {
    std::vector<float> acc(H);
    for (int64_t j = j0; j < j1; j++) {
      const bool own = j >= own_begin && j < own_end;
      if ((part == 1 && !own) || (part == 2 && own)) continue;  // not this call's part
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int k = 0; k < K; k++) {
        const int32_t row = recv_token_rows[j * K + k];
        if (row < 0 || row >= M) continue;
        const float w = recv_weights[row];
        for (int64_t h = 0; h < H; h++) acc[h] = acc[h] + w * bf16_to_f32(y[row * H + h]);
      }
      for (int64_t h = 0; h < H; h++) partial[j * H + h] = f32_to_bf16(acc[h]);
    }
  });
}

void ep_sum(const uint16_t* partial, const uint16_t* staged, const int32_t* token_idx_in_rank, const int32_t* plan, int E, int W, int me,
            int C, int64_t T, int64_t H, uint16_t* out) {
  const EpPlanLayout L = ep_plan_layout(E, W, C);
  const int64_t own_begin = plan[L.recv_offset + me];
  parallel_for(T, 16, [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(H);
    for (int64_t t = t0; t < t1; t++) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int q = 0; q < W; q++) {  // this rank first, then the others ascending
        const int d = q == 0 ? me : (q - 1 < me ? q - 1 : q);
        const int32_t j = token_idx_in_rank[t * W + d];
        if (j < 0) continue;
        const uint16_t* src = d == me ? partial + (own_begin + j) * H : staged + ep_returned_row(plan, L, C, me, d, j) * H;
        for (int64_t h = 0; h < H; h++) acc[h] = acc[h] + bf16_to_f32(src[h]);
      }
      for (int64_t h = 0; h < H; h++) out[t * H + h] = f32_to_bf16(acc[h]);
    }
  });
}

}  // namespace dsk::cpu
