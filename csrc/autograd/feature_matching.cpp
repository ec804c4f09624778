// gan_kernels::feature_matching -- sum_k w_k * reduce |real_k - fake_k| over a
// list of feature-map pairs: argument checks, the autograd Function, and the
// ATen formula its second derivative differentiates.
//
// Nothing but references to the inputs is saved: the backward recomputes
// sign(real_k - fake_k), which costs the same reads a saved sign would and no
// extra memory. Gradients go to whichever side requires them (pix2pixHD
// detaches the real features, HiFi-GAN does not).
#include <string>
#include <tuple>
#include <vector>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "autograd.h"
#include "gan_kernels/checks.h"

namespace gan_kernels {
namespace autograd {
namespace {

using FmForwardFn = at::Tensor(at::TensorList, at::TensorList, c10::ArrayRef<double>, int64_t);
using FmBackwardFn = std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>>(
    const at::Tensor&, at::TensorList, at::TensorList, c10::ArrayRef<double>, int64_t, bool, bool);

at::Tensor fm_forward(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gan_kernels::feature_matching_forward", "")
                       .typed<FmForwardFn>();
  return op.call(real, fake, weights, reduction);
}

// The loss in plain ATen: each pair reduced on its own, weighted, then added
// in list order ("none": the (K,) weighted terms).
at::Tensor fm_formula(const variable_list& x, size_t K, const std::vector<double>& weights, int64_t reduction) {
  std::vector<at::Tensor> terms;
  for (size_t k = 0; k < K; ++k) {
    const at::Tensor d = at::abs(up(x[k]) - up(x[K + k]));
    terms.push_back((reduction == kReduceSum ? d.sum() : d.mean()) * weights[k]);
  }
  if (reduction == kReduceNone) {
    at::ScalarType t = terms[0].scalar_type();
    for (const auto& v : terms) t = c10::promoteTypes(t, v.scalar_type());
    for (auto& v : terms) v = v.to(t);
    return at::stack(terms);
  }
  at::Tensor total = terms[0];
  for (size_t k = 1; k < K; ++k) total = total + terms[k];
  return total;
}

}  // namespace

class FeatureMatchingFunction : public torch::autograd::Function<FeatureMatchingFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, at::TensorList real, at::TensorList fake,
                            const std::vector<double>& weights, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor out = fm_forward(real, fake, weights, reduction);
    variable_list saved(real.begin(), real.end());
    saved.insert(saved.end(), fake.begin(), fake.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["weights"] = weights;
    ctx->saved_data["reduction"] = reduction;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const size_t K = saved.size() / 2;
    const std::vector<double> weights = ctx->saved_data["weights"].toDoubleVector();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    std::vector<bool> needs(2 * K);
    bool need_real = false, need_fake = false;
    for (size_t i = 0; i < 2 * K; ++i) {
      needs[i] = ctx->needs_input_grad(i);
      (i < K ? need_real : need_fake) |= needs[i];
    }
    const at::Tensor& go = grad_outputs[0];
    variable_list grads(2 * K);
    if (at::GradMode::is_enabled()) {
      grads = vjp([&](const variable_list& x) { return fm_formula(x, K, weights, reduction); }, saved, needs, go);
    } else if (need_real || need_fake) {
      static auto op = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("gan_kernels::feature_matching_backward", "")
                           .typed<FmBackwardFn>();
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      const variable_list real(saved.begin(), saved.begin() + K), fake(saved.begin() + K, saved.end());
      auto [dr, df] = op.call(go, real, fake, weights, reduction, need_real, need_fake);
      for (size_t k = 0; k < K; ++k) {
        if (need_real) grads[k] = dr[k];
        if (need_fake) grads[K + k] = df[k];
      }
    }
    variable_list res(2 * K + 2);  // + weights, reduction
    for (size_t i = 0; i < 2 * K; ++i) {
      if (needs[i]) res[i] = grads[i];
    }
    return res;
  }
};

namespace {

// What a user can get wrong, with the messages of the Python reference path;
// brings each pair to one dtype.
std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> checked_features(at::TensorList real,
                                                                             at::TensorList fake,
                                                                             c10::ArrayRef<double> weights,
                                                                             int64_t reduction) {
  check_reduction(reduction);
  TORCH_CHECK_VALUE(!real.empty() && !fake.empty(),
                    "feature_matching_loss: got an empty list of feature maps (real_feats has ", real.size(),
                    ", fake_feats has ", fake.size(), ")");
  TORCH_CHECK_VALUE(real.size() == fake.size(), "feature_matching_loss: real_feats has ", real.size(),
                    " feature maps but fake_feats has ", fake.size());
  TORCH_CHECK_VALUE(weights.size() == real.size(), "feature_matching_loss: ", weights.size(), " weights for ",
                    real.size(), " feature-map pairs; give one number or one weight per pair");
  std::vector<at::Tensor> r_out, f_out;
  for (size_t k = 0; k < real.size(); ++k) {
    at::Tensor r = real[k], f = fake[k];
    const std::string ri = "real_feats[" + std::to_string(k) + "]", fi = "fake_feats[" + std::to_string(k) + "]";
    TORCH_CHECK_TYPE(r.is_floating_point(), ri,
                     " must be a floating-point tensor (float16, bfloat16, float32, float64), got ",
                     py_dtype(r.scalar_type()));
    TORCH_CHECK_TYPE(f.is_floating_point(), fi,
                     " must be a floating-point tensor (float16, bfloat16, float32, float64), got ",
                     py_dtype(f.scalar_type()));
    check_same_device(r, ri.c_str(), f, fi.c_str());
    if (k > 0) check_same_device(r, ri.c_str(), real[0], "real_feats[0]");
    TORCH_CHECK_VALUE(r.sym_sizes() == f.sym_sizes(), "feature_matching_loss pair ", k, ": real ",
                      py_shape(r.sym_sizes()), " vs fake ", py_shape(f.sym_sizes()),
                      ": the two feature maps of a pair must have the same shape");
    TORCH_CHECK_VALUE(r.sym_numel() != 0, "feature_matching_loss pair ", k, ": the feature maps are empty (shape ",
                      py_shape(r.sym_sizes()), ")");
    promote_pair(r, f);
    r_out.push_back(r);
    f_out.push_back(f);
  }
  return {r_out, f_out};
}

at::Tensor feature_matching_autograd(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
                                     int64_t reduction) {
  auto [r, f] = checked_features(real, fake, weights, reduction);
  return FeatureMatchingFunction::apply(at::TensorList(r), at::TensorList(f), weights.vec(), reduction);
}

at::Tensor feature_matching_plain(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
                                  int64_t reduction) {
  auto [r, f] = checked_features(real, fake, weights, reduction);
  return fm_forward(r, f, weights, reduction);
}

}  // namespace
}  // namespace autograd
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, Autograd, m) {
  m.impl("feature_matching", &gan_kernels::autograd::feature_matching_autograd);
}

TORCH_LIBRARY_IMPL(gan_kernels, CompositeExplicitAutograd, m) {
  m.impl("feature_matching", &gan_kernels::autograd::feature_matching_plain);
}
