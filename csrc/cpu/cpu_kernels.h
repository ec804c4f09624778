// Private helpers of the C++ CPU back end: deterministic parallel reductions,
// the walk over a batch-major tensor's samples, and the vectorised inner loops
// (defined in vec_kernels.cpp, compiled once per x86 ISA level and picked at
// load time, because a torch extension is built for baseline x86-64 and would
// otherwise run SSE2 code on an AVX-512 machine).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

namespace gan_kernels {
namespace cpu {

// Elements per partial sum of a reduction. A constant, never derived from the
// thread count: the partials and the order they are added in are then the same
// whatever the machine's parallelism, so the result is bitwise reproducible.
// 16 Ki elements (64 KiB of float32) is large enough that the per-task overhead
// is noise and small enough that one sample of a 3x64x64 gradient (12 Ki) or a
// 3x256x256 one (192 Ki) still spreads over both cores when B is small.
constexpr int64_t kReduceChunk = 16384;
// The logits of a loss are few and each element costs an exp and a log1p; a
// smaller chunk lets a PatchGAN map (B x 1 x 30 x 30) use every core.
constexpr int64_t kLossChunk = 4096;
// Minimum elements per thread for the streaming (elementwise) kernels: below
// this the OpenMP fork costs more than the work.
constexpr int64_t kStreamGrain = 32768;

template <typename T>
using acc_t = at::opmath_type<T>;

// The values of a small tensor (alpha, norms, an upstream gradient of B
// elements) as a flat vector of A, read in logical order. Without a tensor op
// when it already is a contiguous A tensor, the common case: at GAN batch
// sizes each dispatched conversion costs more host time than the read.
template <typename A>
std::vector<A> small_values(const at::Tensor& t) {
  if (t.scalar_type() == c10::CppTypeToScalarType<A>::value && t.is_contiguous()) {
    const A* p = t.const_data_ptr<A>();
    return std::vector<A>(p, p + t.numel());
  }
  const at::Tensor c = t.to(c10::CppTypeToScalarType<A>::value).reshape({-1}).contiguous();
  const A* p = c.const_data_ptr<A>();
  return std::vector<A>(p, p + c.numel());
}

// Sum of K quantities over [0, n) in fixed-size chunks: f(begin, end) returns
// the chunk's K partial sums; chunks run in parallel and their partials are
// added in index order.
template <int K, typename A, typename F>
std::array<A, K> chunked_sum(int64_t n, int64_t chunk, const F& f) {
  std::array<A, K> total{};
  const int64_t nc = n <= 0 ? 0 : (n + chunk - 1) / chunk;
  if (nc == 0) return total;
  if (nc == 1) return f(0, n);
  std::vector<std::array<A, K>> parts(static_cast<size_t>(nc));
  at::parallel_for(0, nc, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      parts[c] = f(c * chunk, std::min(n, (c + 1) * chunk));
    }
  });
  for (int64_t c = 0; c < nc; ++c) {
    for (int k = 0; k < K; ++k) total[k] += parts[c][k];
  }
  return total;
}

// Calls fn(sample, begin, end) over the flat range [0, B*D) of a batch-major
// tensor, split across threads; each call stays inside one sample, so a
// per-sample scalar (alpha_i, the penalty coefficient) is loop-invariant.
template <typename F>
void for_each_sample_span(int64_t B, int64_t D, const F& fn) {
  const int64_t numel = B * D;
  if (numel == 0) return;
  at::parallel_for(0, numel, kStreamGrain, [&](int64_t begin, int64_t end) {
    int64_t i = begin / D;
    int64_t pos = begin;
    while (pos < end) {
      const int64_t stop = std::min(end, (i + 1) * D);
      fn(i, pos, stop);
      pos = stop;
      ++i;
    }
  });
}

// Samples and elements per sample of a (B, ...) tensor.
inline int64_t batch_of(const at::Tensor& x) { return x.dim() == 0 ? 1 : x.size(0); }
inline int64_t per_sample(const at::Tensor& x) {
  const int64_t b = batch_of(x);
  return b == 0 ? 0 : x.numel() / b;
}

// ---------------------------------------------------------------------------
// Vectorised inner loops (vec_kernels.cpp), one overload per storage dtype;
// arithmetic in acc_t<T>.
// ---------------------------------------------------------------------------

// sum of x^2 over n elements, in a fixed lane order.
float sumsq(const float* x, int64_t n);
double sumsq(const double* x, int64_t n);
float sumsq(const c10::Half* x, int64_t n);
float sumsq(const c10::BFloat16* x, int64_t n);

