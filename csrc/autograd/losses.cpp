// gan_kernels::loss -- every discriminator / generator loss, its kind given as
// a LossSpec (math.h): argument checks, the autograd Function, and the ATen
// formula its second derivative differentiates.
//
// Forward runs loss_forward, which returns the per-element gradients for a
// unit upstream gradient in the same pass; backward scales them
// (loss_backward). Saved: the two gradients, and the logits themselves
// (references to the caller's tensors, no copies) for the second derivative
// and for the relativistic kind with reduction "none", whose Jacobian is not
// diagonal.
#include <optional>
#include <tuple>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "autograd.h"
#include "gan_kernels/checks.h"

namespace gan_kernels {
namespace autograd {
namespace {

at::Tensor softplus_of(const at::Tensor& x) {
  // logaddexp differentiates to sigmoid(x) everywhere, also at x = 0.
  return at::logaddexp(x, at::zeros({}, x.options()));
}

// phi(x) of one term, as plain ATen (the kernels' math.h term_value).
at::Tensor term_value(const Term& t, const at::Tensor& x) {
  at::Tensor v;
  switch (t.type) {
    case kTermBce:
      // softplus_of(-x) and softplus_of(x) keep their digits where softplus_of(x) - x t would cancel.
      v = t.t == 1.0 ? softplus_of(-x) : t.t == 0.0 ? softplus_of(x) : softplus_of(x) - x * t.t;
      break;
    case kTermHinge:
      v = at::relu(1 - x * t.t);
      break;
    case kTermLinear:
      v = x;
      break;
    case kTermSquare: {
      const at::Tensor d = x - t.t;
      v = 0.5 * d * d;
      break;
    }
    default:
      TORCH_CHECK(false, "gan_kernels: no value for term type ", t.type);
  }
  return t.c == 1.0 ? v : v * t.c;
}

// The loss of `spec` in plain ATen: each term reduced on its own, then added.
at::Tensor loss_formula(const at::Tensor& real, const at::Tensor& fake, const LossSpec& spec, int64_t reduction) {
  const at::Tensor f = up(fake);
  const at::Tensor r = real.defined() ? up(real) : at::Tensor();
  at::Tensor rt, ft;
  if (spec.mode == kModeRelativistic) {
    rt = term_value(spec.real, r - f.mean());
    ft = term_value(spec.fake, f - r.mean());
  } else if (spec.mode == kModePaired) {
    rt = term_value(spec.real, r - f);
  } else {
    if (spec.real.type != kTermNone) rt = term_value(spec.real, r);
    if (spec.fake.type != kTermNone) ft = term_value(spec.fake, f);
  }
  if (spec.drift != 0.0 && rt.defined()) rt = rt + r * spec.drift * r;
  if (!rt.defined()) return reduce(ft, reduction);
  if (!ft.defined()) return reduce(rt, reduction);
  return reduce(rt, reduction) + reduce(ft, reduction);
}

using LossForwardFn = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const std::optional<at::Tensor>&,
                                                                     const at::Tensor&, int64_t, int64_t, double,
                                                                     double, int64_t, double, double, double, int64_t,
                                                                     bool);
using LossBackwardFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                          at::ScalarType, at::ScalarType);

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward(const at::Tensor& real, const at::Tensor& fake,
                                                            const LossSpec& s, int64_t reduction,
                                                            bool compute_grad) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gan_kernels::loss_forward", "")
                       .typed<LossForwardFn>();
  return op.call(real.defined() ? std::optional<at::Tensor>(real) : std::nullopt, fake, s.mode, s.real.type,
                 s.real.t, s.real.c, s.fake.type, s.fake.t, s.fake.c, s.drift, reduction, compute_grad);
}

}  // namespace

