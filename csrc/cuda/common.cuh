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

#include "gan_kernels/checks.h"
#include "gan_kernels/layout.h"
#include "gan_kernels/math.h"

namespace gan_kernels {
namespace cuda_impl {

// Threads per block of the elementwise and partial-sum kernels.
constexpr int kThreads = 256;
// Vectors each thread of an elementwise kernel moves, all loads issued before any store (the
// memory-level parallelism that keeps HBM busy).
constexpr int kUnroll = 4;

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

// The tiled elementwise pattern (interpolate.cu, grad_penalty.cu's backward): block b owns vectors
// [b * kThreads * kUnroll, (b + 1) * kThreads * kUnroll) and thread t takes vectors t, t + kThreads,
// ... of them (coalesced). The first of the calling thread's vectors:
__device__ __forceinline__ int64_t tile_first_vector() {
  return static_cast<int64_t>(blockIdx.x) * (kThreads * kUnroll) + threadIdx.x;
}

// Loads the calling thread's kUnroll vectors of x (those below nvec), all before any is used: the
// memory-level parallelism that keeps HBM busy.
template <typename T, int VEC>
__device__ __forceinline__ void load_tile(const T* __restrict__ x, int64_t v0, int64_t nvec, Pack<T, VEC> (&out)[kUnroll]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = v0 + static_cast<int64_t>(u) * kThreads;
    if (v < nvec) out[u] = load_pack<T, VEC>(x + v * VEC);
  }
}

// Sample index of the flat elements of a batch-major tensor (D elements per sample) that one
// thread of a tiled elementwise kernel visits: one division when the thread starts, then only
// additions as it moves kThreads vectors on (step = kThreads * VEC elements = step_s samples
// plus step_r elements, 0 <= step_r < D, computed on the host).
struct SampleCursor {
  int64_t sample;
  int64_t offset;  // of the current element inside its sample, in [0, D)
  __device__ __forceinline__ SampleCursor(int64_t e, int64_t D) : sample(e / D), offset(e - (e / D) * D) {}
  __device__ __forceinline__ void jump(int64_t D, int64_t step_s, int64_t step_r) {
    sample += step_s;
    offset += step_r;  // < 2 D: one wrap at most
    if (offset >= D) {
      offset -= D;
      ++sample;
    }
  }
};

// Host side of SampleCursor::jump for vectors of VEC elements.
struct TileStep {
  int64_t samples;
  int64_t rest;
};
inline TileStep tile_step(int64_t vec, int64_t D) {
  const int64_t step = static_cast<int64_t>(kThreads) * vec;
  return {step / D, step % D};
}

// Blocks of a tiled elementwise kernel over n elements in vectors of `vec`: one tile of
// kThreads * kUnroll vectors per block, at least one block (it also writes the n % vec tail).
inline unsigned int tile_blocks(int64_t n, int64_t vec) {
  const int64_t per_block = static_cast<int64_t>(kThreads) * kUnroll;
  const int64_t blocks = (n / vec + per_block - 1) / per_block;
  TORCH_CHECK(blocks < (int64_t{1} << 31), "gan_kernels (CUDA): tensor too large for one launch (", n, " elements)");
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

// Correctly rounded multiply and add that nvcc will not contract into a fused multiply-add,
// for results that must match PyTorch's separate elementwise ops bit for bit.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

inline bool aligned16(const void* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Sum of `v` over a block of kBlock threads, returned to every thread. Deterministic: a fixed
// butterfly inside each warp, then the warp totals added in warp order (every thread does the
// same additions in the same order, so all get the same bits). Every thread of the block must
// call it (it synchronises); `smem` holds kBlock / 32 elements and is free again on return.
template <int kBlock, typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* smem) {
  static_assert(kBlock % 32 == 0 && kBlock <= 1024, "kBlock must be whole warps");
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  acc_t total = 0;
#pragma unroll
  for (int w = 0; w < kBlock / 32; ++w) total += smem[w];
  __syncthreads();  // everyone has read smem before the caller reuses it
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
  TORCH_CHECK_VALUE(t.device() == like.device(), "gan_kernels (CUDA): ", name, " is on ", t.device(),
                    " but the other inputs are on ", like.device());
}

}  // namespace cuda_impl
}  // namespace gan_kernels