// out = k * x
void scale(const float* x, float* out, float k, int64_t n);
void scale(const double* x, double* out, double k, int64_t n);
void scale(const c10::Half* x, c10::Half* out, float k, int64_t n);
void scale(const c10::BFloat16* x, c10::BFloat16* out, float k, int64_t n);

// out = a * r + b * f, rounded exactly like the two products and the sum
// written out (no fused multiply-add), so it matches the reference bit for bit.
void lerp(const float* r, const float* f, float* out, float a, float b, int64_t n);
void lerp(const double* r, const double* f, double* out, double a, double b, int64_t n);
void lerp(const c10::Half* r, const c10::Half* f, c10::Half* out, float a, float b, int64_t n);
void lerp(const c10::BFloat16* r, const c10::BFloat16* f, c10::BFloat16* out, float a, float b, int64_t n);

// dr = a * g and df = b * g in one read of g.
void scale2(const float* g, float* dr, float* df, float a, float b, int64_t n);
void scale2(const double* g, double* dr, double* df, double a, double b, int64_t n);
void scale2(const c10::Half* g, c10::Half* dr, c10::Half* df, float a, float b, int64_t n);
void scale2(const c10::BFloat16* g, c10::BFloat16* dr, c10::BFloat16* df, float a, float b, int64_t n);

// sum |a_i - b_i|, lanes in acc_t<T> added in a fixed order in double.
double abs_diff_sum(const float* a, const float* b, int64_t n);
double abs_diff_sum(const double* a, const double* b, int64_t n);
double abs_diff_sum(const c10::Half* a, const c10::Half* b, int64_t n);
double abs_diff_sum(const c10::BFloat16* a, const c10::BFloat16* b, int64_t n);

// dr = s * sign(r - f), df = -dr (a null output is skipped); torch.sign's
// rules at 0 and NaN.
void sign_scale(const float* r, const float* f, float* dr, float* df, float s, int64_t n);
void sign_scale(const double* r, const double* f, double* dr, double* df, double s, int64_t n);
void sign_scale(const c10::Half* r, const c10::Half* f, c10::Half* dr, c10::Half* df, float s, int64_t n);
void sign_scale(const c10::BFloat16* r, const c10::BFloat16* f, c10::BFloat16* dr, c10::BFloat16* df, float s,
                int64_t n);

// ---------------------------------------------------------------------------
// Loss loops in float32 arithmetic (loss_vec.cpp) for float32 / half /
// bfloat16 logits; float64 logits use the scalar path in losses.cpp.
// ---------------------------------------------------------------------------

// One pass of a loss term over the logits a[lo, hi): x_i = a_i - b_i when b
// is given (paired), else a_i - shift; v_i = phi(x_i), plus drift a_i^2 when
// `real` and drift != 0. Output pointers are indexed like a (absolute i).
struct TermPass {
  int type = 0;       // TermType
  float t = 0, c = 1;  // the term's target / multiplier
  float shift = 0;
  float drift = 0;
  bool real = false;   // a holds the real logits (drift applies)
  float w = 1;         // W of the reduction, scales the gradients
  float* loss = nullptr;  // reduction "none": v_i stored here (added when loss_add)
  bool loss_add = false;
  // Gradients (null: none): unpaired, ga_i = W phi'(x_i) (+ 2 W drift a_i);
  // paired, ga_i = W (phi'(x_i) + 2 drift a_i) and gb_i = -W phi'(x_i).
  float* ga = nullptr;
  float* gb = nullptr;
};

// Returns {sum of v_i, sum of W phi'(x_i)} (the latter only for an unpaired
// pass with gradients), summed in double.
std::array<double, 2> term_pass(const float* a, const float* b, int64_t lo, int64_t hi, const TermPass& p);
std::array<double, 2> term_pass(const c10::Half* a, const c10::Half* b, int64_t lo, int64_t hi,
                                const TermPass& p);
std::array<double, 2> term_pass(const c10::BFloat16* a, const c10::BFloat16* b, int64_t lo, int64_t hi,
                                const TermPass& p);

// Sum of p[lo, hi) in double.
double sum_f64(const float* p, int64_t lo, int64_t hi);
double sum_f64(const c10::Half* p, int64_t lo, int64_t hi);
double sum_f64(const c10::BFloat16* p, int64_t lo, int64_t hi);

// p[i] -= k for i in [0, n).
void sub_scalar(float* p, float k, int64_t n);

}  // namespace cpu
}  // namespace gan_kernels
