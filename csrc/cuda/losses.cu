// CUDA kernels of the GAN losses: d_loss_forward, g_loss_forward and loss_backward
// (semantics: docs/kernel_contract.md, "Losses").
//
// Two paths, chosen by n = max(N_r, N_f) against kOneBlockMax (reasons at the constant):
//
// * Small logits (a batch, a small PatchGAN map): ONE block of 1024 threads computes the whole
//   loss. It walks the elements in a fixed thread-to-element mapping, writes each element's
//   gradient as it goes, and reduces the sums in a fixed-order tree; the relativistic means come
//   first in the same block. One launch, no scratch memory.
//
// * Large logits: a grid of kThreads-thread blocks, block b owning the fixed chunk
//   [b P, min((b + 1) P, n)) with P = chunk_plan(n).per_block (a function of n alone, never of
//   the SM count, so the partial sums and therefore the bits are the same on every card). Each
//   block writes its per-element outputs and one partial sum per quantity into a scratch tensor
//   of the accumulation dtype; a one-block finisher adds the G <= kMaxPartials partials in block
//   order. Launches and traffic (in = input element size, acc = 4 or 8 bytes, N = N_r + N_f):
//     SEPARATE / PAIRED: terms kernel (reads N in; writes N acc of gradients when compute_grad,
//       n acc of loss for "none", 2 G acc of partials otherwise) + finisher (reads 2 G acc,
//       writes the 0-dim loss; skipped for "none"). 2 launches.
//     RELATIVISTIC: means kernel (reads N in, writes 2 G partials) + means finisher (writes m_r,
//       m_f to scratch) + terms kernel (reads N in and the two means; writes a_k + drift part /
//       b_k, and 4 G partials: loss_r, loss_f, sum a, sum b) + loss finisher (writes the loss and
//       sum a, sum b to scratch) + correction kernel (reads and writes N acc). 5 launches,
//       2 N in + 3 N acc bytes; "none" (no gradients) stops after the terms kernel.
//   Scratch: (4 G + 4) acc at most, G <= kMaxPartials = 2048, i.e. <= 32 KiB (fp32).
//   Nothing is read back to the host: every scalar a later kernel needs (the means, sum a,
//   sum b) stays in device memory, so the path is CUDA-graph capturable.
//
// Both paths are deterministic (fixed partition, fixed-order sums, no atomics); they add in a
// different order, so a loss of n elements may differ in the last bits between a one-block and
// a multi-block size, never between two runs of the same size.

#include <optional>
#include <tuple>
#include <vector>

#include <torch/library.h>

#include "common.cuh"

namespace gan_kernels {
namespace cuda_impl {
namespace {

// Threads of the single loss block: 1024 to move a 64 x 1 x 30 x 30 PatchGAN map in few steps.
constexpr int kLossThreads = 1024;

// Weight of one side's sum of terms: 1/n for "mean" (n > 0), else 1.
template <typename acc_t>
__device__ __forceinline__ acc_t side_weight(int64_t reduction, int64_t n) {
  return (reduction == kReduceMean && n > 0) ? acc_t(1) / static_cast<acc_t>(n) : acc_t(1);
}

// The per-element work both loss paths share: the loop-invariant parameters, and one real or
// fake element's term (formulas in the comment of loss_forward_kernel below).
template <typename acc_t>
struct ElementTerms {
  LossSpec spec;
  bool rel, paired, compute_grad;
  acc_t w_r, w_f;
  acc_t drift;  // drift only when asked for: 0 * r^2 would turn an infinite logit into NaN
  acc_t m_r, m_f;  // the batch means (relativistic), else 0

  // Real element i's term, returned; with compute_grad its gradient a (plus the drift part) goes
  // to grad_real[i], -a to grad_fake[i] when paired, and a is added to sum_a.
  template <typename scalar_t>
  __device__ __forceinline__ acc_t real_term(const scalar_t* real, const scalar_t* fake, int64_t i, acc_t* grad_real,
                                             acc_t* grad_fake, acc_t& sum_a) const {
    const acc_t r = static_cast<acc_t>(real[i]);
    const acc_t x = rel ? r - m_f : (paired ? r - static_cast<acc_t>(fake[i]) : r);
    const acc_t v = term_value<acc_t>(spec.real, x) + (drift != acc_t(0) ? drift * r * r : acc_t(0));
    if (compute_grad) {
      const acc_t a = w_r * term_grad<acc_t>(spec.real, x);
      grad_real[i] = drift != acc_t(0) ? a + w_r * acc_t(2) * drift * r : a;
      if (paired) grad_fake[i] = -a;
      sum_a += a;
    }
    return v;
  }

