// Output layout rule shared by the CPU and CUDA kernels; gan_kernels/_layout.py
// implements the same rule for the fake kernels and the Triton back end.
//
// An output shaped like its input keeps the input's layout when the input is
// dense with the batch outermost (contiguous NCHW and channels_last both are),
// so a kernel walks storage as one flat array, one sample after another.
// Anything else gets a contiguous output and a contiguous copy of the input.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include <ATen/ATen.h>

namespace gan_kernels {

inline bool is_dense(const at::Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) != 1) dims.push_back(d);
  }
  std::stable_sort(dims.begin(), dims.end(),
                   [&](int64_t a, int64_t b) { return x.stride(a) < x.stride(b); });
  int64_t expected = 1;
  for (int64_t d : dims) {
    if (x.stride(d) != expected) return false;
    expected *= x.size(d);
  }
  return true;
}

inline bool is_batch_major(const at::Tensor& x) {
  if (x.dim() == 0 || x.numel() == 0) return x.is_contiguous();
  if (!is_dense(x)) return false;
  const int64_t b = x.size(0);
  return b == 1 || x.stride(0) == x.numel() / b;
}

// Uninitialised tensor shaped like x in the layout the kernels write.
inline at::Tensor empty_batch_major(const at::Tensor& x, at::ScalarType dtype) {
  if (is_batch_major(x)) return at::empty_like(x, x.options().dtype(dtype));
  return at::empty(x.sizes(), x.options().dtype(dtype));
}

inline at::Tensor empty_batch_major(const at::Tensor& x) {
  return empty_batch_major(x, x.scalar_type());
}

// x with exactly like's strides (copied only when they differ).
inline at::Tensor match_layout(const at::Tensor& x, const at::Tensor& like) {
  if (x.strides() == like.strides() && is_batch_major(x)) return x;
  at::Tensor out = at::empty_like(like, x.options());
  out.copy_(x);
  return out;
}

// A feature-matching pair (real, fake maps of one shape) read in one storage
// order: in place when both share a batch-major layout (contiguous or
// channels_last alike), else through contiguous copies. Gradients are written
// in that reading order (grad_buffer) and handed back in each input's own
// layout (grad_in_layout).
struct FmPair {
  at::Tensor r, f;
  int64_t n = 0;
  bool in_place = false;
};

inline FmPair fm_pair(const at::Tensor& r, const at::Tensor& f) {
  FmPair p;
  p.n = r.numel();
  p.in_place = r.strides() == f.strides() && is_batch_major(r);
  p.r = p.in_place ? r : r.contiguous();
  p.f = p.in_place ? f : f.contiguous();
  return p;
}

// The output buffer of x's gradient: x's own strides when the pair is read in
// place, else contiguous.
inline at::Tensor grad_buffer(const FmPair& p, const at::Tensor& x) {
  return p.in_place ? at::empty_like(x) : at::empty(x.sizes(), x.options());
}

// buf (written in p's reading order) in x's layout: a batch-major x keeps its strides.
inline at::Tensor grad_in_layout(const FmPair& p, const at::Tensor& buf, const at::Tensor& x) {
  return p.in_place || !is_batch_major(x) ? buf : match_layout(buf, x);
}

// Accumulation dtype: float64 stays float64, everything else accumulates in float32.
inline at::ScalarType acc_type_of(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace gan_kernels
