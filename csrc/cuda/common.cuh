// Helpers shared by the CUDA kernels of gan_kernels (private to csrc/cuda).
//
// Only c10/cuda headers are used: ATen/cuda/CUDAContext.h would pull cusparse.h, which needs an
// extra include path on machines where the CUDA headers come from pip wheels.
#pragma once

#include <atomic>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "gan_kernels/layout.h"
#include "gan_kernels/math.h"

namespace gan_kernels {
namespace cuda_impl {

// Threads per block of every kernel here (a multiple of the warp size; the block reductions
// below assume a power of two).
constexpr int kThreads = 256;
static_assert((kThreads & (kThreads - 1)) == 0, "kThreads must be a power of two");

// Elements per 16-byte vector of T: 8 for half/bfloat16, 4 for float, 2 for double.
template <typename T>
constexpr int vec_width() {
  return static_cast<int>(16 / sizeof(T));
}

// N elements of T loaded or stored with one instruction (16 bytes when N == vec_width<T>()).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}

template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& x) {
  *reinterpret_cast<Pack<T, N>*>(p) = x;
}

inline bool aligned16(const void* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Sum of `v` over the block in a fixed order (shared-memory tree), returned to every thread.
// Deterministic: the pairing depends only on the thread index. Every thread of the block must
// call it (it synchronises); `smem` holds kThreads elements and is free again on return.
template <typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* smem) {
  const int tid = threadIdx.x;
  smem[tid] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (tid < half) smem[tid] += smem[tid + half];
    __syncthreads();
  }
  const acc_t total = smem[0];
  __syncthreads();  // everyone has read smem[0] before the caller reuses smem
  return total;
}

// Number of streaming multiprocessors of a device, queried once per device (no synchronisation,
// allowed during CUDA graph capture).
inline int sm_count(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];
  if (device < 0 || device >= kMaxDevices) device = 0;
  int n = cache[device].load(std::memory_order_relaxed);
  if (n <= 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    if (n <= 0) n = 1;
    cache[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Blocks for a grid-stride loop over `work` items of one thread each: enough to fill the GPU,
// never more than needed, never zero.
inline int64_t grid_for(int64_t work, int device) {
  const int64_t need = (work + kThreads - 1) / kThreads;
  const int64_t fill = static_cast<int64_t>(sm_count(device)) * (2048 / kThreads);
  int64_t blocks = need < fill ? need : fill;
  return blocks < 1 ? 1 : blocks;
}

inline void check_cuda(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.device() == like.device(), "gan_kernels (CUDA): ", name, " is on ", t.device(),
              " but the other inputs are on ", like.device());
}

inline void check_reduction(int64_t reduction) {
  TORCH_CHECK(reduction == kReduceNone || reduction == kReduceMean || reduction == kReduceSum,
              "gan_kernels (CUDA): unknown reduction code ", reduction, " (0 none, 1 mean, 2 sum)");
}

}  // namespace cuda_impl
}  // namespace gan_kernels
