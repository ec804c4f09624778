// CUDA kernels of feature matching over a list of (real, fake) feature-map pairs:
// term_k = w_k * reduce |r_k - f_k| (mean, or sum for "sum"); see csrc/cpu/feature_matching.cpp.
//
// Forward, per pair: a grid of blocks each writes the partial sum of its fixed chunk (a function
// of the pair's size alone, so the bits do not depend on the card); then one one-block kernel adds
// every pair's partials in order, weights them and writes the terms or their total. No atomics,
// no host synchronisation, everything on the current stream. Backward, per pair: one elementwise
// kernel writes w_k * go * sign(r - f) (/ N) and its negative, recomputing the sign from the
// inputs.
#include <tuple>
#include <vector>

#include <torch/library.h>

#include "common.cuh"

namespace gan_kernels {
namespace cuda_impl {
namespace {

constexpr int kFmThreads = 256;
// Elements per block of the partial-sum kernel: enough work per block to hide its start-up,
// few enough blocks that the finisher's serial loop over partials stays short.
constexpr int64_t kFmChunk = 16384;

template <typename T, typename acc_t>
__global__ void __launch_bounds__(kFmThreads) fm_partial_kernel(const T* __restrict__ r, const T* __restrict__ f,
                                                                int64_t n, acc_t* __restrict__ parts) {
  __shared__ acc_t smem[kFmThreads / 32];
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * kFmChunk;
  const int64_t hi = lo + kFmChunk < n ? lo + kFmChunk : n;
  acc_t s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kFmThreads) {
    const acc_t d = static_cast<acc_t>(r[i]) - static_cast<acc_t>(f[i]);
    s += d < acc_t(0) ? -d : d;
  }
  s = block_sum<kFmThreads, acc_t>(s, smem);
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

// One pair's description for the finisher (passed by value in a fixed-size table).
constexpr int kFmMaxPairs = 64;
struct FmTable {
  int64_t offset[kFmMaxPairs];  // first partial of the pair
  int64_t count[kFmMaxPairs];   // its number of partials
  double weight[kFmMaxPairs];
  double numel[kFmMaxPairs];
};

// One thread: each pair's partials added in order (in double), the terms written in list order,
// and their total ("none": the terms only). Partials of every pair are stored as double.
template <typename out_t>
__global__ void fm_finish_kernel(const double* __restrict__ parts, FmTable table, int K, bool none, bool mean,
                                 out_t* __restrict__ out, out_t* __restrict__ terms_base, int first) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  out_t total = first == 0 ? out_t(0) : *out;
  for (int k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t j = 0; j < table.count[k]; ++j) s += parts[table.offset[k] + j];
    const double red = mean ? s / table.numel[k] : s;
    const out_t term = static_cast<out_t>(table.weight[k] * red);
    if (none) {
      terms_base[first + k] = term;
    } else {
      total = (first == 0 && k == 0) ? term : total + term;
    }
  }
  if (!none) *out = total;
}

template <typename T, typename acc_t>
__global__ void __launch_bounds__(kThreads) fm_backward_kernel(const T* __restrict__ r, const T* __restrict__ f,
                                                               int64_t n, const acc_t* __restrict__ go,
                                                               acc_t weight, acc_t n_acc, bool mean,
                                                               T* __restrict__ dr, T* __restrict__ df) {
  // The reference's chain: (go * w) / N, times sign(r - f); sign(0) = 0, NaN stays NaN.
  acc_t s = go[0] * weight;
  if (mean) s = s / n_acc;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const acc_t d = static_cast<acc_t>(r[i]) - static_cast<acc_t>(f[i]);
    const acc_t sg = d > acc_t(0) ? acc_t(1) : (d < acc_t(0) ? acc_t(-1) : d * acc_t(0));
    const acc_t g = s * sg;
    if (dr) dr[i] = static_cast<T>(g);
    if (df) df[i] = static_cast<T>(-g);
  }
}

struct FmPair {
  at::Tensor r, f;
  bool in_place = false;
};

FmPair fm_pair(const at::Tensor& r, const at::Tensor& f) {
  FmPair p;
  p.in_place = r.strides() == f.strides() && is_batch_major(r);
  p.r = p.in_place ? r : r.contiguous();
  p.f = p.in_place ? f : f.contiguous();
  return p;
}

