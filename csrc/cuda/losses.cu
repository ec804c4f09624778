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
#include "tables.cuh"

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
// (single) finisher block. The list ops keep every partial in a double row (a float partial
// converts exactly both ways), so the sum is the same as from a row of acc_t.
template <typename acc_t, typename src_t>
__device__ __forceinline__ acc_t partials_total(const src_t* row, int64_t g, acc_t* smem) {
  acc_t s = 0;
  for (int64_t b = threadIdx.x; b < g; b += kFinishThreads) s += static_cast<acc_t>(row[b]);
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

// Per-element terms of every mode over one chunk, the same formulas as loss_forward_kernel with
// one element k per iteration covering both real index k (k < n_r) and fake index k (k < n_f).
// Adds the calling thread's share to s = {loss_r, loss_f, sum a, sum b}; for "none" writes
// loss[k]. Shared by the single loss's grid and the list kernel, so an element's term and
// gradient are computed by the same code in both.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void chunk_terms(const ElementTerms<acc_t>& t, const scalar_t* __restrict__ real,
                                            int64_t n_r, const scalar_t* __restrict__ fake, int64_t n_f, Chunk c,
                                            bool none, acc_t* __restrict__ loss, acc_t* __restrict__ grad_real,
                                            acc_t* __restrict__ grad_fake, acc_t (&s)[4]) {
  for (int64_t k = c.begin + threadIdx.x; k < c.end; k += kThreads) {
    acc_t lv = 0;  // this element's "none" loss
    if (k < n_r) {
      const acc_t v = t.real_term(real, fake, k, grad_real, grad_fake, s[2]);
      s[0] += v;
      lv = v;
    }
    if (!t.paired && k < n_f) {
      const acc_t v = t.fake_term(fake, k, grad_fake, s[3]);
      s[1] += v;
      // As the one-block kernel: the real term (0 when there is none) plus the fake term.
      lv = (k < n_r ? lv : acc_t(0)) + v;
    }
    if (none) loss[k] = lv;
  }
}

