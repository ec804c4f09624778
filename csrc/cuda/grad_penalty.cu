// CUDA kernels of the gradient penalties (WGAN-GP, WGAN-LP, R1): grad_penalty_forward and
// grad_penalty_backward (semantics: docs/kernel_contract.md, "Gradient penalty").
//
// Forward: each sample's D elements are cut into fixed chunks (chunk_elems, per dtype); one
// block per (sample, chunk) sums the squares of its chunk into a partial (B, chunks) buffer, so
// even B = 1 fills the GPU. A second one-block kernel adds each sample's partials in a fixed
// order, takes the norms and forms the loss. The chunking depends only on D and the dtype, never
// on the GPU, so the result is the same bits on every run and every card.
// Backward: one elementwise pass d_grad = coef_i * g with coef_i from norms[i], tiled like the
// interpolation (16-byte vectors when aligned, vectors may straddle samples).
// The GradScaler factor (inv_scale_tensor) is read on the device: no host synchronisation.

#include <limits>
#include <optional>

#include <torch/library.h>

#include "common.cuh"

namespace gan_kernels {
namespace cuda_impl {
namespace {

// Elements per (sample, chunk) block: one load of kUnroll 16-byte vectors per thread on the
// vector path (4096 float32, 8192 float16/bfloat16, 2048 float64). At 64 x 3 x 256 x 256
// float32 this is 48 chunks per sample, 3072 blocks of a few microseconds: balanced over the SMs.
template <typename scalar_t>
constexpr int64_t chunk_elems() {
  return static_cast<int64_t>(kThreads) * vec_width<scalar_t>() * kUnroll;
}

// The finishing kernel's block: one warp per sample at a time.
constexpr int kFinishThreads = 1024;
constexpr int kFinishWarps = kFinishThreads / 32;

// partials[blk] = sum of g^2 over chunk (blk % chunks) of sample (blk / chunks). VEC > 1 needs
// g 16-byte aligned and D % VEC == 0, so every sample and chunk starts on a vector boundary and
// a chunk's end (a multiple of `chunk`, or D) is a multiple of VEC.
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kThreads) sumsq_partials_kernel(const scalar_t* __restrict__ g, int64_t D,
                                                                  int64_t chunk, int64_t chunks, int64_t total_blocks,
                                                                  acc_t* __restrict__ partials) {
  __shared__ acc_t smem[kThreads / 32];
  for (int64_t blk = blockIdx.x; blk < total_blocks; blk += gridDim.x) {  // uniform over the block
    const int64_t i = blk / chunks;
    const int64_t begin = (blk - i * chunks) * chunk;
    const int64_t end = begin + chunk < D ? begin + chunk : D;
    const scalar_t* p = g + i * D;
    acc_t acc = 0;
    for (int64_t base = begin; base < end; base += static_cast<int64_t>(kThreads) * VEC * kUnroll) {
      Pack<scalar_t, VEC> x[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {  // all loads first
        const int64_t e = base + (static_cast<int64_t>(u) * kThreads + threadIdx.x) * VEC;
        if (e < end) {
          x[u] = load_pack<scalar_t, VEC>(p + e);
        } else {
#pragma unroll
          for (int k = 0; k < VEC; ++k) x[u].v[k] = static_cast<scalar_t>(0.0f);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          const acc_t v = static_cast<acc_t>(x[u].v[k]);
          acc += v * v;
        }
      }
    }
    const acc_t total = block_sum<kThreads>(acc, smem);
    if (threadIdx.x == 0) partials[blk] = total;
  }
}

// One block: warp w takes samples w, w + kFinishWarps, ...; each warp adds a sample's partials
// lane-strided then by a fixed butterfly, so the order depends only on (B, chunks).
template <typename acc_t>
__global__ void __launch_bounds__(kFinishThreads) penalty_finish_kernel(
    const acc_t* __restrict__ partials, int64_t B, int64_t chunks, int64_t kind, int64_t reduction, acc_t center,
    acc_t weight, acc_t inv_scale, const float* __restrict__ inv_scale_tensor, acc_t* __restrict__ norms,
    acc_t* __restrict__ loss) {
  __shared__ acc_t warp_sums[kFinishWarps];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const acc_t s = inv_scale * (inv_scale_tensor != nullptr ? static_cast<acc_t>(*inv_scale_tensor) : acc_t(1));
  acc_t p_sum = 0;  // used by lane 0
  for (int64_t i = warp; i < B; i += kFinishWarps) {  // uniform over the warp (full-mask shuffles)
    acc_t v = 0;
    for (int64_t c = lane; c < chunks; c += 32) v += partials[i * chunks + c];
#pragma unroll
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) {
      const acc_t norm = std::sqrt(v);
      norms[i] = norm;
      const acc_t p = penalty_value<acc_t>(kind, norm, s, center);
      if (reduction == kReduceNone) loss[i] = weight * p;
      p_sum += p;
    }
  }
  if (lane == 0) warp_sums[warp] = p_sum;
  __syncthreads();
  if (threadIdx.x == 0 && reduction != kReduceNone) {
    acc_t total = 0;
    for (int w = 0; w < kFinishWarps; ++w) total += warp_sums[w];
    loss[0] = reduction == kReduceMean ? weight * (total / static_cast<acc_t>(B)) : weight * total;
  }
}

// d_grad = go_i * scale * penalty_coef(kind, norms_i, s, center) * g, scale = weight * W; the
// tiled elementwise pattern of interpolate.cu. grad_out is read at go[i * go_stride] (go_stride
// 0: one value for the whole batch).
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kThreads) penalty_backward_kernel(
    const scalar_t* __restrict__ g, const acc_t* __restrict__ norms, const acc_t* __restrict__ go, int64_t go_stride,
    int64_t kind, acc_t center, acc_t scale, acc_t inv_scale, const float* __restrict__ inv_scale_tensor,
    scalar_t* __restrict__ out, int64_t n, int64_t D, int64_t step_s, int64_t step_r) {
  const acc_t s = inv_scale * (inv_scale_tensor != nullptr ? static_cast<acc_t>(*inv_scale_tensor) : acc_t(1));
  auto coef_of = [&](int64_t i) { return go[i * go_stride] * scale * penalty_coef<acc_t>(kind, norms[i], s, center); };
  const int64_t nvec = n / VEC;
  const int64_t v0 = tile_first_vector();
  Pack<scalar_t, VEC> gv[kUnroll];
  load_tile<scalar_t, VEC>(g, v0, nvec, gv);
  SampleCursor cur(v0 * VEC, D);
  int64_t coef_sample = -1;  // the sample `coef` belongs to
  acc_t coef = 0;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = v0 + static_cast<int64_t>(u) * kThreads;
    if (v < nvec) {
      int64_t smp = cur.sample, r = cur.offset;
      if (smp != coef_sample) {
        coef = coef_of(smp);
        coef_sample = smp;
      }
      Pack<scalar_t, VEC> ov;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        if (k > 0 && ++r == D) {  // the vector straddles into the next sample
          r = 0;
          coef = coef_of(++smp);
          coef_sample = smp;
        }
        ov.v[k] = static_cast<scalar_t>(coef * static_cast<acc_t>(gv[u].v[k]));
      }
      store_pack<scalar_t, VEC>(out + v * VEC, ov);
    }
    cur.jump(D, step_s, step_r);
  }
  if (blockIdx.x == 0) {
    const int64_t e = nvec * VEC + threadIdx.x;  // the last n % VEC elements
    if (e < n) out[e] = static_cast<scalar_t>(coef_of(e / D) * static_cast<acc_t>(g[e]));
  }
}

