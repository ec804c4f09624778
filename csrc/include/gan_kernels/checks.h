// Argument checks shared by the ops' entry points (host only).
//
// The public ops (autograd/) check what a user can get wrong and raise the
// Python exception a user expects (TORCH_CHECK_VALUE -> ValueError,
// TORCH_CHECK_TYPE -> TypeError), with the messages of the Python reference
// path (gan_kernels/functional.py), so every back end fails the same way.
// The device ops check only what would make them read memory wrongly.
#pragma once

#include <optional>
#include <sstream>
#include <string>

#include <ATen/ATen.h>

#include "gan_kernels/codes.h"
#include "gan_kernels/math.h"

namespace gan_kernels {

// A shape as Python prints a tuple: (), (5,), (2, 3). Symbolic sizes (a
// torch.compile trace with dynamic shapes) print as their expressions.
template <typename Sizes>
std::string py_shape(const Sizes& sizes) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  if (sizes.size() == 1) s << ",";
  s << ")";
  return s.str();
}

// A dtype as Python prints it (torch.float32).
inline std::string py_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    default: return std::string("torch.") + c10::toString(t);
  }
}

inline bool is_kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// A batch of samples: floating point, a batch dimension, not empty. Reads
// symbolic sizes, so a dynamic-shape trace passes through (with a guard).
inline void check_batch(const at::Tensor& x, const char* name) {
  TORCH_CHECK_TYPE(is_kernel_dtype(x.scalar_type()), name,
                   " must be a floating-point tensor (float16, bfloat16, float32, float64), got ",
                   py_dtype(x.scalar_type()));
  TORCH_CHECK_VALUE(x.dim() >= 1, name, " must have a batch dimension (shape (B, ...)), got a ", x.dim(),
                    "-dim tensor");
  TORCH_CHECK_VALUE(x.sym_numel() != 0, name, " is empty (shape ", py_shape(x.sym_sizes()),
                    "): an empty batch has no loss to compute");
}

inline void check_same_device(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK_VALUE(a.device() == b.device(), a_name, " is on ", a.device().str(), " but ", b_name, " is on ",
                    b.device().str(), "; move them to one device");
}

// A device op's tensor on the device its kernel runs on.
inline void check_on(const at::Tensor& t, c10::DeviceType type, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.device().type() == type, "gan_kernels::", op, ": ", name, " is on ", t.device().str(),
                    " but this kernel runs on ", c10::DeviceTypeName(type, /*lower_case=*/true),
                    " tensors; move all inputs to one device");
}

inline void check_reduction(int64_t reduction) {
  TORCH_CHECK_VALUE(reduction >= kReduceNone && reduction <= kReduceSum, "gan_kernels: unknown reduction code ",
                    reduction, " (0 none, 1 mean, 2 sum)");
}

inline void check_penalty_kind(int64_t kind) {
  TORCH_CHECK_VALUE(kind >= kWganGp && kind <= kR1, "gan_kernels: unknown grad_penalty kind code ", kind,
                    " (0 wgan-gp, 1 wgan-lp, 2 r1)");
}

// The LossSpec of a schema's spec arguments, with its codes checked.
inline LossSpec make_spec(int64_t mode, int64_t real_term, double real_target, double real_coef, int64_t fake_term,
                          double fake_target, double fake_coef, double drift) {
  TORCH_CHECK_VALUE(mode >= kModeSeparate && mode <= kModePaired, "gan_kernels: unknown loss mode code ", mode,
                    " (0 separate, 1 relativistic, 2 paired)");
  TORCH_CHECK_VALUE(real_term >= kTermNone && real_term <= kTermSquare && fake_term >= kTermNone &&
                        fake_term <= kTermSquare,
                    "gan_kernels: unknown loss term code (real ", real_term, ", fake ", fake_term,
                    "; 0 none .. 4 square)");
  TORCH_CHECK_VALUE(mode != kModeRelativistic || (real_term != kTermNone && fake_term != kTermNone),
                    "gan_kernels: a relativistic loss needs a real and a fake term");
  TORCH_CHECK_VALUE(mode != kModePaired || real_term != kTermNone,
                    "gan_kernels: a paired loss needs its term in the real slot");
  return LossSpec{static_cast<int>(mode),
                  {static_cast<int>(real_term), real_target, real_coef},
                  {static_cast<int>(fake_term), fake_target, fake_coef},
                  drift};
}