  // Fake element j's term (never called when paired); with compute_grad its gradient b goes to
  // grad_fake[j] and is added to sum_b.
  template <typename scalar_t>
  __device__ __forceinline__ acc_t fake_term(const scalar_t* fake, int64_t j, acc_t* grad_fake, acc_t& sum_b) const {
    const acc_t f = static_cast<acc_t>(fake[j]);
    const acc_t y = rel ? f - m_r : f;
    const acc_t v = term_value<acc_t>(spec.fake, y);
    if (compute_grad) {
      const acc_t b = w_f * term_grad<acc_t>(spec.fake, y);
      grad_fake[j] = b;
      sum_b += b;
    }
    return v;
  }
};

// loss = w_r * sum_i [phi_r(x_i) + drift r_i^2] + w_f * sum_j phi_f(y_j), where x_i is r_i,
// r_i - mean(f) (relativistic) or r_i - f_i (paired), and y_j is f_j or f_j - mean(r). The fake
// loop is skipped when paired (the fake logits only enter through x_i). `real` is null with
// n_r = 0 when the loss has no real term. For reduction "none", loss has n elements and every
// thread adds its fake term to the real term it wrote itself (same i in both loops).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kLossThreads) loss_forward_kernel(
    const scalar_t* __restrict__ real, int64_t n_r, const scalar_t* __restrict__ fake, int64_t n_f,
    LossSpec spec, int64_t reduction, bool compute_grad, acc_t* __restrict__ loss,
    acc_t* __restrict__ grad_real, acc_t* __restrict__ grad_fake) {
  __shared__ acc_t smem[kLossThreads / 32];
  const int64_t tid = threadIdx.x;
  const bool none = reduction == kReduceNone;
  ElementTerms<acc_t> t{spec, spec.mode == kModeRelativistic, spec.mode == kModePaired, compute_grad,
                        side_weight<acc_t>(reduction, n_r), side_weight<acc_t>(reduction, n_f),
                        static_cast<acc_t>(spec.drift), acc_t(0), acc_t(0)};
  const bool rel = t.rel;

  if (rel) {  // uniform over the block: every thread takes part in block_sum
    acc_t s = 0;
    for (int64_t i = tid; i < n_r; i += kLossThreads) s += static_cast<acc_t>(real[i]);
    t.m_r = block_sum<kLossThreads>(s, smem) / static_cast<acc_t>(n_r);
    s = 0;
    for (int64_t j = tid; j < n_f; j += kLossThreads) s += static_cast<acc_t>(fake[j]);
    t.m_f = block_sum<kLossThreads>(s, smem) / static_cast<acc_t>(n_f);
  }

  acc_t sum_r = 0, sum_f = 0;  // sums of the loss terms
  acc_t sum_a = 0, sum_b = 0;  // sums of the weighted term derivatives (relativistic coupling)
  for (int64_t i = tid; i < n_r; i += kLossThreads) {
    const acc_t v = t.real_term(real, fake, i, grad_real, grad_fake, sum_a);
    sum_r += v;
    if (none) loss[i] = v;
  }
  if (!t.paired) {
    for (int64_t j = tid; j < n_f; j += kLossThreads) {
      const acc_t v = t.fake_term(fake, j, grad_fake, sum_b);
      sum_f += v;
      if (none) loss[j] = (n_r > 0 ? loss[j] : acc_t(0)) + v;
    }
  }

  if (!none) {
    const acc_t total_r = block_sum<kLossThreads>(sum_r, smem);
    const acc_t total_f = block_sum<kLossThreads>(sum_f, smem);
    if (tid == 0) loss[0] = t.w_r * total_r + t.w_f * total_f;
  }
  if (rel && compute_grad) {
    // Every real logit also moves mean(r), which every fake term sees, and vice versa.
    const acc_t total_a = block_sum<kLossThreads>(sum_a, smem);
    const acc_t total_b = block_sum<kLossThreads>(sum_b, smem);
    const acc_t corr_r = total_b / static_cast<acc_t>(n_r);
    const acc_t corr_f = total_a / static_cast<acc_t>(n_f);
    for (int64_t i = tid; i < n_r; i += kLossThreads) grad_real[i] -= corr_r;
    for (int64_t j = tid; j < n_f; j += kLossThreads) grad_fake[j] -= corr_f;
  }
}

// ---------------------------------------------------------------------------------------------
// Multi-block path for large logits.

// Above this many elements (max of N_r, N_f) the loss leaves the one-block kernel. Measured on
// an H200 (one-block kernel): 3.4 us at 16 logits, 90 us for a 64 x 1 x 30 x 30 relativistic
// map (57600 logits, ~1.5 ns per element while the data sit in L2), 16-22 ms for 4M logits
// (one SM's bandwidth, from HBM). The multi-block path pays 2 launches (separate / paired) to
// 5 (relativistic), a few microseconds in all; at ~1 ns per element on one SM that is won back
// from several thousand elements on. 8192 keeps every batch-of-logits and small PatchGAN map
// on the single launch and sends the 64 x 1 x 30 x 30 map and anything larger to the grid.
// (An estimate from the numbers above, not a measured crossover: the benchmarks may move it.)
constexpr int64_t kOneBlockMax = 8192;
// At most this many blocks (and partial sums per quantity): bounds the scratch and the
// finisher's serial part (two partials per finisher thread).
constexpr int64_t kMaxPartials = 2048;
// Elements per block at least: four per thread, so a block does some work for its launch.
constexpr int64_t kMinChunk = static_cast<int64_t>(kThreads) * 4;
// Threads of the one-block finishers.
constexpr int kFinishThreads = 1024;

// The partition of [0, n) into blocks: a function of n only (determinism across cards).
struct ChunkPlan {
  int64_t per_block;    // a multiple of kThreads, >= kMinChunk
  unsigned int blocks;  // ceil(n / per_block), in [1, kMaxPartials]
};

inline ChunkPlan chunk_plan(int64_t n) {
  // per_block >= ceil(n / kMaxPartials) makes ceil(n / per_block) <= kMaxPartials.
  int64_t per = (n + kMaxPartials - 1) / kMaxPartials;
  per = (per + kThreads - 1) / kThreads * kThreads;
  if (per < kMinChunk) per = kMinChunk;
  int64_t blocks = (n + per - 1) / per;
  if (blocks < 1) blocks = 1;
  return {per, static_cast<unsigned int>(blocks)};
}

// Chunk [begin, end) of the calling block.
struct Chunk {
  int64_t begin, end;
};

__device__ __forceinline__ Chunk block_chunk(int64_t n, int64_t per_block) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * per_block;
  const int64_t end = begin + per_block < n ? begin + per_block : n;
  return {begin, end};
}

// Relativistic means, first half: block b writes part[b] = sum of its chunk of r and
// part[G + b] = the same of f (G = gridDim.x).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) mean_partials_kernel(const scalar_t* __restrict__ real, int64_t n_r,
                                                                 const scalar_t* __restrict__ fake, int64_t n_f,
                                                                 int64_t per_block, acc_t* __restrict__ part) {
  __shared__ acc_t smem[kThreads / 32];
  const Chunk c = block_chunk(n_r > n_f ? n_r : n_f, per_block);
  acc_t sr = 0, sf = 0;
  for (int64_t k = c.begin + threadIdx.x; k < c.end; k += kThreads) {
    if (k < n_r) sr += static_cast<acc_t>(real[k]);
    if (k < n_f) sf += static_cast<acc_t>(fake[k]);
  }
  sr = block_sum<kThreads>(sr, smem);
  sf = block_sum<kThreads>(sf, smem);
  if (threadIdx.x == 0) {
    part[blockIdx.x] = sr;
    part[gridDim.x + blockIdx.x] = sf;
  }
}

