// Per-element math of every gan_kernels op, written once for the CPU and CUDA
// kernels (GK_HD = __host__ __device__ under nvcc). The Triton kernels mirror
// these functions and the reference module states the formulas plainly; the
// tests keep the four in step.
#pragma once

#include <cmath>
#include <cstdint>

#include "gan_kernels/codes.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GK_HD __host__ __device__ __forceinline__
#else
#define GK_HD inline
#endif

namespace gan_kernels {

// ---------------------------------------------------------------------------
// Loss terms. Every loss kind is a sum of per-element terms phi(x) taken over
// the real logits, the fake logits, or their difference (see LossSpec). One
// table of four term shapes covers all kinds, so the kernels have no per-kind
// branches beyond a switch on TermType.
// ---------------------------------------------------------------------------
enum TermType : int { kTermNone = 0, kTermBce = 1, kTermHinge = 2, kTermLinear = 3, kTermSquare = 4 };

struct Term {
  int type;  // TermType
  // double so float64 inputs see the caller's exact real_label / targets (cast to T at use).
  double t;  // BCE target / hinge sign / square target
  double c;  // multiplier of the whole term
};

// How the real and fake terms combine.
enum LossMode : int {
  kModeSeparate = 0,      // sum_i phi_r(r_i) + sum_j phi_f(f_j)
  kModeRelativistic = 1,  // sum_i phi_r(r_i - mean f) + sum_j phi_f(f_j - mean r)
  kModePaired = 2,        // sum_i phi_r(r_i - f_i)   (needs paired logits)
};

struct LossSpec {
  int mode;     // LossMode
  Term real;    // applied to the real logits (or to r - f when paired)
  Term fake;    // applied to the fake logits (unused when paired)
  double drift;  // + drift * r^2 on every real element (ProGAN)
};

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows and
// keeps full precision for large |x| (log(sigmoid) would not).
template <typename T>
GK_HD T softplus(T x) {
  return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
}

template <typename T>
GK_HD T sigmoid(T x) {
  // Both branches only ever exponentiate a non-positive number.
  if (x >= T(0)) {
    return T(1) / (T(1) + std::exp(-x));
  }
  T e = std::exp(x);
  return e / (T(1) + e);
}

// phi(x) of one term.
template <typename T>
GK_HD T term_value(const Term& term, T x) {
  switch (term.type) {
    case kTermBce:  // BCE-with-logits against target t
      return T(term.c) * ((x > T(0) ? x : T(0)) - x * T(term.t) + std::log1p(std::exp(-std::abs(x))));
    case kTermHinge: {  // relu(1 - t x); written so a NaN stays NaN, as torch.relu keeps it
      T v = T(1) - T(term.t) * x;
      return T(term.c) * (v < T(0) ? T(0) : v);
    }
    case kTermLinear:
      return T(term.c) * x;
    case kTermSquare: {
      T d = x - T(term.t);
      return T(term.c) * T(0.5) * d * d;
    }
    default:
      return T(0);
  }
}

// phi'(x) of one term. The hinge derivative at its kink is taken as 0, as
// autograd's relu does.
template <typename T>
GK_HD T term_grad(const Term& term, T x) {
  switch (term.type) {
    case kTermBce:
      return T(term.c) * (sigmoid(x) - T(term.t));
    case kTermHinge:
      return (T(1) - T(term.t) * x) > T(0) ? -T(term.c) * T(term.t) : T(0);
    case kTermLinear:
      return T(term.c);
    case kTermSquare:
      return T(term.c) * (x - T(term.t));
    default:
      return T(0);
  }
}

GK_HD LossSpec d_loss_spec(int64_t kind, double real_label, double drift, double ls_fake, double ls_real) {
  LossSpec s{kModeSeparate, {kTermNone, 0.0, 1.0}, {kTermNone, 0.0, 1.0}, drift};
  switch (kind) {
    case kDLogistic:  // BCE(r, real_label) + softplus(f)
      s.real = {kTermBce, real_label, 1.0};
      s.fake = {kTermBce, 0.0, 1.0};
      break;
    case kDHinge:  // relu(1 - r) + relu(1 + f)
      s.real = {kTermHinge, 1.0, 1.0};
      s.fake = {kTermHinge, -1.0, 1.0};
      break;
    case kDWasserstein:  // f - r
      s.real = {kTermLinear, 0.0, -1.0};
      s.fake = {kTermLinear, 0.0, 1.0};
      break;
    case kDLeastSquares:  // 1/2 (r - b)^2 + 1/2 (f - a)^2
      s.real = {kTermSquare, ls_real, 1.0};
      s.fake = {kTermSquare, ls_fake, 1.0};
      break;
    case kDRelativistic:  // softplus(-(r - mean f)) + softplus(f - mean r)
      s.mode = kModeRelativistic;
      s.real = {kTermBce, 1.0, 1.0};
      s.fake = {kTermBce, 0.0, 1.0};
      break;
    case kDRpgan:  // softplus(f - r) = BCE(r - f, 1)
      s.mode = kModePaired;
      s.real = {kTermBce, 1.0, 1.0};
      break;
    default:
      break;
  }
  return s;
}

GK_HD LossSpec g_loss_spec(int64_t kind, double ls_target) {
  LossSpec s{kModeSeparate, {kTermNone, 0.0, 1.0}, {kTermNone, 0.0, 1.0}, 0.0};
  switch (kind) {
    case kGLogistic:  // softplus(-f)
      s.fake = {kTermBce, 1.0, 1.0};
      break;
    case kGMinimax:  // -softplus(f)
      s.fake = {kTermBce, 0.0, -1.0};
      break;
    case kGHinge:
    case kGWasserstein:  // -f
      s.fake = {kTermLinear, 0.0, -1.0};
      break;
    case kGLeastSquares:  // 1/2 (f - c)^2
      s.fake = {kTermSquare, ls_target, 1.0};
      break;
    case kGRelativistic:  // softplus(-(f - mean r)) + softplus(r - mean f)
      s.mode = kModeRelativistic;
      s.real = {kTermBce, 0.0, 1.0};
      s.fake = {kTermBce, 1.0, 1.0};
      break;
    case kGRpgan:  // softplus(r - f) = BCE(r - f, 0)
      s.mode = kModePaired;
      s.real = {kTermBce, 0.0, 1.0};
      break;
    default:
      break;
  }
  return s;
}

// ---------------------------------------------------------------------------
// Gradient penalty. With n the L2 norm of the unscaled gradient g of one
// sample and s the unscale factor, the penalty sees m = s n. These return
// p(m) and the coefficient k with d p / d g = k * g.
// ---------------------------------------------------------------------------
template <typename T>
GK_HD T penalty_value(int64_t kind, T norm, T s, T center) {
  T m = s * norm;
  switch (kind) {
    case kWganGp: {
      T d = m - center;
      return d * d;
    }
    case kWganLp: {
      T d = m - center;
      d = d < T(0) ? T(0) : d;  // max(0, d) that keeps a NaN (a comparison with NaN is false)
      return d * d;
    }
    case kR1:
      return m * m;
    default:
      return T(0);
  }
}

template <typename T>
GK_HD T penalty_coef(int64_t kind, T norm, T s, T center) {
  switch (kind) {
    case kR1:  // d (s n)^2 / d g = 2 s^2 g, no division: defined at n = 0
      return T(2) * s * s;
    case kWganGp:
    case kWganLp: {
      // d (s n - c)^2 / d g = 2 (s n - c) s g / n; the gradient of the norm is
      // undefined at n = 0 and taken as 0 there (never NaN).
      if (!(norm > T(0))) {
        // norm == 0 -> 0; NaN norm keeps NaN so a bad step is not hidden.
        return norm == T(0) ? T(0) : norm;
      }
      T d = s * norm - center;
      if (kind == kWganLp && !(d > T(0))) {
        return d == d ? T(0) : d;
      }
      return T(2) * d * s / norm;
    }
    default:
      return T(0);
  }
}

}  // namespace gan_kernels