// The single loss's terms kernel. Relativistic: means = {m_r, m_f} in device memory, and
// grad_real / grad_fake get the uncorrected a_k + 2 W_r drift r_k / b_k. `part` (null for "none")
// receives nsums rows of G partials: loss_r, loss_f, then (nsums == 4) sum a, sum b.
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

  acc_t s[4] = {0, 0, 0, 0};
  chunk_terms(t, real, n_r, fake, n_f, block_chunk(n_r > n_f ? n_r : n_f, per_block), none, loss, grad_real,
              grad_fake, s);

  if (part != nullptr) {  // uniform over the grid: every thread takes part in block_sum
    const unsigned int g = gridDim.x;
    const acc_t tr = block_sum<kThreads>(s[0], smem);
    const acc_t tf = block_sum<kThreads>(s[1], smem);
    acc_t ta = 0, tb = 0;
    if (nsums == 4) {
      ta = block_sum<kThreads>(s[2], smem);
      tb = block_sum<kThreads>(s[3], smem);
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
// output dtypes are runtime codes (tables.cuh; one branch, uniform over the grid) so the kernel
// is instantiated per compute type only.

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
  const int code_a = dtype_code(dtype_a, "loss_backward output dtype");
  const int code_b = dtype_code(dtype_b, "loss_backward output dtype");
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
// Lists of logits (multi-discriminator training).
//
// Losses whose terms are independent per element (the separate and paired modes: logistic,
// hinge, Wasserstein, least squares, minimax, rpgan) take ONE launch of loss_list_terms_kernel
// per element dtype over a table of every discriminator's logits, then ONE finisher launch that
// adds each discriminator's partials in order, weights them, and writes the terms and their
// total. Each tensor is cut into the chunks the single loss's grid uses (chunk_plan, a function
// of its size alone) and every chunk's partials land in their own workspace slots, so the bits
// depend neither on the card nor on where a long list is cut into tables. Nothing is read back
// to the host.
//
// Two cases keep the loop over discriminators, each running the single loss (run_loss):
// * a list of one, which must give the single-tensor op's bits (the single loss of a small
//   tensor is one 1024-thread block whose sums add in another order than the chunks here);
// * the relativistic mode: every term needs the other side's mean first, so a table version
//   would still need the means pass, its finisher, the terms pass, the loss finisher and the
//   correction pass, the launches the single loss makes for one discriminator.

using LossListResult = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

LossListResult loss_list_by_pair(at::TensorList real, at::TensorList fake, const LossSpec& spec, int64_t reduction,
                                 bool compute_grad) {
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

// One discriminator's logits in a table of the terms kernel.
template <typename scalar_t, typename acc_t>
struct LossEntry {
  const scalar_t* real;  // null (n_r = 0) when the loss has no real term
  const scalar_t* fake;
  acc_t* grad_real;  // null without compute_grad or without a real term
  acc_t* grad_fake;  // null without compute_grad
  int64_t n_r, n_f;
  int64_t per_block;    // chunk_plan(max(n_r, n_f)).per_block
  int64_t first_block;  // the entry's first block in its launch
  int64_t slot;         // its first partial in each workspace row
};

constexpr int kLossTableCap = 48;

template <typename scalar_t, typename acc_t>
struct LossTable {
  LossEntry<scalar_t, acc_t> entry[kLossTableCap];
};
static_assert(sizeof(LossTable<double, double>) <= kTableBytes, "the loss table must fit the kernel arguments");

// Block b runs chunk (b - first_block) of its entry: the chunk's per-element gradients, and its
// partial sums loss_r -> ws[slot + chunk] and loss_f -> ws[slots + slot + chunk]. ws holds two
// rows of `slots` doubles, one slot per chunk of the whole list (a float partial converts
// exactly). The entries are never relativistic (no means) and never "none" (lists are reduced).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    loss_list_terms_kernel(const __grid_constant__ LossTable<scalar_t, acc_t> tab, int m, LossSpec spec,
                           int64_t reduction, bool compute_grad, double* __restrict__ ws, int64_t slots) {
  __shared__ acc_t smem[kThreads / 32];
  const int64_t b = blockIdx.x;
  const LossEntry<scalar_t, acc_t>& x = tab.entry[table_entry(tab, m, b)];
  const int64_t chunk = b - x.first_block;
  const int64_t n = x.n_r > x.n_f ? x.n_r : x.n_f;
  const int64_t begin = chunk * x.per_block;
  const Chunk c{begin, begin + x.per_block < n ? begin + x.per_block : n};
  const ElementTerms<acc_t> t{spec, false, spec.mode == kModePaired, compute_grad,
                              side_weight<acc_t>(reduction, x.n_r), side_weight<acc_t>(reduction, x.n_f),
                              static_cast<acc_t>(spec.drift), acc_t(0), acc_t(0)};
  acc_t s[4] = {0, 0, 0, 0};
  chunk_terms<scalar_t, acc_t>(t, x.real, x.n_r, x.fake, x.n_f, c, false, nullptr, x.grad_real, x.grad_fake, s);
  const acc_t tr = block_sum<kThreads>(s[0], smem);
  const acc_t tf = block_sum<kThreads>(s[1], smem);
  if (threadIdx.x == 0) {
    ws[x.slot + chunk] = static_cast<double>(tr);
    ws[slots + x.slot + chunk] = static_cast<double>(tf);
  }
}

// One discriminator in the finisher's table.
struct FinishEntry {
  int64_t slot;    // its first partial in each workspace row
  int64_t blocks;  // its number of partials per row
  int64_t n_r, n_f;
  bool dbl;  // float64 logits (accumulates in float64, else in float32)
};

constexpr int kFinishTableCap = 80;

struct FinishTable {
  FinishEntry entry[kFinishTableCap];
};
static_assert(sizeof(FinishTable) <= kTableBytes, "the finisher table must fit the kernel arguments");

// An entry's loss from its partials, with finish_loss_kernel's sums and weights.
template <typename acc_t>
__device__ __forceinline__ acc_t entry_loss(const FinishEntry& x, const double* ws, int64_t slots, int64_t reduction,
                                            acc_t* smem) {
  const acc_t w_r = side_weight<acc_t>(reduction, x.n_r);
  const acc_t w_f = side_weight<acc_t>(reduction, x.n_f);
  const acc_t total_r = partials_total(ws + x.slot, x.blocks, smem);
  const acc_t total_f = partials_total(ws + slots + x.slot, x.blocks, smem);
  return w_r * total_r + w_f * total_f;
}

// Entries [first, first + m) of the list: terms[first + e] = the entry's loss (in its
// accumulation dtype, then out_t), *total = terms[0] + terms[1] + ... in list order. A long list
// finishes in several launches that carry the running total through *total (stream order), so
// it adds exactly as in one launch.
template <typename out_t>
__global__ void __launch_bounds__(kFinishThreads)
    loss_list_finish_kernel(const __grid_constant__ FinishTable tab, int m, int64_t first, int64_t reduction,
                            const double* __restrict__ ws, int64_t slots, out_t* __restrict__ terms,
                            out_t* __restrict__ total) {
  __shared__ float smem_f[kFinishThreads / 32];
  __shared__ double smem_d[kFinishThreads / 32];
  out_t sum = 0;  // thread 0's
  if (threadIdx.x == 0 && first > 0) sum = *total;
  for (int e = 0; e < m; ++e) {
    const FinishEntry& x = tab.entry[e];
    // x.dbl is a kernel argument: the branch is uniform over the block, as block_sum needs.
    const out_t term = x.dbl ? static_cast<out_t>(entry_loss<double>(x, ws, slots, reduction, smem_d))
                             : static_cast<out_t>(entry_loss<float>(x, ws, slots, reduction, smem_f));
    if (threadIdx.x == 0) {
      terms[first + e] = term;
      sum = (first == 0 && e == 0) ? term : sum + term;
    }
  }
  if (threadIdx.x == 0) *total = sum;
}

LossListResult loss_list_forward_cuda(at::TensorList real, at::TensorList fake, int64_t mode, int64_t real_term,
                                      double real_target, double real_coef, int64_t fake_term, double fake_target,
                                      double fake_coef, double drift, int64_t reduction, bool compute_grad) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  check_loss_lists(real, fake, spec, reduction, c10::DeviceType::CUDA);
  const size_t D = fake.size();
  if (D == 1 || spec.mode == kModeRelativistic) return loss_list_by_pair(real, fake, spec, reduction, compute_grad);

  const bool uses_real = spec_uses_real(spec);
  const c10::cuda::CUDAGuard guard(fake[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  // Each discriminator's logits as the single loss reads them (contiguous), its outputs, its
  // chunks and where their partials go.
  struct Item {
    at::Tensor r, f, gr, gf;
    int64_t n_r = 0, n_f = 0;
    ChunkPlan plan{};
    int64_t slot = 0;
  };
  std::vector<Item> items(D);
  std::vector<at::Tensor> grad_real, grad_fake;
  bool any_double = false;
  int64_t slots = 0;
  for (size_t i = 0; i < D; ++i) {
    Item& it = items[i];
    it.f = fake[i].contiguous();
    it.n_f = it.f.numel();
    if (uses_real) {
      it.r = real[i].contiguous();
      it.n_r = it.r.numel();
    }
    const auto acc_opts = fake[i].options().dtype(acc_type_of(fake[i].scalar_type()));
    if (compute_grad) {
      if (uses_real) {
        it.gr = at::empty(real[i].sizes(), acc_opts);
        grad_real.push_back(it.gr);
      }
      it.gf = at::empty(fake[i].sizes(), acc_opts);
      grad_fake.push_back(it.gf);
    }
    it.plan = chunk_plan(it.n_r > it.n_f ? it.n_r : it.n_f);  // at least one chunk, even when empty
    it.slot = slots;
    slots += it.plan.blocks;
    any_double = any_double || fake[i].scalar_type() == at::kDouble;
  }
  const at::Tensor ws = at::empty({2 * slots}, fake[0].options().dtype(at::kDouble));

  for (const at::ScalarType st : kListDtypes) {
    std::vector<size_t> group;  // list indices of this dtype, in list order
    std::vector<int64_t> blocks;
    for (size_t i = 0; i < D; ++i) {
      if (fake[i].scalar_type() != st) continue;
      group.push_back(i);
      blocks.push_back(items[i].plan.blocks);
    }
    if (group.empty()) continue;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "gan_kernels_loss_list_forward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for (const TableSlice& sl : table_slices(blocks, kLossTableCap)) {
        LossTable<scalar_t, acc_t> tab{};
        int64_t first_block = 0;
        for (size_t j = sl.begin; j < sl.end; ++j) {
          const Item& it = items[group[j]];
          LossEntry<scalar_t, acc_t>& x = tab.entry[j - sl.begin];
          x.real = it.r.defined() ? it.r.const_data_ptr<scalar_t>() : nullptr;
          x.fake = it.f.const_data_ptr<scalar_t>();
          x.grad_real = it.gr.defined() ? it.gr.mutable_data_ptr<acc_t>() : nullptr;
          x.grad_fake = it.gf.defined() ? it.gf.mutable_data_ptr<acc_t>() : nullptr;
          x.n_r = it.n_r;
          x.n_f = it.n_f;
          x.per_block = it.plan.per_block;
          x.first_block = first_block;
          x.slot = it.slot;
          first_block += it.plan.blocks;
        }
        loss_list_terms_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(sl.blocks), kThreads, 0, stream>>>(
            tab, static_cast<int>(sl.end - sl.begin), spec, reduction, compute_grad, ws.mutable_data_ptr<double>(),
            slots);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }

  const at::ScalarType out_t = any_double ? at::kDouble : at::kFloat;
  at::Tensor terms = at::empty({static_cast<int64_t>(D)}, fake[0].options().dtype(out_t));
  at::Tensor total = at::empty({}, fake[0].options().dtype(out_t));
  const std::vector<int64_t> one_each(D, 1);  // the finisher's slices are cut by entry count alone
  for (const TableSlice& sl : table_slices(one_each, kFinishTableCap)) {
    FinishTable tab{};
    for (size_t i = sl.begin; i < sl.end; ++i) {
      const Item& it = items[i];
      tab.entry[i - sl.begin] = {it.slot, static_cast<int64_t>(it.plan.blocks), it.n_r, it.n_f,
                                 fake[i].scalar_type() == at::kDouble};
    }
    AT_DISPATCH_FLOATING_TYPES(out_t, "gan_kernels_loss_list_finish_cuda", [&] {
      loss_list_finish_kernel<scalar_t><<<1, kFinishThreads, 0, stream>>>(
          tab, static_cast<int>(sl.end - sl.begin), static_cast<int64_t>(sl.begin), reduction,
          ws.const_data_ptr<double>(), slots, terms.mutable_data_ptr<scalar_t>(), total.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {total, terms, grad_real, grad_fake};
}

// loss_list_backward: out[i] = (grad_out * saved[i]).to(like[i].dtype) for every i, one launch
// per dtype of the saved gradients (float32 / float64 from the forward) over a table. Products in
// float64 when grad_out or saved[i] is float64, else in float32, as loss_backward: the bits of a
// single loss's backward.

template <typename S>
struct ScaleEntry {
  const S* saved;
  void* out;  // of dtype `code`
  int64_t n;
  int64_t first_block;  // the entry's first block in its launch
  int code;
};

constexpr int kScaleTableCap = 80;
// Elements per block of the backward: eight per thread, so a block does some work for its start.
constexpr int64_t kScaleChunk = static_cast<int64_t>(kThreads) * 8;

template <typename S>
struct ScaleTable {
  ScaleEntry<S> entry[kScaleTableCap];
};
static_assert(sizeof(ScaleTable<double>) <= kTableBytes, "the backward table must fit the kernel arguments");

// Block b scales chunk (b - first_block) of its entry; go is grad_out's one element, of dtype go_code.
template <typename S, typename acc_t>
__global__ void __launch_bounds__(kThreads) loss_list_scale_kernel(const __grid_constant__ ScaleTable<S> tab, int m,
                                                                   const void* go, int go_code) {
  const int64_t b = blockIdx.x;
  const ScaleEntry<S>& x = tab.entry[table_entry(tab, m, b)];
  const acc_t g = load_as<acc_t>(go, 0, go_code);
  const int64_t begin = (b - x.first_block) * kScaleChunk;
  const int64_t end = begin + kScaleChunk < x.n ? begin + kScaleChunk : x.n;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const acc_t s = static_cast<acc_t>(static_cast<at::opmath_type<S>>(x.saved[i]));
    store_as<acc_t>(x.out, i, x.code, g * s);
  }
}

// Launches of loss_list_scale_kernel over the entries `group` (list indices) of one saved dtype S.
template <typename S, typename acc_t>
void launch_list_scale(const std::vector<size_t>& group, const std::vector<at::Tensor>& in,
                       const std::vector<at::Tensor>& work, const std::vector<int>& codes, const at::Tensor& grad_out,
                       int go_code, cudaStream_t stream) {
  std::vector<int64_t> blocks;
  for (const size_t i : group) blocks.push_back((in[i].numel() + kScaleChunk - 1) / kScaleChunk);
  for (const TableSlice& sl : table_slices(blocks, kScaleTableCap)) {
    ScaleTable<S> tab{};
    int64_t first_block = 0;
    for (size_t j = sl.begin; j < sl.end; ++j) {
      const size_t i = group[j];
      tab.entry[j - sl.begin] = {in[i].const_data_ptr<S>(), work[i].mutable_data_ptr(), in[i].numel(), first_block,
                                 codes[i]};
      first_block += blocks[j];
    }
    loss_list_scale_kernel<S, acc_t><<<static_cast<unsigned int>(sl.blocks), kThreads, 0, stream>>>(
        tab, static_cast<int>(sl.end - sl.begin), grad_out.const_data_ptr(), go_code);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

std::vector<at::Tensor> loss_list_backward_cuda(const at::Tensor& grad_out, at::TensorList saved,
                                                at::TensorList like) {
  TORCH_CHECK(grad_out.is_cuda(), "gan_kernels (CUDA): loss_list_backward needs CUDA tensors");
  TORCH_CHECK_VALUE(grad_out.numel() == 1, "gan_kernels::loss_list_backward: grad_out must hold one value, got ",
                    grad_out.numel());
  TORCH_CHECK_VALUE(saved.size() == like.size(), "gan_kernels::loss_list_backward: ", saved.size(),
                    " saved gradients but ", like.size(), " tensors to take their dtypes from");
  const int go_code = dtype_code(grad_out.scalar_type(), "loss_list_backward grad_out");
  const size_t n = saved.size();
  std::vector<at::Tensor> out(n), in(n), work(n);
  std::vector<int> codes(n);
  for (size_t i = 0; i < n; ++i) {
    check_cuda(saved[i], grad_out, "saved");
    dtype_code(saved[i].scalar_type(), "loss_list_backward saved gradient");  // throws for a dtype not read
    codes[i] = dtype_code(like[i].scalar_type(), "loss_list_backward output dtype");
    // Laid out like saved (the fake kernel's empty_like). When both share one dense layout the
    // kernel walks their storage as one flat array; otherwise it writes logical order, into a
    // contiguous buffer first when out is not contiguous (never the case from autograd).
    out[i] = at::empty_like(saved[i], saved[i].options().dtype(like[i].scalar_type()));
    if (saved[i].is_non_overlapping_and_dense() && out[i].strides() == saved[i].strides()) {
      in[i] = saved[i];
      work[i] = out[i];
    } else {
      in[i] = saved[i].contiguous();
      work[i] = out[i].is_contiguous() ? out[i] : at::empty(saved[i].sizes(), out[i].options());
    }
  }
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool go_double = grad_out.scalar_type() == at::kDouble;
  for (const at::ScalarType st : kListDtypes) {
    std::vector<size_t> group;  // non-empty entries of this saved dtype, in list order
    for (size_t i = 0; i < n; ++i) {
      if (in[i].scalar_type() == st && in[i].numel() > 0) group.push_back(i);
    }
    if (group.empty()) continue;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "gan_kernels_loss_list_backward_cuda", [&] {
      if (go_double || st == at::kDouble) {
        launch_list_scale<scalar_t, double>(group, in, work, codes, grad_out, go_code, stream);
      } else {
        launch_list_scale<scalar_t, float>(group, in, work, codes, grad_out, go_code, stream);
      }
    });
  }
  for (size_t i = 0; i < n; ++i) {
    if (!work[i].is_same(out[i])) out[i].copy_(work[i]);
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