at::Tensor feature_matching_forward_cuda(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
                                         int64_t reduction) {
  check_reduction(reduction);
  check_feature_lists(real, fake, weights, c10::DeviceType::CUDA, "feature_matching_forward");
  const c10::cuda::CUDAGuard guard(fake[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t K = static_cast<int64_t>(fake.size());
  bool any_double = false;
  std::vector<FmPair> pairs;
  std::vector<int64_t> blocks(K), offsets(K);
  int64_t n_parts = 0;
  for (int64_t k = 0; k < K; ++k) {
    pairs.push_back(fm_pair(real[k], fake[k]));
    any_double = any_double || fake[k].scalar_type() == at::kDouble;
    const int64_t n = fake[k].numel();
    blocks[k] = n == 0 ? 0 : (n + kFmChunk - 1) / kFmChunk;
    TORCH_CHECK(blocks[k] < (int64_t{1} << 31), "gan_kernels (CUDA): feature map too large (", n, " elements)");
    offsets[k] = n_parts;
    n_parts += blocks[k];
  }
  // Partials in double for every pair, so one finisher serves mixed dtypes.
  at::Tensor parts = at::empty({n_parts > 0 ? n_parts : 1}, fake[0].options().dtype(at::kDouble));
  for (int64_t k = 0; k < K; ++k) {
    if (blocks[k] == 0) continue;
    const FmPair& p = pairs[k];
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.r.scalar_type(), "gan_kernels_fm_forward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      at::Tensor part_k = std::is_same<acc_t, double>::value
                              ? parts.narrow(0, offsets[k], blocks[k])
                              : at::empty({blocks[k]}, fake[0].options().dtype(at::kFloat));
      fm_partial_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(blocks[k]), kFmThreads, 0, stream>>>(
          p.r.const_data_ptr<scalar_t>(), p.f.const_data_ptr<scalar_t>(), p.r.numel(),
          part_k.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (!std::is_same<acc_t, double>::value) parts.narrow(0, offsets[k], blocks[k]).copy_(part_k);
    });
  }
  const at::ScalarType out_t = any_double ? at::kDouble : at::kFloat;
  const bool none = reduction == kReduceNone;
  at::Tensor out = none ? at::empty({K}, fake[0].options().dtype(out_t)) : at::empty({}, fake[0].options().dtype(out_t));
  // The table holds kFmMaxPairs pairs; longer lists finish in several launches, in order.
  for (int64_t first = 0; first < K; first += kFmMaxPairs) {
    const int64_t cnt = K - first < kFmMaxPairs ? K - first : kFmMaxPairs;
    FmTable table{};
    for (int64_t j = 0; j < cnt; ++j) {
      const int64_t k = first + j;
      table.offset[j] = offsets[k];
      table.count[j] = blocks[k];
      table.weight[j] = weights[k];
      table.numel[j] = static_cast<double>(fake[k].numel());
    }
    AT_DISPATCH_FLOATING_TYPES(out_t, "gan_kernels_fm_finish_cuda", [&] {
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      fm_finish_kernel<scalar_t><<<1, 32, 0, stream>>>(parts.const_data_ptr<double>(), table, static_cast<int>(cnt),
                                                       none, reduction != kReduceSum, none ? nullptr : op,
                                                       none ? op : nullptr, static_cast<int>(first));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_matching_backward_cuda(
    const at::Tensor& grad, at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
    int64_t reduction, bool need_real, bool need_fake) {
  check_reduction(reduction);
  check_feature_lists(real, fake, weights, c10::DeviceType::CUDA, "feature_matching_backward");
  check_cuda(grad, fake[0], "grad");
  const int64_t K = static_cast<int64_t>(fake.size());
  TORCH_CHECK_VALUE(grad.numel() == 1 || grad.numel() == K, "gan_kernels::feature_matching_backward: grad has ",
                    grad.numel(), " elements, expected 1 or ", K);
  std::vector<at::Tensor> d_real, d_fake;
  if (!need_real && !need_fake) return {d_real, d_fake};
  const c10::cuda::CUDAGuard guard(fake[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor go_flat = grad.reshape({-1});
  for (int64_t k = 0; k < K; ++k) {
    const FmPair p = fm_pair(real[k], fake[k]);
    auto make = [&](const at::Tensor& x) { return p.in_place ? at::empty_like(x) : at::empty(x.sizes(), x.options()); };
    at::Tensor dr = need_real ? make(real[k]) : at::Tensor();
    at::Tensor df = need_fake ? make(fake[k]) : at::Tensor();
    const int64_t n = p.r.numel();
    if (n > 0) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.r.scalar_type(), "gan_kernels_fm_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        // The upstream gradient of this pair, on the device, in the pair's accumulation dtype.
        const at::Tensor go = go_flat.select(0, grad.numel() == 1 ? 0 : k).to(c10::CppTypeToScalarType<acc_t>::value).reshape({1});
        const int64_t blocks = grid_for(n, fake[0].get_device());
        fm_backward_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
            p.r.const_data_ptr<scalar_t>(), p.f.const_data_ptr<scalar_t>(), n, go.const_data_ptr<acc_t>(),
            static_cast<acc_t>(weights[k]), static_cast<acc_t>(n), reduction != kReduceSum,
            need_real ? dr.mutable_data_ptr<scalar_t>() : nullptr, need_fake ? df.mutable_data_ptr<scalar_t>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
    auto finish = [&](const at::Tensor& buf, const at::Tensor& x) {
      return p.in_place || !is_batch_major(x) ? buf : match_layout(buf, x);
    };
    if (need_real) d_real.push_back(finish(dr, real[k]));
    if (need_fake) d_fake.push_back(finish(df, fake[k]));
  }
  return {d_real, d_fake};
}

}  // namespace
}  // namespace cuda_impl
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m) {
  m.impl("feature_matching_forward", &gan_kernels::cuda_impl::feature_matching_forward_cuda);
  m.impl("feature_matching_backward", &gan_kernels::cuda_impl::feature_matching_backward_cuda);
}