void check_penalty_args(const at::Tensor& grad, int64_t kind, int64_t reduction) {
  TORCH_CHECK(grad.is_cuda(), "gan_kernels (CUDA): grad_penalty needs CUDA tensors");
  TORCH_CHECK(grad.dim() >= 1, "gan_kernels (CUDA): grad_penalty needs a batch dimension");
  TORCH_CHECK(kind == kWganGp || kind == kWganLp || kind == kR1, "gan_kernels (CUDA): unknown grad_penalty kind code ",
              kind, " (0 wgan-gp, 1 wgan-lp, 2 r1)");
  check_reduction(reduction);
}

// The device-side unscale factor as a 1-element float32 tensor, or undefined.
at::Tensor scale_tensor(const std::optional<at::Tensor>& t, const at::Tensor& grad) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  check_cuda(*t, grad, "inv_scale_tensor");
  TORCH_CHECK(t->numel() == 1, "gan_kernels (CUDA): inv_scale_tensor must have one element, got shape ", t->sizes());
  return t->to(at::kFloat).contiguous();
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_forward_cuda(const at::Tensor& grad, int64_t kind, double center,
                                                             double weight, int64_t reduction, double inv_scale,
                                                             const std::optional<at::Tensor>& inv_scale_tensor) {
  check_penalty_args(grad, kind, reduction);
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor ist = scale_tensor(inv_scale_tensor, grad);
  const at::Tensor g = is_batch_major(grad) ? grad : grad.contiguous();
  const int64_t B = g.size(0);
  const int64_t n = g.numel();
  const int64_t D = B > 0 ? n / B : 0;
  const auto acc_opts = grad.options().dtype(acc_type_of(grad.scalar_type()));
  at::Tensor loss = reduction == kReduceNone ? at::empty({B}, acc_opts) : at::empty({}, acc_opts);
  at::Tensor norms = at::empty({B}, acc_opts);

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gan_kernels_grad_penalty_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int kVec = vec_width<scalar_t>();
    constexpr int64_t kChunk = chunk_elems<scalar_t>();
    const int64_t chunks = D > kChunk ? (D + kChunk - 1) / kChunk : 1;
    const int64_t total_blocks = B * chunks;
    at::Tensor partials = at::empty({total_blocks}, acc_opts);
    if (total_blocks > 0) {
      const unsigned int blocks = static_cast<unsigned int>(
          total_blocks < std::numeric_limits<int>::max() ? total_blocks : std::numeric_limits<int>::max());
      auto kernel = (aligned16(g.const_data_ptr()) && D % kVec == 0) ? sumsq_partials_kernel<scalar_t, acc_t, kVec>
                                                                      : sumsq_partials_kernel<scalar_t, acc_t, 1>;
      kernel<<<blocks, kThreads, 0, stream>>>(g.const_data_ptr<scalar_t>(), D, kChunk, chunks, total_blocks,
                                              partials.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    penalty_finish_kernel<acc_t><<<1, kFinishThreads, 0, stream>>>(
        total_blocks > 0 ? partials.const_data_ptr<acc_t>() : nullptr, B, chunks, kind, reduction,
        static_cast<acc_t>(center), static_cast<acc_t>(weight), static_cast<acc_t>(inv_scale),
        ist.defined() ? ist.const_data_ptr<float>() : nullptr, norms.mutable_data_ptr<acc_t>(),
        loss.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, norms};
}

at::Tensor grad_penalty_backward_cuda(const at::Tensor& grad_out, const at::Tensor& grad, const at::Tensor& norms,
                                      int64_t kind, double center, double weight, int64_t reduction, double inv_scale,
                                      const std::optional<at::Tensor>& inv_scale_tensor) {
  check_penalty_args(grad, kind, reduction);
  check_cuda(grad_out, grad, "grad_out");
  check_cuda(norms, grad, "norms");
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t B = grad.size(0);
  const at::ScalarType acc = acc_type_of(grad.scalar_type());
  TORCH_CHECK(norms.numel() == B, "gan_kernels (CUDA): norms must have one value per sample (", B, "), got shape ",
              norms.sizes());
  at::Tensor go = grad_out.to(acc);
  int64_t go_stride = 0;
  if (reduction == kReduceNone) {
    TORCH_CHECK(go.numel() == B, "gan_kernels (CUDA): grad_out must have shape (", B, ",) for reduction 'none', got ",
                go.sizes());
    if (B > 1) {
      go = go.reshape({B});  // a view unless grad_out was not viewable as (B,); keeps stride 0 of an expand
      go_stride = go.stride(0);
    }
  } else {
    TORCH_CHECK(go.numel() == 1, "gan_kernels (CUDA): grad_out must be a scalar for reduction 'mean'/'sum', got shape ",
                go.sizes());
  }
  const at::Tensor ist = scale_tensor(inv_scale_tensor, grad);
  const at::Tensor nrm = norms.to(acc).contiguous();
  at::Tensor out = empty_batch_major(grad);
  const int64_t n = grad.numel();
  if (n == 0) return out;
  const int64_t D = n / B;
  const at::Tensor g = match_layout(grad, out);
  const double w = reduction == kReduceMean ? 1.0 / static_cast<double>(B) : 1.0;

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gan_kernels_grad_penalty_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int kVec = vec_width<scalar_t>();
    const acc_t scale = static_cast<acc_t>(weight * w);
    const float* ist_ptr = ist.defined() ? ist.const_data_ptr<float>() : nullptr;
    const int64_t vw = (aligned16(g.const_data_ptr()) && aligned16(out.const_data_ptr())) ? kVec : 1;
    const TileStep st = tile_step(vw, D);
    auto kernel = vw > 1 ? penalty_backward_kernel<scalar_t, acc_t, kVec> : penalty_backward_kernel<scalar_t, acc_t, 1>;
    kernel<<<tile_blocks(n, vw), kThreads, 0, stream>>>(g.const_data_ptr<scalar_t>(), nrm.const_data_ptr<acc_t>(),
                                                        go.const_data_ptr<acc_t>(), go_stride, kind,
                                                        static_cast<acc_t>(center), scale, static_cast<acc_t>(inv_scale),
                                                        ist_ptr, out.mutable_data_ptr<scalar_t>(), n, D, st.samples,
                                                        st.rest);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace cuda_impl
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m) {
  m.impl("grad_penalty_forward", &gan_kernels::cuda_impl::grad_penalty_forward_cuda);
  m.impl("grad_penalty_backward", &gan_kernels::cuda_impl::grad_penalty_backward_cuda);
}
