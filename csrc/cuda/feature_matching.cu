// CUDA kernels of feature matching over a list of (real, fake) feature-map pairs:
// term_k = w_k * reduce |r_k - f_k| (mean, or sum for "sum"); see csrc/cpu/feature_matching.cpp.
//
// A list of many small maps (HiFi-GAN: 54 pairs) is bound by kernel launches, so each direction
// is one launch per element dtype over a pointer table of every pair (tables.cuh), not a launch
// per pair.
//
// Forward: block b of the partial-sum launch sums |r - f| over one fixed chunk of one pair (the
// chunks a function of the pair's size alone, so the bits do not depend on the card or on how a
// long list is cut into tables) and writes it to the chunk's own slot; then one one-block
// kernel adds every pair's partials in order, weights them and writes the terms or their total.
// No atomics, no host synchronisation, everything on the current stream. Backward: one
// elementwise launch writes w_k * go * sign(r - f) (/ N) and its negative for every pair,
// recomputing the sign from the inputs.
#include <tuple>
#include <vector>

#include <torch/library.h>

#include "common.cuh"
#include "tables.cuh"

namespace gan_kernels {
namespace cuda_impl {
namespace {

constexpr int kFmThreads = 256;
// Elements per block of the partial-sum kernel: enough work per block to hide its start-up,
// few enough blocks that the finisher's serial loop over partials stays short.
constexpr int64_t kFmChunk = 16384;

// One pair in a table of the partial-sum kernel.
template <typename T>
struct FmEntry {
  const T* r;
  const T* f;
  int64_t n;
  int64_t first_block;  // the pair's first block in its launch
  int64_t slot;         // its first partial in `parts`
};

constexpr int kFmTableCap = 80;

template <typename T>
struct FmPartialTable {
  FmEntry<T> entry[kFmTableCap];
};
static_assert(sizeof(FmPartialTable<double>) <= kTableBytes, "the partial-sum table must fit the kernel arguments");

// Block b: chunk c = b - first_block of its pair, [c kFmChunk, min((c + 1) kFmChunk, n)), summed
// in acc_t and stored in double at parts[slot + c] (so one finisher serves mixed dtypes).
template <typename T, typename acc_t>
__global__ void __launch_bounds__(kFmThreads) fm_partial_kernel(const __grid_constant__ FmPartialTable<T> tab, int m,
                                                                double* __restrict__ parts) {
  __shared__ acc_t smem[kFmThreads / 32];
  const int64_t b = blockIdx.x;
  const FmEntry<T>& x = tab.entry[table_entry(tab, m, b)];
  const int64_t chunk = b - x.first_block;
  const int64_t lo = chunk * kFmChunk;
  const int64_t hi = lo + kFmChunk < x.n ? lo + kFmChunk : x.n;
  acc_t s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kFmThreads) {
    const acc_t d = static_cast<acc_t>(x.r[i]) - static_cast<acc_t>(x.f[i]);
    s += d < acc_t(0) ? -d : d;
  }
  s = block_sum<kFmThreads, acc_t>(s, smem);
  if (threadIdx.x == 0) parts[x.slot + chunk] = static_cast<double>(s);
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

// One pair in a table of the backward kernel.
template <typename T>
struct FmGradEntry {
  const T* r;
  const T* f;
  T* dr;  // null when the real side is not asked for
  T* df;  // null when the fake side is not asked for
  int64_t n;
  int64_t first_block;  // the pair's first block in its launch
  int64_t go;           // offset of the pair's upstream gradient in grad's storage
  double weight;
};

constexpr int kFmGradTableCap = 48;
// Elements per block of the backward: eight per thread, so a block does some work for its start.
constexpr int64_t kFmGradChunk = static_cast<int64_t>(kThreads) * 8;

template <typename T>
struct FmGradTable {
  FmGradEntry<T> entry[kFmGradTableCap];
};
static_assert(sizeof(FmGradTable<double>) <= kTableBytes, "the backward table must fit the kernel arguments");

// Block b: chunk (b - first_block) of its pair. grad is read through its dtype code, converted to
// acc_t as Tensor.to would.
template <typename T, typename acc_t>
__global__ void __launch_bounds__(kThreads) fm_backward_kernel(const __grid_constant__ FmGradTable<T> tab, int m,
                                                               const void* grad, int grad_code, bool mean) {
  const int64_t b = blockIdx.x;
  const FmGradEntry<T>& x = tab.entry[table_entry(tab, m, b)];
  // The reference's chain: (go * w) / N, times sign(r - f); sign(0) = 0, NaN stays NaN.
  acc_t s = load_as<acc_t>(grad, x.go, grad_code) * static_cast<acc_t>(x.weight);
  if (mean) s = s / static_cast<acc_t>(x.n);
  const int64_t lo = (b - x.first_block) * kFmGradChunk;
  const int64_t hi = lo + kFmGradChunk < x.n ? lo + kFmGradChunk : x.n;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    const acc_t d = static_cast<acc_t>(x.r[i]) - static_cast<acc_t>(x.f[i]);
    const acc_t sg = d > acc_t(0) ? acc_t(1) : (d < acc_t(0) ? acc_t(-1) : d * acc_t(0));
    const acc_t g = s * sg;
    if (x.dr) x.dr[i] = static_cast<T>(g);
    if (x.df) x.df[i] = static_cast<T>(-g);
  }
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
    blocks[k] = (n + kFmChunk - 1) / kFmChunk;  // 0 for an empty pair: its sum stays 0
    offsets[k] = n_parts;
    n_parts += blocks[k];
  }
  at::Tensor parts = at::empty({n_parts > 0 ? n_parts : 1}, fake[0].options().dtype(at::kDouble));
  for (const at::ScalarType st : kListDtypes) {
    std::vector<int64_t> group, group_blocks;  // non-empty pairs of this dtype, in list order
    for (int64_t k = 0; k < K; ++k) {
      if (pairs[k].r.scalar_type() != st || blocks[k] == 0) continue;
      group.push_back(k);
      group_blocks.push_back(blocks[k]);
    }
    if (group.empty()) continue;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "gan_kernels_fm_forward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for (const TableSlice& sl : table_slices(group_blocks, kFmTableCap)) {
        FmPartialTable<scalar_t> tab{};
        int64_t first_block = 0;
        for (size_t j = sl.begin; j < sl.end; ++j) {
          const int64_t k = group[j];
          tab.entry[j - sl.begin] = {pairs[k].r.const_data_ptr<scalar_t>(), pairs[k].f.const_data_ptr<scalar_t>(),
                                     fake[k].numel(), first_block, offsets[k]};
          first_block += blocks[k];
        }
        fm_partial_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(sl.blocks), kFmThreads, 0, stream>>>(
            tab, static_cast<int>(sl.end - sl.begin), parts.mutable_data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
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
  const int grad_code = dtype_code(grad.scalar_type(), "feature_matching_backward grad");
  const c10::cuda::CUDAGuard guard(fake[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // grad read in place: a view of K (or 1) elements, stride 0 when autograd expanded it.
  const at::Tensor go = grad.reshape({-1});
  const int64_t go_step = grad.numel() == 1 ? 0 : go.stride(0);
  std::vector<FmPair> pairs;
  std::vector<at::Tensor> dr(K), df(K);
  for (int64_t k = 0; k < K; ++k) {
    pairs.push_back(fm_pair(real[k], fake[k]));
    if (need_real) dr[k] = grad_buffer(pairs.back(), real[k]);
    if (need_fake) df[k] = grad_buffer(pairs.back(), fake[k]);
  }
  for (const at::ScalarType st : kListDtypes) {
    std::vector<int64_t> group, group_blocks;  // non-empty pairs of this dtype, in list order
    for (int64_t k = 0; k < K; ++k) {
      const int64_t n = pairs[k].r.numel();
      if (pairs[k].r.scalar_type() != st || n == 0) continue;
      group.push_back(k);
      group_blocks.push_back((n + kFmGradChunk - 1) / kFmGradChunk);
    }
    if (group.empty()) continue;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "gan_kernels_fm_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for (const TableSlice& sl : table_slices(group_blocks, kFmGradTableCap)) {
        FmGradTable<scalar_t> tab{};
        int64_t first_block = 0;
        for (size_t j = sl.begin; j < sl.end; ++j) {
          const int64_t k = group[j];
          tab.entry[j - sl.begin] = {pairs[k].r.const_data_ptr<scalar_t>(),
                                     pairs[k].f.const_data_ptr<scalar_t>(),
                                     need_real ? dr[k].mutable_data_ptr<scalar_t>() : nullptr,
                                     need_fake ? df[k].mutable_data_ptr<scalar_t>() : nullptr,
                                     pairs[k].r.numel(),
                                     first_block,
                                     k * go_step,
                                     weights[k]};
          first_block += group_blocks[j];
        }
        fm_backward_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(sl.blocks), kThreads, 0, stream>>>(
            tab, static_cast<int>(sl.end - sl.begin), go.const_data_ptr(), grad_code, reduction != kReduceSum);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  // Back to each input's own layout (a batch-major input keeps its strides).
  for (int64_t k = 0; k < K; ++k) {
    if (need_real) d_real.push_back(grad_in_layout(pairs[k], dr[k], real[k]));
    if (need_fake) d_fake.push_back(grad_in_layout(pairs[k], df[k], fake[k]));
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