// Outside the anonymous namespace: the graph node is named after this class.
class LossFunction : public torch::autograd::Function<LossFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const std::optional<at::Tensor>& real_opt, const at::Tensor& fake,
                            const LossSpec& spec, int64_t reduction, bool compute_grad) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
    auto [loss, grad_real, grad_fake] = loss_forward(real, fake, spec, reduction, compute_grad);
    ctx->save_for_backward({real, fake, grad_real, grad_fake});
    ctx->saved_data["mode"] = static_cast<int64_t>(spec.mode);
    ctx->saved_data["real_term"] = static_cast<int64_t>(spec.real.type);
    ctx->saved_data["fake_term"] = static_cast<int64_t>(spec.fake.type);
    ctx->saved_data["rt"] = spec.real.t;
    ctx->saved_data["rc"] = spec.real.c;
    ctx->saved_data["ft"] = spec.fake.t;
    ctx->saved_data["fc"] = spec.fake.c;
    ctx->saved_data["drift"] = spec.drift;
    ctx->saved_data["reduction"] = reduction;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &real = saved[0], &fake = saved[1], &grad_real = saved[2], &grad_fake = saved[3];
    // needs_input_grad counts tensor inputs only: fake is input 0 when real was None.
    const bool has_real = real.defined();
    const std::vector<bool> needs = {has_real && ctx->needs_input_grad(0), ctx->needs_input_grad(has_real ? 1 : 0)};
    const at::Tensor& go = grad_outputs[0];
    at::Tensor d_real, d_fake;
    if (at::GradMode::is_enabled() || grad_fake.sym_numel() == 0) {
      const auto& d = ctx->saved_data;
      LossSpec spec{static_cast<int>(d.at("mode").toInt()),
                    {static_cast<int>(d.at("real_term").toInt()), d.at("rt").toDouble(), d.at("rc").toDouble()},
                    {static_cast<int>(d.at("fake_term").toInt()), d.at("ft").toDouble(), d.at("fc").toDouble()},
                    d.at("drift").toDouble()};
      const int64_t reduction = d.at("reduction").toInt();
      auto grads = vjp([&](const variable_list& x) { return loss_formula(x[0], x[1], spec, reduction); },
                       {real, fake}, needs, go);
      d_real = grads[0];
      d_fake = grads[1];
    } else {
      static auto op = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("gan_kernels::loss_backward", "")
                           .typed<LossBackwardFn>();
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      std::tie(d_real, d_fake) = op.call(go, grad_real, grad_fake,
                                         real.defined() ? real.scalar_type() : fake.scalar_type(),
                                         fake.scalar_type());
    }
    return {needs[0] ? d_real : at::Tensor(), needs[1] ? d_fake : at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

namespace {

// Checks what a user can get wrong, with the messages of the Python API, and
// brings real and fake to one dtype. Returns (real or undefined, fake).
std::pair<at::Tensor, at::Tensor> checked_logits(const std::optional<at::Tensor>& real_opt, const at::Tensor& fake,
                                                 const LossSpec& spec, int64_t reduction) {
  check_reduction(reduction);
  if (!spec_uses_real(spec)) {
    check_batch(fake, "fake_logits");
    return {at::Tensor(), fake};
  }
  TORCH_CHECK_VALUE(real_opt.has_value() && real_opt->defined(),
                    "this loss kind needs real_logits (it compares fake against real logits)");
  at::Tensor real = *real_opt, f = fake;
  check_batch(real, "real_logits");
  check_batch(f, "fake_logits");
  check_same_device(real, "real_logits", f, "fake_logits");
  const bool both_terms = spec.real.type != kTermNone && spec.fake.type != kTermNone;
  if (real.sym_sizes() != f.sym_sizes()) {
    TORCH_CHECK_VALUE(spec.mode != kModePaired,
                      "the rpgan kind pairs real and fake logits element by element: shapes must match, got ", py_shape(real.sym_sizes()),
                      " and ", py_shape(f.sym_sizes()));
    TORCH_CHECK_VALUE(!(reduction == kReduceNone && both_terms),
                      "reduction='none' adds the real and fake terms elementwise: real_logits and fake_logits must "
                      "have the same shape, got ",
                      py_shape(real.sym_sizes()), " and ", py_shape(f.sym_sizes()));
  }
  if (real.scalar_type() != f.scalar_type()) {
    const at::ScalarType t = c10::promoteTypes(real.scalar_type(), f.scalar_type());
    real = real.to(t);
    f = f.to(t);
  }
  return {real, f};
}

at::Tensor loss_autograd(const std::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t mode,
                         int64_t real_term, double real_target, double real_coef, int64_t fake_term,
                         double fake_target, double fake_coef, double drift, int64_t reduction) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  auto [real, f] = checked_logits(real_opt, fake, spec, reduction);
  const bool compute_grad = at::GradMode::is_enabled() && (f.requires_grad() || (real.defined() && real.requires_grad()));
  return LossFunction::apply(real.defined() ? std::optional<at::Tensor>(real) : std::nullopt, f, spec, reduction,
                             compute_grad);
}

// Without autograd (inference mode, or a trace below the Autograd key).
at::Tensor loss_plain(const std::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t mode,
                      int64_t real_term, double real_target, double real_coef, int64_t fake_term, double fake_target,
                      double fake_coef, double drift, int64_t reduction) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  auto [real, f] = checked_logits(real_opt, fake, spec, reduction);
  return std::get<0>(loss_forward(real, f, spec, reduction, false));
}

}  // namespace
}  // namespace autograd
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, Autograd, m) { m.impl("loss", &gan_kernels::autograd::loss_autograd); }

TORCH_LIBRARY_IMPL(gan_kernels, CompositeExplicitAutograd, m) {
  m.impl("loss", &gan_kernels::autograd::loss_plain);
}
