// gan_kernels::interpolate -- x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i:
// argument checks and the autograd Function.
//
// The backward is linear in the upstream gradient and needs alpha only, so
// alpha is all that is saved; real and fake are kept (references, no copies)
// only when alpha itself requires grad (d alpha_i = sum (real_i - fake_i) g_i).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "autograd.h"
#include "gan_kernels/checks.h"

namespace gan_kernels {
namespace autograd {
namespace {

using ForwardFn = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);
using BackwardFn = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, bool, bool);

at::Tensor interpolate_forward(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gan_kernels::interpolate_forward", "")
                       .typed<ForwardFn>();
  return op.call(real, fake, alpha);
}

// alpha as (B, 1, ..., 1) in the accumulation dtype of x.
at::Tensor alpha_column(const at::Tensor& alpha, const at::Tensor& x) {
  std::vector<c10::SymInt> shape(x.dim(), 1);
  shape[0] = x.sym_size(0);
  return alpha.to(acc_of(x)).reshape_symint(shape);
}

}  // namespace

// Outside the anonymous namespace: the graph node is named after this class.
class InterpolateFunction : public torch::autograd::Function<InterpolateFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& alpha) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor out = interpolate_forward(real, fake, alpha);
    if (alpha.requires_grad()) {
      ctx->save_for_backward({alpha, real, fake});
    } else {
      ctx->save_for_backward({alpha});
    }
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& alpha = saved[0];
    const at::Tensor& go = grad_outputs[0];
    const bool need_r = ctx->needs_input_grad(0), need_f = ctx->needs_input_grad(1), need_a = ctx->needs_input_grad(2);
    at::Tensor d_real, d_fake, d_alpha;
    if (at::GradMode::is_enabled()) {
      // Differentiable in grad_out and alpha.
      const at::Tensor a = alpha_column(alpha, go);
      const at::Tensor g = up(go);
      if (need_r) d_real = (a * g).to(go.scalar_type());
      if (need_f) d_fake = ((1 - a) * g).to(go.scalar_type());
    } else if (need_r || need_f) {
      static auto op = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("gan_kernels::interpolate_backward", "")
                           .typed<BackwardFn>();
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      std::tie(d_real, d_fake) = op.call(go, alpha, need_r, need_f);
    }
    if (need_a) {
      const at::Tensor diff = (up(saved[1]) - up(saved[2])) * up(go);
      d_alpha = (diff.dim() > 1 ? diff.flatten(1).sum(1) : diff).to(alpha.scalar_type());
    }
    return {need_r ? d_real : at::Tensor(), need_f ? d_fake : at::Tensor(), d_alpha};
  }
};

namespace {

at::Tensor checked_alpha(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  check_batch(real, "real");
  check_batch(fake, "fake");
  check_same_device(real, "real", fake, "fake");
  TORCH_CHECK_VALUE(real.sym_sizes() == fake.sym_sizes(), "real and fake must have the same shape, got ",
                    py_shape(real.sym_sizes()), " and ", py_shape(fake.sym_sizes()));
  TORCH_CHECK_TYPE(alpha.is_floating_point(), "alpha must be a floating-point tensor, got ",
                   py_dtype(alpha.scalar_type()));
  TORCH_CHECK_VALUE(alpha.device() == real.device(), "alpha is on ", alpha.device().str(), " but real is on ",
                    real.device().str());
  const c10::SymInt batch = real.sym_size(0);
  TORCH_CHECK_VALUE(alpha.sym_numel() == batch && (alpha.dim() == 0 || alpha.sym_size(0) == batch),
                    "alpha must hold one value per sample (shape (", batch, ",) or (", batch,
                    ", 1, ...)), got shape ", py_shape(alpha.sym_sizes()));
  return alpha.dim() == 1 ? alpha : alpha.reshape_symint({batch});
}

at::Tensor interpolate_autograd(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  at::Tensor r = real, f = fake;
  const at::Tensor a = checked_alpha(real, fake, alpha);
  promote_pair(r, f);
  return InterpolateFunction::apply(r, f, a);
}

at::Tensor interpolate_plain(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  at::Tensor r = real, f = fake;
  const at::Tensor a = checked_alpha(real, fake, alpha);
  promote_pair(r, f);
  return interpolate_forward(r, f, a);
}

}  // namespace
}  // namespace autograd
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, Autograd, m) {
  m.impl("interpolate", &gan_kernels::autograd::interpolate_autograd);
}

TORCH_LIBRARY_IMPL(gan_kernels, CompositeExplicitAutograd, m) {
  m.impl("interpolate", &gan_kernels::autograd::interpolate_plain);
}
