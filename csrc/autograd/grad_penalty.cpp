// gan_kernels::grad_penalty -- weight * reduce_i p(s ||grad_i||): argument
// checks, the autograd Function, and the ATen formula its second derivative
// differentiates.
//
// Saved: grad (the backward is k_i * grad_i), the per-sample norms from the
// forward, and the unscale tensor when given.
#include <optional>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "autograd.h"
#include "gan_kernels/checks.h"

namespace gan_kernels {
namespace autograd {
namespace {

using ForwardFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, double, double, int64_t, double,
                                                     const std::optional<at::Tensor>&);
using BackwardFn = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, double, double,
                              int64_t, double, const std::optional<at::Tensor>&);

std::optional<at::Tensor> opt(const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; }

// The penalty in plain ATen, with the kernels' zero-norm rule: the norm's
// derivative is 0 where the norm is exactly 0 (sqrt alone would give NaN).
at::Tensor penalty_formula(const at::Tensor& grad, int64_t kind, double center, double weight, int64_t reduction,
                           double inv_scale, const at::Tensor& inv_scale_tensor) {
  at::Tensor g = up(grad);
  if (inv_scale_tensor.defined()) {
    g = g * (inv_scale_tensor.detach().to(g.scalar_type()) * inv_scale);
  } else if (inv_scale != 1.0) {
    g = g * inv_scale;
  }
  at::Tensor sq = g * g;
  if (sq.dim() > 1) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < sq.dim(); ++d) dims.push_back(d);
    sq = sq.sum(dims);
  }
  at::Tensor p;
  if (kind == kR1) {
    p = sq;
  } else {
    const at::Tensor nonzero = sq != 0;
    const at::Tensor n = at::where(nonzero, at::where(nonzero, sq, at::ones_like(sq)).sqrt(), at::zeros_like(sq));
    const at::Tensor d = kind == kWganLp ? at::relu(n - center) : n - center;
    p = d * d;
  }
  return weight * reduce(p, reduction);
}

}  // namespace

// Outside the anonymous namespace: the graph node is named after this class.
class GradPenaltyFunction : public torch::autograd::Function<GradPenaltyFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, int64_t kind, double center, double weight,
                            int64_t reduction, double inv_scale, const std::optional<at::Tensor>& inv_scale_tensor) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("gan_kernels::grad_penalty_forward", "")
                         .typed<ForwardFn>();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [loss, norms] = op.call(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor);
    ctx->save_for_backward({grad, norms, inv_scale_tensor.value_or(at::Tensor())});
    ctx->saved_data["kind"] = kind;
    ctx->saved_data["center"] = center;
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["inv_scale"] = inv_scale;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &grad = saved[0], &norms = saved[1], &ist = saved[2];
    const auto& d = ctx->saved_data;
    const int64_t kind = d.at("kind").toInt(), reduction = d.at("reduction").toInt();
    const double center = d.at("center").toDouble(), weight = d.at("weight").toDouble();
    const double inv_scale = d.at("inv_scale").toDouble();
    at::Tensor d_grad;
    if (at::GradMode::is_enabled()) {
      d_grad = vjp([&](const variable_list& x) {
                     return penalty_formula(x[0], kind, center, weight, reduction, inv_scale, ist);
                   },
                   {grad}, {true}, grad_outputs[0])[0];
    } else {
      static auto op = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("gan_kernels::grad_penalty_backward", "")
                           .typed<BackwardFn>();
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      d_grad = op.call(grad_outputs[0], grad, norms, kind, center, weight, reduction, inv_scale, opt(ist));
    }
    return {d_grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

namespace {

void check_penalty(const at::Tensor& grad, int64_t kind, int64_t reduction,
                   const std::optional<at::Tensor>& inv_scale_tensor) {
  check_penalty_kind(kind);
  check_reduction(reduction);
  check_batch(grad, "grad");
  if (inv_scale_tensor.has_value() && inv_scale_tensor->defined()) {
    TORCH_CHECK_VALUE(inv_scale_tensor->sym_numel() == 1, "inv_scale must be a number or a one-element tensor, got shape ",
                      py_shape(inv_scale_tensor->sym_sizes()));
    TORCH_CHECK_VALUE(inv_scale_tensor->device() == grad.device(), "inv_scale is on ",
                      inv_scale_tensor->device().str(), " but grad is on ", grad.device().str());
  }
}

at::Tensor grad_penalty_autograd(const at::Tensor& grad, int64_t kind, double center, double weight,
                                 int64_t reduction, double inv_scale,
                                 const std::optional<at::Tensor>& inv_scale_tensor) {
  check_penalty(grad, kind, reduction, inv_scale_tensor);
  return GradPenaltyFunction::apply(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor);
}

at::Tensor grad_penalty_plain(const at::Tensor& grad, int64_t kind, double center, double weight, int64_t reduction,
                              double inv_scale, const std::optional<at::Tensor>& inv_scale_tensor) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gan_kernels::grad_penalty_forward", "")
                       .typed<ForwardFn>();
  check_penalty(grad, kind, reduction, inv_scale_tensor);
  return std::get<0>(op.call(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor));
}

}  // namespace
}  // namespace autograd
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, Autograd, m) {
  m.impl("grad_penalty", &gan_kernels::autograd::grad_penalty_autograd);
}

TORCH_LIBRARY_IMPL(gan_kernels, CompositeExplicitAutograd, m) {
  m.impl("grad_penalty", &gan_kernels::autograd::grad_penalty_plain);
}
