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
// Term types and modes are the schema codes of codes.h.
struct Term {
  int type;  // TermType
  // double so float64 inputs see the caller's exact real_label / targets (cast to T at use).
  double t;  // BCE target / hinge sign / square target
  double c;  // multiplier of the whole term
};

struct LossSpec {
  int mode;     // LossMode
  Term real;    // applied to the real logits (or to r - f when paired)
  Term fake;    // applied to the fake logits (unused when paired)
  double drift;  // + drift * r^2 on every real element (ProGAN)
};

// Whether a spec reads the real logits at all (a separate-mode G loss does not).
GK_HD bool spec_uses_real(const LossSpec& s) { return s.mode != kModeSeparate || s.real.type != kTermNone; }

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

// max(x, 0) - x t, the part of BCE(x, t) outside the log1p. For the usual
// targets it is written without the product, max(-x, 0) for t = 1 and
// max(x, 0) for t = 0: the same value for finite x, and the formula's limit
// (0 or inf) instead of inf - inf = NaN for an infinite logit, as the
// reference's softplus(-x) / softplus(x) give.
template <typename T>
GK_HD T bce_linear(T x, T t) {
  if (t == T(1)) return -x > T(0) ? -x : T(0);
  if (t == T(0)) return x > T(0) ? x : T(0);
  return (x > T(0) ? x : T(0)) - x * t;
}

// phi(x) of one term.
template <typename T>
GK_HD T term_value(const Term& term, T x) {
  switch (term.type) {
    case kTermBce:  // BCE-with-logits against target t
      return T(term.c) * (bce_linear(x, T(term.t)) + std::log1p(std::exp(-std::abs(x))));
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
// autograd's relu does (and, like it, passes the slope for a NaN logit).
template <typename T>
GK_HD T term_grad(const Term& term, T x) {
  switch (term.type) {
    case kTermBce: {
      // sigmoid(x) - 1 = -sigmoid(-x) without the cancellation that would leave a confident
      // logit's small gradient with few correct digits (as the reference's softplus(-x) gives it).
      const T t = T(term.t);
      return T(term.c) * (t == T(1) ? -sigmoid(-x) : (t == T(0) ? sigmoid(x) : sigmoid(x) - t));
    }
    case kTermHinge:  // as autograd's relu: 0 where 1 - t x <= 0, the slope elsewhere (NaN included)
      return (T(1) - T(term.t) * x) <= T(0) ? T(0) : -T(term.c) * T(term.t);
    case kTermLinear:
      return T(term.c);
    case kTermSquare:
      return T(term.c) * (x - T(term.t));
    default:
      return T(0);
  }
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
