// gan_kernels::loss -- every discriminator / generator loss, its kind given as
// a LossSpec (math.h): argument checks, the autograd Function, and the ATen
// formula its second derivative differentiates.
//
// Forward runs loss_forward, which returns the per-element gradients for a
// unit upstream gradient in the same pass; backward scales them
// (loss_backward), or returns them as they are when the upstream gradient is
// exactly 1 and the graph is not kept (can_return_saved). Saved: the two
// gradients, and the logits themselves (references to the caller's tensors,
// no copies) for the second derivative and for the relativistic kind with
// reduction "none", whose Jacobian is not diagonal.
#include <optional>
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

// A Function's spec and reduction, kept in its context for the backward.
void save_spec(AutogradContext* ctx, const LossSpec& spec, int64_t reduction) {
  ctx->saved_data["mode"] = static_cast<int64_t>(spec.mode);
  ctx->saved_data["real_term"] = static_cast<int64_t>(spec.real.type);
  ctx->saved_data["fake_term"] = static_cast<int64_t>(spec.fake.type);
  ctx->saved_data["rt"] = spec.real.t;
  ctx->saved_data["rc"] = spec.real.c;
  ctx->saved_data["ft"] = spec.fake.t;
  ctx->saved_data["fc"] = spec.fake.c;
  ctx->saved_data["drift"] = spec.drift;
  ctx->saved_data["reduction"] = reduction;
}

LossSpec load_spec(AutogradContext* ctx) {
  const auto& d = ctx->saved_data;
  return LossSpec{static_cast<int>(d.at("mode").toInt()),
                  {static_cast<int>(d.at("real_term").toInt()), d.at("rt").toDouble(), d.at("rc").toDouble()},
                  {static_cast<int>(d.at("fake_term").toInt()), d.at("ft").toDouble(), d.at("fc").toDouble()},
                  d.at("drift").toDouble()};
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
    save_spec(ctx, spec, reduction);
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
      const LossSpec spec = load_spec(ctx);
      const int64_t reduction = ctx->saved_data.at("reduction").toInt();
      auto grads = vjp([&](const variable_list& x) { return loss_formula(x[0], x[1], spec, reduction); },
                       {real, fake}, needs, go);
      d_real = grads[0];
      d_fake = grads[1];
    } else if (can_return_saved(go) && (!needs[0] || grad_real.scalar_type() == real.scalar_type()) &&
               grad_fake.scalar_type() == fake.scalar_type()) {
      d_real = grad_real;
      d_fake = grad_fake;
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
  promote_pair(real, f);
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

// ---------------------------------------------------------------------------
// loss_list: the sum over discriminators of one loss (multi-discriminator
// training), one device-op call per direction for the whole list. Inputs are
// flattened as (real..., fake...); saved: the logits (for the second
// derivative) and their per-element gradients.

namespace {

using LossListForwardFn = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>(
    at::TensorList, at::TensorList, int64_t, int64_t, double, double, int64_t, double, double, double, int64_t, bool);
using LossListBackwardFn = std::vector<at::Tensor>(const at::Tensor&, at::TensorList, at::TensorList);

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> loss_list_forward(
    at::TensorList real, at::TensorList fake, const LossSpec& s, int64_t reduction, bool compute_grad) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gan_kernels::loss_list_forward", "")
                       .typed<LossListForwardFn>();
  return op.call(real, fake, s.mode, s.real.type, s.real.t, s.real.c, s.fake.type, s.fake.t, s.fake.c, s.drift,
                 reduction, compute_grad);
}


}  // namespace

class LossListFunction : public torch::autograd::Function<LossListFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, at::TensorList real, at::TensorList fake, const LossSpec& spec,
                               int64_t reduction, bool compute_grad) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [total, terms, grad_real, grad_fake] = loss_list_forward(real, fake, spec, reduction, compute_grad);
    variable_list saved(real.begin(), real.end());
    saved.insert(saved.end(), fake.begin(), fake.end());
    saved.insert(saved.end(), grad_real.begin(), grad_real.end());
    saved.insert(saved.end(), grad_fake.begin(), grad_fake.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["n_real"] = static_cast<int64_t>(real.size());
    ctx->saved_data["n_fake"] = static_cast<int64_t>(fake.size());
    ctx->saved_data["has_grads"] = !grad_fake.empty();
    save_spec(ctx, spec, reduction);
    ctx->mark_non_differentiable({terms});
    // terms never gets a gradient: no zeros for it in backward.
    ctx->set_materialize_grads(false);
    return {total, terms};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const size_t nr = static_cast<size_t>(ctx->saved_data["n_real"].toInt());
    const size_t nf = static_cast<size_t>(ctx->saved_data["n_fake"].toInt());
    const size_t n_in = nr + nf;
    std::vector<bool> needs(n_in);
    for (size_t i = 0; i < n_in; ++i) needs[i] = ctx->needs_input_grad(i);
    const variable_list logits(saved.begin(), saved.begin() + n_in);
    const at::Tensor& go = grad_outputs[0];
    variable_list grads(n_in);
    if (!go.defined()) {
      return variable_list(n_in + 3);
    }
    if (at::GradMode::is_enabled() || !ctx->saved_data["has_grads"].toBool()) {
      const LossSpec spec = load_spec(ctx);
      const int64_t reduction = ctx->saved_data["reduction"].toInt();
      auto formula = [&](const variable_list& x) {
        at::Tensor total;
        for (size_t i = 0; i < nf; ++i) {
          const at::Tensor l = loss_formula(nr ? x[i] : at::Tensor(), x[nr + i], spec, reduction);
          total = total.defined() ? total + l : l;
        }
        return total;
      };
      grads = vjp(formula, logits, needs, go);
    } else {
      // One backward call for every tensor that needs a gradient (none when
      // the saved ones can be returned and have the logits' dtypes).
      const bool reuse = can_return_saved(go);
      std::vector<at::Tensor> sv, like;
      std::vector<size_t> where;
      for (size_t i = 0; i < n_in; ++i) {
        if (!needs[i]) continue;
        if (reuse && saved[n_in + i].scalar_type() == logits[i].scalar_type()) {
          grads[i] = saved[n_in + i];
          continue;
        }
        sv.push_back(saved[n_in + i]);
        like.push_back(logits[i]);
        where.push_back(i);
      }
      if (!sv.empty()) {
        static auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("gan_kernels::loss_list_backward", "")
                             .typed<LossListBackwardFn>();
        at::AutoDispatchBelowADInplaceOrView below_autograd;
        const std::vector<at::Tensor> out = op.call(go, sv, like);
        for (size_t j = 0; j < where.size(); ++j) grads[where[j]] = out[j];
      }
    }
    variable_list res(n_in + 3);  // + spec, reduction, compute_grad
    for (size_t i = 0; i < n_in; ++i) {
      if (needs[i]) res[i] = grads[i];
    }
    return res;
  }
};