// Sum of the g partials of one quantity, in a fixed order, returned to every thread of the
// (single) finisher block.
template <typename acc_t>
__device__ __forceinline__ acc_t partials_total(const acc_t* row, int64_t g, acc_t* smem) {
  acc_t s = 0;
  for (int64_t b = threadIdx.x; b < g; b += kFinishThreads) s += row[b];
  return block_sum<kFinishThreads>(s, smem);
}

// Relativistic means, second half: means[0] = m_r, means[1] = m_f (device memory, read by the
// terms kernel: no round trip through the host).
template <typename acc_t>
__global__ void __launch_bounds__(kFinishThreads) finish_means_kernel(const acc_t* part, int64_t g, int64_t n_r,
                                                                      int64_t n_f, acc_t* means) {
  __shared__ acc_t smem[kFinishThreads / 32];
  const acc_t tr = partials_total(part, g, smem);
  const acc_t tf = partials_total(part + g, g, smem);
  if (threadIdx.x == 0) {
    means[0] = tr / static_cast<acc_t>(n_r);
    means[1] = tf / static_cast<acc_t>(n_f);
  }
}

// Per-element terms of every mode, the same formulas as loss_forward_kernel with one element k
// per iteration covering both real index k (k < n_r) and fake index k (k < n_f). Relativistic:
// means = {m_r, m_f} in device memory, and grad_real / grad_fake get the uncorrected
// a_k + 2 W_r drift r_k / b_k. `part` (null for "none") receives nsums rows of G partials:
// loss_r, loss_f, then (nsums == 4) sum a, sum b.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) loss_terms_kernel(
    const scalar_t* __restrict__ real, int64_t n_r, const scalar_t* __restrict__ fake, int64_t n_f,
    int64_t per_block, LossSpec spec, int64_t reduction, bool compute_grad, const acc_t* means,
    acc_t* __restrict__ loss, acc_t* __restrict__ grad_real, acc_t* __restrict__ grad_fake, acc_t* part,
    int nsums) {
  __shared__ acc_t smem[kThreads / 32];
  const bool none = reduction == kReduceNone;
  const bool rel = spec.mode == kModeRelativistic;
  const ElementTerms<acc_t> t{spec, rel, spec.mode == kModePaired, compute_grad,
                              side_weight<acc_t>(reduction, n_r), side_weight<acc_t>(reduction, n_f),
                              static_cast<acc_t>(spec.drift), rel ? means[0] : acc_t(0), rel ? means[1] : acc_t(0)};

  const Chunk c = block_chunk(n_r > n_f ? n_r : n_f, per_block);
  acc_t sum_r = 0, sum_f = 0, sum_a = 0, sum_b = 0;
  for (int64_t k = c.begin + threadIdx.x; k < c.end; k += kThreads) {
    acc_t lv = 0;  // this element's "none" loss
    if (k < n_r) {
      const acc_t v = t.real_term(real, fake, k, grad_real, grad_fake, sum_a);
      sum_r += v;
      lv = v;
    }
    if (!t.paired && k < n_f) {
      const acc_t v = t.fake_term(fake, k, grad_fake, sum_b);
      sum_f += v;
      // As the one-block kernel: the real term (0 when there is none) plus the fake term.
      lv = (k < n_r ? lv : acc_t(0)) + v;
    }
    if (none) loss[k] = lv;
  }

  if (part != nullptr) {  // uniform over the grid: every thread takes part in block_sum
    const unsigned int g = gridDim.x;
    const acc_t tr = block_sum<kThreads>(sum_r, smem);
    const acc_t tf = block_sum<kThreads>(sum_f, smem);
    acc_t ta = 0, tb = 0;
    if (nsums == 4) {
      ta = block_sum<kThreads>(sum_a, smem);
      tb = block_sum<kThreads>(sum_b, smem);
    }
    if (threadIdx.x == 0) {
      part[blockIdx.x] = tr;
      part[g + blockIdx.x] = tf;
      if (nsums == 4) {
        part[2 * static_cast<int64_t>(g) + blockIdx.x] = ta;
        part[3 * static_cast<int64_t>(g) + blockIdx.x] = tb;
      }
    }
  }
}

