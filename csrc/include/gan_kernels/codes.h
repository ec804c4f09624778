// Integer codes shared by the schemas' `int` arguments, the C++ kernels and
// Python (gan_kernels/_kinds.py mirrors these numbers; a test checks the two).
//
// Loss kinds are not codes: Python turns a kind into a LossSpec (a mode and
// two terms, math.h) and passes it as data, so the kernels know four term
// shapes and three modes, never a kind's name.
#pragma once

#include <cstdint>

namespace gan_kernels {

enum Reduction : int64_t { kReduceNone = 0, kReduceMean = 1, kReduceSum = 2 };

// The per-element shape of one loss term phi(x).
enum TermType : int64_t {
  kTermNone = 0,    // no term
  kTermBce = 1,     // c * BCE-with-logits(x, t)
  kTermHinge = 2,   // c * relu(1 - t x)
  kTermLinear = 3,  // c * x
  kTermSquare = 4,  // c * (x - t)^2 / 2
};

// How the real and fake terms combine.
enum LossMode : int64_t {
  kModeSeparate = 0,      // sum_i phi_r(r_i) + sum_j phi_f(f_j)
  kModeRelativistic = 1,  // sum_i phi_r(r_i - mean f) + sum_j phi_f(f_j - mean r)
  kModePaired = 2,        // sum_i phi_r(r_i - f_i)   (needs paired logits)
};

// grad_penalty kinds
enum PenaltyKind : int64_t { kWganGp = 0, kWganLp = 1, kR1 = 2 };

}  // namespace gan_kernels
