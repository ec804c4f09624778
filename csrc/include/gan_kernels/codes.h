// Integer codes shared by the schemas' `int` arguments, the C++ kernels and
// Python (gan_kernels/_kinds.py mirrors these numbers; a test checks the two).
#pragma once

#include <cstdint>

namespace gan_kernels {

enum Reduction : int64_t { kReduceNone = 0, kReduceMean = 1, kReduceSum = 2 };

// d_loss kinds
enum DLossKind : int64_t {
  kDLogistic = 0,
  kDHinge = 1,
  kDWasserstein = 2,
  kDLeastSquares = 3,
  kDRelativistic = 4,
  kDRpgan = 5,
};

// g_loss kinds
enum GLossKind : int64_t {
  kGLogistic = 0,
  kGMinimax = 1,
  kGHinge = 2,
  kGWasserstein = 3,
  kGLeastSquares = 4,
  kGRelativistic = 5,
  kGRpgan = 6,
};

// grad_penalty kinds
enum PenaltyKind : int64_t { kWganGp = 0, kWganLp = 1, kR1 = 2 };

}  // namespace gan_kernels