// loss[0] = W_r sum loss_r + W_f sum loss_f; with nsums == 4 also sums[0] = sum a, sums[1] = sum b
// (device memory, read by the correction kernel).
template <typename acc_t>
__global__ void __launch_bounds__(kFinishThreads) finish_loss_kernel(const acc_t* part, int64_t g, int nsums,
                                                                     int64_t n_r, int64_t n_f, int64_t reduction,
                                                                     acc_t* loss, acc_t* sums) {
  __shared__ acc_t smem[kFinishThreads / 32];
  const acc_t w_r = side_weight<acc_t>(reduction, n_r);
  const acc_t w_f = side_weight<acc_t>(reduction, n_f);
  const acc_t total_r = partials_total(part, g, smem);
  const acc_t total_f = partials_total(part + g, g, smem);
  if (threadIdx.x == 0) loss[0] = w_r * total_r + w_f * total_f;
  if (nsums == 4) {
    const acc_t total_a = partials_total(part + 2 * g, g, smem);
    const acc_t total_b = partials_total(part + 3 * g, g, smem);
    if (threadIdx.x == 0) {
      sums[0] = total_a;
      sums[1] = total_b;
    }
  }
}

// Relativistic coupling: every real logit also moves mean(r), which every fake term sees, and
// vice versa. sums = {sum a, sum b} from finish_loss_kernel.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads) relativistic_correction_kernel(int64_t n_r, int64_t n_f,
                                                                           int64_t per_block, const acc_t* sums,
                                                                           acc_t* __restrict__ grad_real,
                                                                           acc_t* __restrict__ grad_fake) {
  const acc_t corr_r = sums[1] / static_cast<acc_t>(n_r);
  const acc_t corr_f = sums[0] / static_cast<acc_t>(n_f);
  const Chunk c = block_chunk(n_r > n_f ? n_r : n_f, per_block);
  for (int64_t k = c.begin + threadIdx.x; k < c.end; k += kThreads) {
    if (k < n_r) grad_real[k] -= corr_r;
    if (k < n_f) grad_fake[k] -= corr_f;
  }
}

