// Vectorised float32 inner loops of the CPU losses (float32, half and
// bfloat16 logits; float64 stays on the scalar std:: path in losses.cpp).
//
// Why this file exists: the scalar loop (std::exp + std::log1p + another
// std::exp for the sigmoid, a switch on the term type per element, one double
// running sum) took ~22 ns per logit on a 2-core AVX-512 Xeon, 10-20x eager
// PyTorch, which uses vectorised Sleef functions. Here
//  * the term type is a template parameter (one loop per term shape);
//  * e = exp(-|x|) is computed once per element and gives both
//    softplus = max(x, 0) + log1p(e) and sigmoid = (x >= 0 ? 1 : e) / (1 + e);
//  * exp and log1p are float32 polynomial versions (below, ~1-2 ulp) written
//    on GCC vector types, so each clone (AVX-512 / AVX2 / baseline, picked at
//    load time like vec_kernels.cpp) runs them 16 lanes at a time;
//  * sums are kept in double lanes, so the result is as accurate as the scalar
//    double running sum, and their order depends only on the element index
//    (lanes, then a fixed tree): the same bits whatever the thread count.
#include "cpu_kernels.h"
#include "simd.h"

#include <cstring>
#include <type_traits>

#include "gan_kernels/math.h"

namespace gan_kernels {
namespace cpu {
namespace {

constexpr int L = 16;  // float lanes per vector (one zmm)
typedef float vf __attribute__((vector_size(4 * L)));
typedef int32_t vi __attribute__((vector_size(4 * L)));
typedef uint32_t vu __attribute__((vector_size(4 * L)));
typedef uint16_t vh __attribute__((vector_size(2 * L)));
typedef double vd __attribute__((vector_size(8 * L)));

GK_INLINE vf splat(float v) { return vf{} + v; }

// ---------------------------------------------------------------------------
// Loads of L logits as float32 lanes.
// ---------------------------------------------------------------------------
GK_INLINE vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

GK_INLINE vf load(const c10::BFloat16* p) {
  vh h;
  std::memcpy(&h, p, sizeof(h));
  return (vf)(__builtin_convertvector(h, vu) << 16);
}

// IEEE half -> float: move the 15 magnitude bits into float position and
// rescale by 2^(127-15), which also turns half subnormals into exact floats;
// the all-ones exponent (inf / NaN) is rebuilt by hand.
GK_INLINE vf load(const c10::Half* p) {
  vh h;
  std::memcpy(&h, p, sizeof(h));
  const vu u = __builtin_convertvector(h, vu);
  const vu mag = (u & 0x7fffu) << 13;
  const vu fin = (vu)((vf)mag * 0x1p112f);
  const vu special = mag | 0x7f800000u;
  const vu bits = (mag >= (0x7c00u << 13)) ? special : fin;
  return (vf)(bits | ((u & 0x8000u) << 16));
}

// Loads the first k < L logits, zeros after them.
template <typename T>
GK_INLINE vf load_part(const T* p, int k) {
  T tmp[L];
  std::memset(static_cast<void*>(tmp), 0, sizeof(tmp));
  for (int l = 0; l < k; ++l) tmp[l] = p[l];
  return load(tmp);
}

GK_INLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
GK_INLINE void store_part(float* p, vf v, int k) {
  float tmp[L];
  std::memcpy(tmp, &v, sizeof(v));
  for (int l = 0; l < k; ++l) p[l] = tmp[l];
}

// ---------------------------------------------------------------------------
// float32 exp and log1p on the ranges the losses need.
// ---------------------------------------------------------------------------

// e^y for y <= 0 (and -inf, NaN). y = n ln2 + r with |r| <= ln2/2; e^r by its
// degree-7 Taylor polynomial (truncation < 1e-8 relative, under half an ulp);
// 2^n applied as 2^(n/2) 2^(n - n/2) so results down to the smallest
// subnormal are rounded once, as a correctly rounded exp would.
GK_INLINE vf exp_nonpos(vf y) {
  const vf lo = splat(-104.0f);  // e^-104 < half the smallest subnormal
  const vf yc = y < lo ? lo : y;  // a NaN fails the compare and stays
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const vf t = yc * 1.44269504088896341f + magic;
  const vf n = t - magic;
  // n*ln2_hi is exact (ln2_hi has 9 significant bits, |n| <= 150).
  vf r = yc - n * 0.693359375f;
  r = r - n * -2.12194440054690583e-4f;
  vf p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vi ni = (vi)((vu)t - 0x4B400000u);  // n as an integer, in [-150, 0]
  const vi n1 = ni >> 1, n2 = ni - n1;
  const vf s1 = (vf)((vu)(n1 + 127) << 23), s2 = (vf)((vu)(n2 + 127) << 23);
  const vf res = (p * s1) * s2;
  return y < lo ? vf{} : res;
}

// log1p(e) for e in [0, 1] (and NaN): 2 atanh(s) with s = e / (2 + e) in
// [0, 1/3]; the odd series to s^13 leaves < 2e-8 relative. The rounding
// error of 2 + e is recovered exactly and folded back into s (1 / (2 + e) =
// (1 - s) / 2), which takes the worst case from 2.6 to 2.0 ulp.
GK_INLINE vf log1p_unit(vf e) {
  const vf u = 2.0f + e;
  const vf err = (2.0f - u) + e;  // exact: 2 + e = u + err
  vf s = e / u;
  s = s - (s * err) * ((1.0f - s) * 0.5f);
  const vf z = s * s;
  vf q = splat(1.0f / 13.0f);
  q = q * z + 1.0f / 11.0f;
  q = q * z + 1.0f / 9.0f;
  q = q * z + 1.0f / 7.0f;
  q = q * z + 1.0f / 5.0f;
  q = q * z + 1.0f / 3.0f;
  const vf h = s + s;
  return h + (h * z) * q;
}

GK_INLINE vf vmax0(vf x) { return x < 0.0f ? vf{} : x; }  // max(x, 0) that keeps a NaN, like relu

// ---------------------------------------------------------------------------
// One term shape: value phi(x) and (when grad) derivative phi'(x), mirroring
// math.h's term_value / term_grad expression by expression.
// ---------------------------------------------------------------------------
template <int TT>
GK_INLINE void term(vf x, float t, float c, bool grad, vf& v, vf& d) {
  if constexpr (TT == kTermBce) {
    const vf e = exp_nonpos((vf)((vu)x | 0x80000000u));  // e^-|x|
    // math.h's bce_linear: no inf - inf for the usual targets 1 and 0.
    const vf lin = t == 1.0f ? vmax0(-x) : t == 0.0f ? vmax0(x) : vmax0(x) - x * t;
    v = c * (lin + log1p_unit(e));
    if (grad) {
      // sigmoid(x): 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below; a NaN
      // takes the second branch and stays NaN.
      const vf sig = (x >= 0.0f ? splat(1.0f) : e) / (1.0f + e);
      // For t = 1, -sigmoid(-x) = -(x >= 0 ? e : 1) / (1 + e): no cancellation in sigmoid(x) - 1.
      d = t == 1.0f ? c * -((x >= 0.0f ? e : splat(1.0f)) / (1.0f + e)) : c * (sig - t);
    }
  } else if constexpr (TT == kTermHinge) {
    const vf u = 1.0f - t * x;
    v = c * vmax0(u);
    if (grad) d = u <= 0.0f ? vf{} : splat(-c * t);  // a NaN passes the slope, as autograd's relu
  } else if constexpr (TT == kTermLinear) {
    v = c * x;
    d = splat(c);
  } else if constexpr (TT == kTermSquare) {
    const vf dx = x - t;
    v = ((c * 0.5f) * dx) * dx;
    d = c * dx;
  } else {
    v = vf{};
    d = vf{};
  }
}

GK_INLINE double lane_sum(vd s) {
  double lane[L];
  std::memcpy(lane, &s, sizeof(s));
  for (int w = L / 2; w > 0; w /= 2) {
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  }
  return lane[0];
}

// See TermPass (cpu_kernels.h). Each element's arithmetic is the same
// whether it sits in a full vector or in the zero-padded tail.
template <typename T, int TT>
GK_INLINE std::array<double, 2> pass_impl(const T* a, const T* b, int64_t lo, int64_t hi, const TermPass& p) {
  const bool grad = p.ga != nullptr;
  const bool drift = p.real && p.drift != 0.0f;
  const float w = p.w;
  const float k2 = 2.0f * w * p.drift;     // real pass: + 2 W drift a
  const float twice_drift = 2.0f * p.drift;  // paired pass: W (phi' + 2 drift a)
  vi lane_idx;
  for (int l = 0; l < L; ++l) lane_idx[l] = l;
  vd sv = {}, sg = {};
  // always_inline: a lambda is its own function, which would otherwise be
  // compiled for the baseline ISA instead of the clone's.
  auto body = [&](int64_t i, int k) __attribute__((always_inline)) {
    const bool full = k == L;
    const vf av = full ? load(a + i) : load_part(a + i, k);
    vf x;
    if (b) {
      x = av - (full ? load(b + i) : load_part(b + i, k));
    } else {
      x = av - p.shift;
    }
    vf v, d = vf{};
    term<TT>(x, p.t, p.c, grad, v, d);
    if (drift) v = v + (p.drift * av) * av;
    if (p.loss) {
      vf out = v;
      if (p.loss_add) out = (full ? load(p.loss + i) : load_part(p.loss + i, k)) + v;
      if (full) store(p.loss + i, out); else store_part(p.loss + i, out, k);
    }
    const vi live = lane_idx < k;
    sv += __builtin_convertvector(live ? v : vf{}, vd);
    if (grad) {
      vf ga, gb = vf{};
      if (b) {
        ga = drift ? w * (d + twice_drift * av) : w * d;
        gb = -w * d;
      } else {
        const vf g = w * d;
        ga = drift ? g + k2 * av : g;
        sg += __builtin_convertvector(live ? g : vf{}, vd);
      }
      if (full) store(p.ga + i, ga); else store_part(p.ga + i, ga, k);
      if (b) {
        if (full) store(p.gb + i, gb); else store_part(p.gb + i, gb, k);
      }
    }
  };
  int64_t i = lo;
  for (; i + L <= hi; i += L) body(i, L);
  if (i < hi) body(i, static_cast<int>(hi - i));
  return {lane_sum(sv), lane_sum(sg)};
}

template <typename T>
GK_INLINE double sum_impl(const T* p, int64_t lo, int64_t hi) {
  // Two accumulators: one chain of dependent adds would be latency-bound.
  vd s0 = {}, s1 = {};
  int64_t i = lo;
  for (; i + 2 * L <= hi; i += 2 * L) {
    s0 += __builtin_convertvector(load(p + i), vd);
    s1 += __builtin_convertvector(load(p + i + L), vd);
  }
  for (; i + L <= hi; i += L) s0 += __builtin_convertvector(load(p + i), vd);
  if (i < hi) s1 += __builtin_convertvector(load_part(p + i, static_cast<int>(hi - i)), vd);
  return lane_sum(s0 + s1);
}

GK_INLINE void sub_impl(float* p, float k, int64_t n) {
  int64_t i = 0;
  for (; i + L <= n; i += L) store(p + i, load(p + i) - k);
  for (; i < n; ++i) p[i] -= k;
}

}  // namespace

// Clone-wrapped entry points: external linkage, as target_clones wants.
namespace loss_vec {
#define GK_PASS_FOR(T, TT, NAME)                                                                   \
  GK_CLONES std::array<double, 2> NAME(const T* a, const T* b, int64_t lo, int64_t hi,           \
                                       const TermPass& p) {                                      \
    return pass_impl<T, TT>(a, b, lo, hi, p);                                                     \
  }
#define GK_DEFINE_FOR(T)                        \
  GK_PASS_FOR(T, kTermNone, pass_none)          \
  GK_PASS_FOR(T, kTermBce, pass_bce)            \
  GK_PASS_FOR(T, kTermHinge, pass_hinge)        \
  GK_PASS_FOR(T, kTermLinear, pass_linear)      \
  GK_PASS_FOR(T, kTermSquare, pass_square)      \
  GK_CLONES double sum(const T* p, int64_t lo, int64_t hi) { return sum_impl(p, lo, hi); }

GK_DEFINE_FOR(float)
GK_CLONES void sub(float* p, float k, int64_t n) { sub_impl(p, k, n); }
GK_DEFINE_FOR(c10::Half)
GK_DEFINE_FOR(c10::BFloat16)
#undef GK_DEFINE_FOR
#undef GK_PASS_FOR
}  // namespace loss_vec

template <typename T>
static std::array<double, 2> term_pass_t(const T* a, const T* b, int64_t lo, int64_t hi, const TermPass& p) {
  switch (p.type) {
    case kTermBce:
      return loss_vec::pass_bce(a, b, lo, hi, p);
    case kTermHinge:
      return loss_vec::pass_hinge(a, b, lo, hi, p);
    case kTermLinear:
      return loss_vec::pass_linear(a, b, lo, hi, p);
    case kTermSquare:
      return loss_vec::pass_square(a, b, lo, hi, p);
    default:
      return loss_vec::pass_none(a, b, lo, hi, p);
  }
}

std::array<double, 2> term_pass(const float* a, const float* b, int64_t lo, int64_t hi, const TermPass& p) {
  return term_pass_t(a, b, lo, hi, p);
}
std::array<double, 2> term_pass(const c10::Half* a, const c10::Half* b, int64_t lo, int64_t hi,
                                const TermPass& p) {
  return term_pass_t(a, b, lo, hi, p);
}
std::array<double, 2> term_pass(const c10::BFloat16* a, const c10::BFloat16* b, int64_t lo, int64_t hi,
                                const TermPass& p) {
  return term_pass_t(a, b, lo, hi, p);
}
double sum_f64(const float* p, int64_t lo, int64_t hi) { return loss_vec::sum(p, lo, hi); }
double sum_f64(const c10::Half* p, int64_t lo, int64_t hi) { return loss_vec::sum(p, lo, hi); }
double sum_f64(const c10::BFloat16* p, int64_t lo, int64_t hi) { return loss_vec::sum(p, lo, hi); }
void sub_scalar(float* p, float k, int64_t n) { loss_vec::sub(p, k, n); }

}  // namespace cpu
}  // namespace gan_kernels
