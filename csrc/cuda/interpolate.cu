// CUDA kernels of the interpolation x_hat = alpha * real + (1 - alpha) * fake and its backward
// (semantics: docs/kernel_contract.md, "Interpolation").
//
// Tensors are walked as flat batch-major storage (layout.h), D = numel / B elements per sample.
// When every pointer is 16-byte aligned the threads move 16-byte vectors; a vector may straddle
// two samples (any D works), so the sample index is advanced element by element inside it.
// Otherwise the same kernel runs with one-element vectors.

#include <tuple>

#include <torch/library.h>

#include "common.cuh"

namespace gan_kernels {
namespace cuda_impl {
namespace {

// Tiled elementwise pattern (also grad_penalty.cu's backward): block b owns vectors
// [b * kThreads * kUnroll, (b + 1) * kThreads * kUnroll); thread t takes vectors t, t + kThreads,
// ... of that tile (coalesced), loads all of them, then computes and stores. Block 0 also does
// the last n % VEC elements one per thread.
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kThreads) interpolate_forward_kernel(const scalar_t* __restrict__ real,
                                                                       const scalar_t* __restrict__ fake,
                                                                       const acc_t* __restrict__ alpha,
                                                                       scalar_t* __restrict__ out, int64_t n,
                                                                       int64_t D, int64_t step_s, int64_t step_r) {
  // x_hat exactly as written, in acc, with no fused multiply-add: bitwise what the reference
  // computes with separate multiplies and an add.
  auto mix = [](acc_t a, scalar_t r, scalar_t f) {
    return static_cast<scalar_t>(add_rn(mul_rn(a, static_cast<acc_t>(r)), mul_rn(acc_t(1) - a, static_cast<acc_t>(f))));
  };
  const int64_t nvec = n / VEC;
  const int64_t v0 = tile_first_vector();
  Pack<scalar_t, VEC> rv[kUnroll], fv[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = v0 + static_cast<int64_t>(u) * kThreads;
    if (v < nvec) {
      rv[u] = load_pack<scalar_t, VEC>(real + v * VEC);
      fv[u] = load_pack<scalar_t, VEC>(fake + v * VEC);
    }
  }
  SampleCursor cur(v0 * VEC, D);
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = v0 + static_cast<int64_t>(u) * kThreads;
    if (v < nvec) {
      int64_t s = cur.sample, r = cur.offset;
      acc_t a = alpha[s];
      Pack<scalar_t, VEC> ov;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        if (k > 0 && ++r == D) {  // the vector straddles into the next sample
          r = 0;
          a = alpha[++s];
        }
        ov.v[k] = mix(a, rv[u].v[k], fv[u].v[k]);
      }
      store_pack<scalar_t, VEC>(out + v * VEC, ov);
    }
    cur.jump(D, step_s, step_r);
  }
  if (blockIdx.x == 0) {
    const int64_t e = nvec * VEC + threadIdx.x;
    if (e < n) out[e] = mix(alpha[e / D], real[e], fake[e]);
  }
}

// d_real = alpha * g, d_fake = (1 - alpha) * g; a null output is not wanted.
template <typename scalar_t, typename acc_t, int VEC>
__global__ void __launch_bounds__(kThreads) interpolate_backward_kernel(const scalar_t* __restrict__ g,
                                                                        const acc_t* __restrict__ alpha,
                                                                        scalar_t* __restrict__ d_real,
                                                                        scalar_t* __restrict__ d_fake, int64_t n,
                                                                        int64_t D, int64_t step_s, int64_t step_r) {
  const int64_t nvec = n / VEC;
  const int64_t v0 = tile_first_vector();
  Pack<scalar_t, VEC> gv[kUnroll];
  load_tile<scalar_t, VEC>(g, v0, nvec, gv);
  SampleCursor cur(v0 * VEC, D);
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = v0 + static_cast<int64_t>(u) * kThreads;
    if (v < nvec) {
      int64_t s = cur.sample, r = cur.offset;
      acc_t a = alpha[s];
      Pack<scalar_t, VEC> rv, fv;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        if (k > 0 && ++r == D) {
          r = 0;
          a = alpha[++s];
        }
        const acc_t x = static_cast<acc_t>(gv[u].v[k]);
        rv.v[k] = static_cast<scalar_t>(a * x);
        fv.v[k] = static_cast<scalar_t>((acc_t(1) - a) * x);
      }
      if (d_real != nullptr) store_pack<scalar_t, VEC>(d_real + v * VEC, rv);
      if (d_fake != nullptr) store_pack<scalar_t, VEC>(d_fake + v * VEC, fv);
    }
    cur.jump(D, step_s, step_r);
  }
  if (blockIdx.x == 0) {
    const int64_t e = nvec * VEC + threadIdx.x;
    if (e < n) {
      const acc_t a = alpha[e / D];
      const acc_t x = static_cast<acc_t>(g[e]);
      if (d_real != nullptr) d_real[e] = static_cast<scalar_t>(a * x);
      if (d_fake != nullptr) d_fake[e] = static_cast<scalar_t>((acc_t(1) - a) * x);
    }
  }
}