namespace {

// The checks of checked_logits for every pair of a list, with the index in
// the message; brings each pair to one dtype.
std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> checked_lists(at::TensorList real, at::TensorList fake,
                                                                          const LossSpec& spec, int64_t reduction) {
  check_reduction(reduction);
  TORCH_CHECK_VALUE(reduction != kReduceNone,
                    "reduction='none' is not defined for lists of logits (their shapes differ); use 'mean' or 'sum'");
  TORCH_CHECK_VALUE(!fake.empty(), "fake_logits is an empty list: give one tensor per discriminator");
  const bool uses_real = spec_uses_real(spec);
  std::vector<at::Tensor> r_out, f_out;
  if (uses_real) {
    TORCH_CHECK_VALUE(real.size() == fake.size(), "real_logits has ", real.size(), " tensors but fake_logits has ",
                      fake.size(), ": give one real and one fake tensor per discriminator");
  }
  for (size_t i = 0; i < fake.size(); ++i) {
    const std::string fi = "fake_logits[" + std::to_string(i) + "]";
    check_batch(fake[i], fi.c_str());
    if (i > 0) check_same_device(fake[i], fi.c_str(), fake[0], "fake_logits[0]");
    if (!uses_real) {
      f_out.push_back(fake[i]);
      continue;
    }
    const std::string ri = "real_logits[" + std::to_string(i) + "]";
    at::Tensor r = real[i], f = fake[i];
    check_batch(r, ri.c_str());
    check_same_device(r, ri.c_str(), f, fi.c_str());
    TORCH_CHECK_VALUE(spec.mode != kModePaired || r.sym_sizes() == f.sym_sizes(), "discriminator ", i,
                      ": the rpgan kind pairs real and fake logits element by element: shapes must match, got ",
                      py_shape(r.sym_sizes()), " and ", py_shape(f.sym_sizes()));
    promote_pair(r, f);
    r_out.push_back(r);
    f_out.push_back(f);
  }
  return {r_out, f_out};
}

std::tuple<at::Tensor, at::Tensor> loss_list_autograd(at::TensorList real, at::TensorList fake, int64_t mode,
                                                      int64_t real_term, double real_target, double real_coef,
                                                      int64_t fake_term, double fake_target, double fake_coef,
                                                      double drift, int64_t reduction) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  auto [r, f] = checked_lists(real, fake, spec, reduction);
  bool any_grad = false;
  for (const auto& x : r) any_grad = any_grad || x.requires_grad();
  for (const auto& x : f) any_grad = any_grad || x.requires_grad();
  const bool compute_grad = at::GradMode::is_enabled() && any_grad;
  const variable_list out = LossListFunction::apply(at::TensorList(r), at::TensorList(f), spec, reduction, compute_grad);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor> loss_list_plain(at::TensorList real, at::TensorList fake, int64_t mode,
                                                   int64_t real_term, double real_target, double real_coef,
                                                   int64_t fake_term, double fake_target, double fake_coef,
                                                   double drift, int64_t reduction) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  auto [r, f] = checked_lists(real, fake, spec, reduction);
  auto res = loss_list_forward(r, f, spec, reduction, false);
  return {std::get<0>(res), std::get<1>(res)};
}

}  // namespace
}  // namespace autograd
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, Autograd, m) {
  m.impl("loss", &gan_kernels::autograd::loss_autograd);
  m.impl("loss_list", &gan_kernels::autograd::loss_list_autograd);
}

TORCH_LIBRARY_IMPL(gan_kernels, CompositeExplicitAutograd, m) {
  m.impl("loss", &gan_kernels::autograd::loss_plain);
  m.impl("loss_list", &gan_kernels::autograd::loss_list_plain);
}