// Launches the multi-block path on `stream`. Pointers as for loss_forward_kernel; grad pointers
// are null when `keep` is false, `real` null with n_r = 0 when there is no real term.
template <typename scalar_t, typename acc_t>
void launch_large_loss(const scalar_t* real, int64_t n_r, const scalar_t* fake, int64_t n_f, const LossSpec& spec,
                       int64_t reduction, bool keep, acc_t* loss, acc_t* grad_real, acc_t* grad_fake,
                       const at::TensorOptions& acc_opts, cudaStream_t stream) {
  const bool none = reduction == kReduceNone;
  const bool rel = spec.mode == kModeRelativistic;
  const ChunkPlan plan = chunk_plan(n_r > n_f ? n_r : n_f);
  const int64_t g = plan.blocks;
  const int nsums = (rel && keep) ? 4 : 2;
  // Rows of G partials, then m_r, m_f, sum a, sum b. The terms kernel's partials overwrite the
  // means kernel's (rows 0 and 1) only after the means finisher has read them (stream order).
  at::Tensor scratch;
  acc_t* part = nullptr;
  acc_t* means = nullptr;
  acc_t* sums = nullptr;
  if (rel || !none) {
    scratch = at::empty({4 * g + 4}, acc_opts);
    part = scratch.mutable_data_ptr<acc_t>();
    means = part + 4 * g;
    sums = part + 4 * g + 2;
  }
  if (rel) {
    mean_partials_kernel<scalar_t, acc_t><<<plan.blocks, kThreads, 0, stream>>>(real, n_r, fake, n_f, plan.per_block,
                                                                               part);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    finish_means_kernel<acc_t><<<1, kFinishThreads, 0, stream>>>(part, g, n_r, n_f, means);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  loss_terms_kernel<scalar_t, acc_t><<<plan.blocks, kThreads, 0, stream>>>(
      real, n_r, fake, n_f, plan.per_block, spec, reduction, keep, means, loss, grad_real, grad_fake,
      none ? nullptr : part, nsums);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (!none) {
    finish_loss_kernel<acc_t><<<1, kFinishThreads, 0, stream>>>(part, g, nsums, n_r, n_f, reduction, loss, sums);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // keep is false for relativistic "none" (the autograd Function differentiates the reference),
  // so the sums always exist here.
  if (rel && keep) {
    relativistic_correction_kernel<acc_t><<<plan.blocks, kThreads, 0, stream>>>(n_r, n_f, plan.per_block, sums,
                                                                                grad_real, grad_fake);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// Runs one loss. `real` is undefined when the spec has no real term. Returns (loss, grad_real, grad_fake)
// with the shapes and dtypes of gan_kernels/_fake.py; `loss_like` gives the "none" loss shape.
std::tuple<at::Tensor, at::Tensor, at::Tensor> run_loss(const at::Tensor& real, const at::Tensor& fake,
                                                        const LossSpec& spec, int64_t reduction,
                                                        bool compute_grad, const at::Tensor& loss_like) {
  // Arguments checked by loss_forward_cuda (check_loss_logits).
  const bool has_real = real.defined();
  const bool none = reduction == kReduceNone;
  const bool rel = spec.mode == kModeRelativistic;
  const c10::cuda::CUDAGuard guard(fake.device());

  const at::Tensor f = fake.contiguous();
  const at::Tensor r = has_real ? real.contiguous() : at::Tensor();
  const auto acc_opts = fake.options().dtype(acc_type_of(fake.scalar_type()));
  const bool keep = compute_grad && !(rel && none);
  at::Tensor loss = none ? at::empty(loss_like.sizes(), acc_opts) : at::empty({}, acc_opts);
  at::Tensor grad_real = (keep && has_real) ? at::empty(real.sizes(), acc_opts) : at::empty({0}, acc_opts);
  at::Tensor grad_fake = keep ? at::empty(fake.sizes(), acc_opts) : at::empty({0}, acc_opts);
  const int64_t n_r = has_real ? r.numel() : 0;
  const int64_t n_f = f.numel();
  if (none && loss.numel() == 0) return {loss, grad_real, grad_fake};

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "gan_kernels_loss_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* rp = has_real ? r.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* fp = f.const_data_ptr<scalar_t>();
    acc_t* lp = loss.mutable_data_ptr<acc_t>();
    acc_t* grp = keep && has_real ? grad_real.mutable_data_ptr<acc_t>() : nullptr;
    acc_t* gfp = keep ? grad_fake.mutable_data_ptr<acc_t>() : nullptr;
    if ((n_r > n_f ? n_r : n_f) > kOneBlockMax) {
      launch_large_loss<scalar_t, acc_t>(rp, n_r, fp, n_f, spec, reduction, keep, lp, grp, gfp, acc_opts, stream);
    } else {
      loss_forward_kernel<scalar_t, acc_t><<<1, kLossThreads, 0, stream>>>(rp, n_r, fp, n_f, spec, reduction, keep,
                                                                           lp, grp, gfp);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {loss, grad_real, grad_fake};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cuda(
    const std::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t mode, int64_t real_term,
    double real_target, double real_coef, int64_t fake_term, double fake_target, double fake_coef, double drift,
    int64_t reduction, bool compute_grad) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  const at::Tensor real = checked_real_logits(real_opt, fake, spec, reduction, c10::DeviceType::CUDA, "loss_forward");
  return run_loss(real, fake, spec, reduction, compute_grad, fake);
}

// ---------------------------------------------------------------------------------------------
// loss_backward: a = (grad_out * saved_a).to(dtype_a), b likewise, both in one launch. The
// output dtypes are runtime codes (one branch, uniform over the grid) so the kernel is
// instantiated per compute type only.

enum OutCode : int { kOutFloat = 0, kOutDouble = 1, kOutHalf = 2, kOutBFloat16 = 3 };

int out_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return kOutFloat;
    case at::kDouble:
      return kOutDouble;
    case at::kHalf:
      return kOutHalf;
    case at::kBFloat16:
      return kOutBFloat16;
    default:
      TORCH_CHECK(false, "gan_kernels (CUDA): loss_backward output dtype must be float16, bfloat16, float32 or float64, got ", t);
  }
  return kOutFloat;
}

template <typename acc_t>
__device__ __forceinline__ void store_as(void* p, int64_t i, int code, acc_t v) {
  switch (code) {
    case kOutFloat:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case kOutDouble:
      static_cast<double*>(p)[i] = static_cast<double>(v);
      break;
    case kOutHalf:
      static_cast<at::Half*>(p)[i] = static_cast<at::Half>(static_cast<float>(v));
      break;
    default:
      static_cast<at::BFloat16*>(p)[i] = static_cast<at::BFloat16>(static_cast<float>(v));
      break;
  }
}

// Elements [0, n_a) are a's, [n_a, n_a + n_b) are b's. grad_out is read at index k * go_stride
// (go_stride 0: one scalar for every element).
template <typename acc_t>
__global__ void __launch_bounds__(kThreads) loss_backward_kernel(const acc_t* __restrict__ go, int64_t go_stride,
                                                                 const acc_t* __restrict__ sa, int64_t n_a,
                                                                 void* out_a, int code_a,
                                                                 const acc_t* __restrict__ sb, int64_t n_b,
                                                                 void* out_b, int code_b) {
  const int64_t total = n_a + n_b;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += step) {
    if (k < n_a) {
      store_as<acc_t>(out_a, k, code_a, go[k * go_stride] * sa[k]);
    } else {
      const int64_t j = k - n_a;
      store_as<acc_t>(out_b, j, code_b, go[j * go_stride] * sb[j]);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> loss_backward_cuda(const at::Tensor& grad_out, const at::Tensor& saved_a,
                                                      const at::Tensor& saved_b, at::ScalarType dtype_a,
                                                      at::ScalarType dtype_b) {
  TORCH_CHECK(grad_out.is_cuda(), "gan_kernels (CUDA): loss_backward needs CUDA tensors");
  check_cuda(saved_a, grad_out, "saved_a");
  check_cuda(saved_b, grad_out, "saved_b");
  TORCH_CHECK(at::isFloatingType(saved_a.scalar_type()) && at::isFloatingType(saved_b.scalar_type()) &&
                  at::isFloatingType(grad_out.scalar_type()),
              "gan_kernels (CUDA): loss_backward needs floating-point tensors");
  const int code_a = out_code(dtype_a);
  const int code_b = out_code(dtype_b);
  const c10::cuda::CUDAGuard guard(grad_out.device());

  at::Tensor out_a = at::empty_like(saved_a, saved_a.options().dtype(dtype_a));
  at::Tensor out_b = at::empty_like(saved_b, saved_b.options().dtype(dtype_b));
  const int64_t n_a = saved_a.numel();
  const int64_t n_b = saved_b.numel();
  if (n_a + n_b == 0) return {out_a, out_b};

  const bool use_double = saved_a.scalar_type() == at::kDouble || saved_b.scalar_type() == at::kDouble ||
                          grad_out.scalar_type() == at::kDouble;
  const at::ScalarType acc = use_double ? at::kDouble : at::kFloat;
  const at::Tensor sa = saved_a.to(acc).contiguous();
  const at::Tensor sb = saved_b.to(acc).contiguous();
  at::Tensor go = grad_out.to(acc);
  int64_t go_stride = 0;
  if (go.numel() != 1) {
    // reduction "none": grad_out has the logits' shape (possibly expanded, stride 0).
    TORCH_CHECK((n_a == 0 || go.numel() == n_a) && (n_b == 0 || go.numel() == n_b),
                "gan_kernels (CUDA): loss_backward grad_out has ", go.numel(), " elements, expected 1 or ",
                n_a > 0 ? n_a : n_b);
    go = go.contiguous();
    go_stride = 1;
  }
  // Written in the saved tensors' logical order; empty_like keeps a non-contiguous saved
  // tensor's strides, so such an output is filled through a contiguous buffer.
  at::Tensor work_a = out_a.is_contiguous() ? out_a : at::empty(saved_a.sizes(), out_a.options());
  at::Tensor work_b = out_b.is_contiguous() ? out_b : at::empty(saved_b.sizes(), out_b.options());

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t blocks = grid_for(n_a + n_b, grad_out.get_device());
  AT_DISPATCH_FLOATING_TYPES(acc, "gan_kernels_loss_backward_cuda", [&] {
    loss_backward_kernel<scalar_t><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
        go.const_data_ptr<scalar_t>(), go_stride, sa.const_data_ptr<scalar_t>(), n_a,
        n_a > 0 ? work_a.data_ptr() : nullptr, code_a, sb.const_data_ptr<scalar_t>(), n_b,
        n_b > 0 ? work_b.data_ptr() : nullptr, code_b);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (!work_a.is_same(out_a)) out_a.copy_(work_a);
  if (!work_b.is_same(out_b)) out_b.copy_(work_b);
  return {out_a, out_b};
}

// ---------------------------------------------------------------------------------------------
// Lists of logits (multi-discriminator training): one op call runs every discriminator's loss
// kernels in turn on the current stream; the per-discriminator losses stay on the device and are
// gathered and added there (no host synchronisation). A single launch over a pointer table would
// save the per-discriminator launches; this loop keeps each pair's arithmetic identical to the
// single-tensor op.

using LossListResult = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

LossListResult loss_list_forward_cuda(at::TensorList real, at::TensorList fake, int64_t mode, int64_t real_term,
                                      double real_target, double real_coef, int64_t fake_term, double fake_target,
                                      double fake_coef, double drift, int64_t reduction, bool compute_grad) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  check_loss_lists(real, fake, spec, reduction, c10::DeviceType::CUDA);
  const bool uses_real = spec_uses_real(spec);
  const size_t D = fake.size();
  bool any_double = false;
  for (size_t i = 0; i < D; ++i) any_double = any_double || fake[i].scalar_type() == at::kDouble;
  const c10::cuda::CUDAGuard guard(fake[0].device());
  const at::ScalarType out_t = any_double ? at::kDouble : at::kFloat;
  std::vector<at::Tensor> losses, grad_real, grad_fake;
  for (size_t i = 0; i < D; ++i) {
    auto [loss, gr, gf] = run_loss(uses_real ? real[i] : at::Tensor(), fake[i], spec, reduction, compute_grad, fake[i]);
    losses.push_back(loss.to(out_t));
    if (compute_grad) {
      if (uses_real) grad_real.push_back(gr);
      grad_fake.push_back(gf);
    }
  }
  at::Tensor terms = at::stack(losses);
  // A list of one returns the single loss itself (bitwise the single-tensor result).
  at::Tensor total = D == 1 ? losses[0] : terms.sum();
  return {total, terms, grad_real, grad_fake};
}

std::vector<at::Tensor> loss_list_backward_cuda(const at::Tensor& grad_out, at::TensorList saved,
                                                at::TensorList like) {
  TORCH_CHECK(grad_out.is_cuda(), "gan_kernels (CUDA): loss_list_backward needs CUDA tensors");
  TORCH_CHECK_VALUE(grad_out.numel() == 1, "gan_kernels::loss_list_backward: grad_out must hold one value, got ",
                    grad_out.numel());
  TORCH_CHECK_VALUE(saved.size() == like.size(), "gan_kernels::loss_list_backward: ", saved.size(),
                    " saved gradients but ", like.size(), " tensors to take their dtypes from");
  const at::Tensor none = at::empty({0}, grad_out.options().dtype(at::kFloat));
  std::vector<at::Tensor> out;
  out.reserve(saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    const at::ScalarType t = like[i].scalar_type();
    out.push_back(std::get<0>(loss_backward_cuda(grad_out, saved[i], none, t, t)));
  }
  return out;
}

}  // namespace
}  // namespace cuda_impl
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m) {
  m.impl("loss_forward", &gan_kernels::cuda_impl::loss_forward_cuda);
  m.impl("loss_backward", &gan_kernels::cuda_impl::loss_backward_cuda);
  m.impl("loss_list_forward", &gan_kernels::cuda_impl::loss_list_forward_cuda);
  m.impl("loss_list_backward", &gan_kernels::cuda_impl::loss_list_backward_cuda);
}