// alpha as a contiguous (B,) tensor of the accumulation dtype (a stride-0 expanded alpha is
// materialised: B values).
at::Tensor alpha_for(const at::Tensor& alpha, const at::Tensor& x, int64_t B) {
  check_cuda(alpha, x, "alpha");
  TORCH_CHECK(alpha.numel() == B, "gan_kernels (CUDA): alpha must have one value per sample (", B,
              "), got shape ", alpha.sizes());
  return alpha.to(acc_type_of(x.scalar_type())).contiguous();
}

at::Tensor interpolate_forward_cuda(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  TORCH_CHECK(real.is_cuda(), "gan_kernels (CUDA): interpolate needs CUDA tensors");
  check_cuda(fake, real, "fake");
  TORCH_CHECK(real.dim() >= 1, "gan_kernels (CUDA): interpolate needs a batch dimension");
  TORCH_CHECK(real.sizes() == fake.sizes(), "gan_kernels (CUDA): real and fake must have the same shape, got ",
              real.sizes(), " and ", fake.sizes());
  const c10::cuda::CUDAGuard guard(real.device());
  const int64_t B = real.size(0);
  const at::Tensor a = alpha_for(alpha, real, B);
  at::Tensor out = empty_batch_major(real);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const int64_t D = n / B;
  const at::Tensor r = match_layout(real, out);
  const at::Tensor f = match_layout(fake.scalar_type() == real.scalar_type() ? fake : fake.to(real.scalar_type()), out);

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, real.scalar_type(), "gan_kernels_interpolate_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int kVec = vec_width<scalar_t>();
    const bool vec = aligned16(r.const_data_ptr()) && aligned16(f.const_data_ptr()) && aligned16(out.const_data_ptr());
    const int64_t w = vec ? kVec : 1;
    const TileStep st = tile_step(w, D);
    auto kernel = vec ? interpolate_forward_kernel<scalar_t, acc_t, kVec> : interpolate_forward_kernel<scalar_t, acc_t, 1>;
    kernel<<<tile_blocks(n, w), kThreads, 0, stream>>>(r.const_data_ptr<scalar_t>(), f.const_data_ptr<scalar_t>(),
                                                       a.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), n, D,
                                                       st.samples, st.rest);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> interpolate_backward_cuda(const at::Tensor& grad_out, const at::Tensor& alpha,
                                                             bool need_real, bool need_fake) {
  TORCH_CHECK(grad_out.is_cuda(), "gan_kernels (CUDA): interpolate_backward needs CUDA tensors");
  TORCH_CHECK(grad_out.dim() >= 1, "gan_kernels (CUDA): interpolate_backward needs a batch dimension");
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const int64_t B = grad_out.size(0);
  const at::Tensor a = alpha_for(alpha, grad_out, B);
  at::Tensor d_real = need_real ? empty_batch_major(grad_out) : at::empty({0}, grad_out.options());
  at::Tensor d_fake = need_fake ? empty_batch_major(grad_out) : at::empty({0}, grad_out.options());
  const int64_t n = grad_out.numel();
  if (n == 0 || !(need_real || need_fake)) return {d_real, d_fake};
  const int64_t D = n / B;
  const at::Tensor& like = need_real ? d_real : d_fake;
  const at::Tensor g = match_layout(grad_out, like);

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "gan_kernels_interpolate_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int kVec = vec_width<scalar_t>();
    scalar_t* dr = need_real ? d_real.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* df = need_fake ? d_fake.mutable_data_ptr<scalar_t>() : nullptr;
    const bool vec = aligned16(g.const_data_ptr()) && aligned16(dr) && aligned16(df);
    const int64_t w = vec ? kVec : 1;
    const TileStep st = tile_step(w, D);
    auto kernel = vec ? interpolate_backward_kernel<scalar_t, acc_t, kVec> : interpolate_backward_kernel<scalar_t, acc_t, 1>;
    kernel<<<tile_blocks(n, w), kThreads, 0, stream>>>(g.const_data_ptr<scalar_t>(), a.const_data_ptr<acc_t>(), dr, df,
                                                       n, D, st.samples, st.rest);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {d_real, d_fake};
}

}  // namespace
}  // namespace cuda_impl
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m) {
  m.impl("interpolate_forward", &gan_kernels::cuda_impl::interpolate_forward_cuda);
  m.impl("interpolate_backward", &gan_kernels::cuda_impl::interpolate_backward_cuda);
}
