// Pointer tables for the list ops (multi-discriminator losses, feature matching): one kernel launch
// covers a whole list of tensors instead of one or more launches per tensor, which is what bounds
// the time of lists of small tensors (HiFi-GAN: 16 logits tensors, 54 feature-map pairs).
//
// A table is a fixed-size array of entries passed BY VALUE as a kernel argument: no host-to-device
// copy, no synchronisation, so the ops stay CUDA-graph capturable. Entry e owns the consecutive
// blocks [first_block[e], first_block[e + 1]) of its launch (at least one), each block one fixed
// chunk of the entry's tensor. A list longer than one table runs as several launches of the same
// kernel over consecutive slices; since a chunk's work depends only on its tensor and its chunk
// index, the results do not depend on where the slices fall.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common.cuh"

namespace gan_kernels {
namespace cuda_impl {

// Bytes a table may take: under the 4 KB of kernel arguments every CUDA version accepts, leaving
// room for the kernel's other arguments.
constexpr size_t kTableBytes = 3584;

// Consecutive entries [begin, end) of a host-side list, launched together as `blocks` blocks.
struct TableSlice {
  size_t begin, end;
  int64_t blocks;
};

// Cuts a list whose entry e needs blocks[e] >= 1 blocks into launches of at most `cap` entries
// and at most 2^31 - 1 blocks (the grid's x limit). The cuts depend on the list alone.
inline std::vector<TableSlice> table_slices(const std::vector<int64_t>& blocks, size_t cap) {
  constexpr int64_t kMaxGrid = (int64_t{1} << 31) - 1;
  std::vector<TableSlice> slices;
  size_t begin = 0;
  int64_t total = 0;
  for (size_t e = 0; e < blocks.size(); ++e) {
    TORCH_CHECK(blocks[e] >= 1 && blocks[e] <= kMaxGrid, "gan_kernels (CUDA): a list entry needs ", blocks[e],
                " blocks, more than one launch allows");
    if (e > begin && (e - begin == cap || total + blocks[e] > kMaxGrid)) {
      slices.push_back({begin, e, total});
      begin = e;
      total = 0;
    }
    total += blocks[e];
  }
  if (begin < blocks.size()) slices.push_back({begin, blocks.size(), total});
  return slices;
}

// The entry of a table that owns block b: the last e < m with entry[e].first_block <= b, the
// entries' first blocks strictly increasing from 0. A linear scan: m is a table's capacity at most
// (tens of entries), and every thread of a block reads the same kernel-argument words, which the
// constant cache broadcasts. `t` must be a __grid_constant__ kernel argument (no local copy).
template <typename Table>
__device__ __forceinline__ int table_entry(const Table& t, int m, int64_t b) {
  int e = 0;
  while (e + 1 < m && t.entry[e + 1].first_block <= b) ++e;
  return e;
}

// ---------------------------------------------------------------------------------------------
// Runtime dtype codes: a kernel instantiated per compute type reads or writes tensors of any of
// the four floating dtypes through one branch that is uniform over the grid.

enum DtypeCode : int { kCodeFloat = 0, kCodeDouble = 1, kCodeHalf = 2, kCodeBFloat16 = 3 };

inline int dtype_code(at::ScalarType t, const char* what) {
  switch (t) {
    case at::kFloat:
      return kCodeFloat;
    case at::kDouble:
      return kCodeDouble;
    case at::kHalf:
      return kCodeHalf;
    case at::kBFloat16:
      return kCodeBFloat16;
    default:
      TORCH_CHECK(false, "gan_kernels (CUDA): ", what, " must be float16, bfloat16, float32 or float64, got ", t);
  }
  return kCodeFloat;
}

// p[i] converted to acc_t (exactly, for every dtype no wider than acc_t).
template <typename acc_t>
__device__ __forceinline__ acc_t load_as(const void* p, int64_t i, int code) {
  switch (code) {
    case kCodeFloat:
      return static_cast<acc_t>(static_cast<const float*>(p)[i]);
    case kCodeDouble:
      return static_cast<acc_t>(static_cast<const double*>(p)[i]);
    case kCodeHalf:
      return static_cast<acc_t>(static_cast<float>(static_cast<const at::Half*>(p)[i]));
    default:
      return static_cast<acc_t>(static_cast<float>(static_cast<const at::BFloat16*>(p)[i]));
  }
}

// p[i] = v in the dtype of `code`; half outputs round through float, as Tensor.to does.
template <typename acc_t>
__device__ __forceinline__ void store_as(void* p, int64_t i, int code, acc_t v) {
  switch (code) {
    case kCodeFloat:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case kCodeDouble:
      static_cast<double*>(p)[i] = static_cast<double>(v);
      break;
    case kCodeHalf:
      static_cast<at::Half*>(p)[i] = static_cast<at::Half>(static_cast<float>(v));
      break;
    default:
      static_cast<at::BFloat16*>(p)[i] = static_cast<at::BFloat16>(static_cast<float>(v));
      break;
  }
}

// The floating dtypes in a fixed order: list ops launch once per dtype present (a kernel is
// compiled per element type).
constexpr at::ScalarType kListDtypes[] = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16};

}  // namespace cuda_impl
}  // namespace gan_kernels