// Checks of a loss's logits shared by every device op: `real` (undefined when
// absent) must be present exactly when the spec reads it, and the shapes must
// match where elements are paired or added.
inline void check_loss_logits(const at::Tensor& real, const at::Tensor& fake, const LossSpec& spec,
                              int64_t reduction, c10::DeviceType type, const char* op) {
  check_reduction(reduction);
  check_on(fake, type, op, "fake");
  TORCH_CHECK_VALUE(fake.dim() >= 1, "gan_kernels::", op, ": fake must have a batch dimension");
  TORCH_CHECK_VALUE(is_kernel_dtype(fake.scalar_type()), "gan_kernels::", op, ": unsupported dtype ",
                    py_dtype(fake.scalar_type()));
  const bool uses_real = spec_uses_real(spec);
  if (!uses_real) return;
  TORCH_CHECK_VALUE(real.defined(), "gan_kernels::", op, ": this loss needs the real logits");
  check_on(real, type, op, "real");
  TORCH_CHECK_VALUE(real.dim() >= 1, "gan_kernels::", op, ": real must have a batch dimension");
  TORCH_CHECK_TYPE(real.scalar_type() == fake.scalar_type(), "gan_kernels::", op,
                   ": real and fake must have the same dtype, got ", py_dtype(real.scalar_type()), " and ",
                   py_dtype(fake.scalar_type()));
  const bool both_terms = spec.real.type != kTermNone && spec.fake.type != kTermNone;
  if (spec.mode == kModePaired || (reduction == kReduceNone && both_terms)) {
    TORCH_CHECK_VALUE(real.sizes() == fake.sizes(), "gan_kernels::", op, ": real and fake must have the same shape ",
                      spec.mode == kModePaired ? "for a paired loss" : "for reduction 'none'", ", got ",
                      py_shape(real.sizes()), " and ", py_shape(fake.sizes()));
  }
  TORCH_CHECK_VALUE(!(spec.mode == kModeRelativistic && (real.numel() == 0 || fake.numel() == 0)),
                    "gan_kernels::", op, ": the relativistic loss needs non-empty logits");
}

// check_loss_logits for a device op's optional real logits; returns the real
// logits the spec reads (undefined when it has no real term: a separate-mode
// G loss ignores real logits passed anyway).
inline at::Tensor checked_real_logits(const std::optional<at::Tensor>& real, const at::Tensor& fake,
                                      const LossSpec& spec, int64_t reduction, c10::DeviceType type,
                                      const char* op) {
  const at::Tensor r = spec_uses_real(spec) && real.has_value() ? *real : at::Tensor();
  check_loss_logits(r, fake, spec, reduction, type, op);
  return r;
}

// The list loss's device-op checks: one real tensor per fake one when the
// spec reads them, a reduced loss, each pair as check_loss_logits wants it,
// and every tensor on fake[0]'s device.
inline void check_loss_lists(at::TensorList real, at::TensorList fake, const LossSpec& spec, int64_t reduction,
                             c10::DeviceType type) {
  const char* op = "loss_list_forward";
  const bool uses_real = spec_uses_real(spec);
  const size_t D = fake.size();
  TORCH_CHECK_VALUE(D > 0, "gan_kernels::", op, ": the list of logits is empty");
  check_reduction(reduction);
  TORCH_CHECK_VALUE(reduction != kReduceNone, "gan_kernels::", op, ": lists of logits take reduction 'mean' or 'sum'");
  TORCH_CHECK_VALUE(!uses_real || real.size() == D, "gan_kernels::", op, ": ", real.size(), " real and ", D,
                    " fake tensors; this loss needs one real tensor per fake one");
  for (size_t i = 0; i < D; ++i) {
    const at::Tensor r = uses_real ? real[i] : at::Tensor();
    check_loss_logits(r, fake[i], spec, reduction, type, op);
    TORCH_CHECK_VALUE(fake[i].device() == fake[0].device() && (!r.defined() || r.device() == fake[0].device()),
                      "gan_kernels::", op, ": discriminator ", i, "'s logits are not on ", fake[0].device().str(),
                      " with the others");
  }
}

// The feature-matching device ops' checks: one real map and one weight per
// fake map, each pair of one floating dtype and one shape, all on fake[0]'s
// device.
inline void check_feature_lists(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
                                c10::DeviceType type, const char* op) {
  const size_t K = fake.size();
  TORCH_CHECK_VALUE(K > 0, "gan_kernels::", op, ": the list of feature maps is empty");
  TORCH_CHECK_VALUE(real.size() == K && weights.size() == K, "gan_kernels::", op, ": ", real.size(), " real, ",
                    K, " fake feature maps and ", weights.size(), " weights; expected one of each per pair");
  for (size_t k = 0; k < K; ++k) {
    check_on(real[k], type, op, "real");
    check_on(fake[k], type, op, "fake");
    TORCH_CHECK_VALUE(real[k].device() == fake[0].device() && fake[k].device() == fake[0].device(), "gan_kernels::",
                      op, ": pair ", k, " is not on ", fake[0].device().str(), " with the others");
    TORCH_CHECK_VALUE(is_kernel_dtype(real[k].scalar_type()) && real[k].scalar_type() == fake[k].scalar_type(),
                      "gan_kernels::", op, ": pair ", k, ": real and fake must have one floating dtype, got ",
                      py_dtype(real[k].scalar_type()), " and ", py_dtype(fake[k].scalar_type()));
    TORCH_CHECK_VALUE(real[k].sizes() == fake[k].sizes(), "gan_kernels::", op, ": pair ", k, ": real ",
                      py_shape(real[k].sizes()), " vs fake ", py_shape(fake[k].sizes()));
  }
}

}  // namespace gan_kernels
