// CPU kernels of the interpolation x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i
// (docs/kernel_contract.md, "Interpolation"): one pass, real and fake read
// once, x_hat written once; the backward reads g once and writes both
// gradients in the same pass.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cpu_kernels.h"
#include "gan_kernels/checks.h"
#include "gan_kernels/layout.h"

namespace gan_kernels {
namespace cpu {
namespace {

// alpha_i in the accumulation dtype, whatever alpha's strides (the functional
// API passes a stride-0 expansion for a scalar alpha).
template <typename A>
std::vector<A> alpha_values(const at::Tensor& alpha, int64_t B) {
  TORCH_CHECK(alpha.numel() == B, "gan_kernels: alpha must hold one value per sample (", B,
              "), got ", alpha.numel());
  return small_values<A>(alpha);
}

at::Tensor interpolate_forward_cpu(const at::Tensor& real, const at::Tensor& fake,
                                   const at::Tensor& alpha) {
  check_on(real, c10::DeviceType::CPU, "interpolate_forward", "real");
  check_on(fake, c10::DeviceType::CPU, "interpolate_forward", "fake");
  check_on(alpha, c10::DeviceType::CPU, "interpolate_forward", "alpha");
  TORCH_CHECK(real.sizes() == fake.sizes(), "gan_kernels: real and fake must have the same shape, got ",
              real.sizes(), " and ", fake.sizes());
  TORCH_CHECK(real.scalar_type() == fake.scalar_type(),
              "gan_kernels: real and fake must have the same dtype");
  TORCH_CHECK(real.dim() >= 1, "gan_kernels: real must have a batch dimension (B, ...)");
  at::Tensor out = empty_batch_major(real);
  if (out.numel() == 0) return out;
  const at::Tensor r = match_layout(real, out);
  const at::Tensor f = match_layout(fake, out);
  const int64_t B = real.size(0), D = per_sample(real);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, real.scalar_type(), "interpolate_forward_cpu", [&] {
    using A = acc_t<scalar_t>;
    const std::vector<A> a = alpha_values<A>(alpha, B);
    const scalar_t* rp = r.const_data_ptr<scalar_t>();
    const scalar_t* fp = f.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    for_each_sample_span(B, D, [&](int64_t i, int64_t lo, int64_t hi) {
      lerp(rp + lo, fp + lo, op + lo, a[i], A(1) - a[i], hi - lo);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> interpolate_backward_cpu(const at::Tensor& grad_out,
                                                            const at::Tensor& alpha, bool need_real,
                                                            bool need_fake) {
  check_on(grad_out, c10::DeviceType::CPU, "interpolate_backward", "grad_out");
  check_on(alpha, c10::DeviceType::CPU, "interpolate_backward", "alpha");
  TORCH_CHECK(grad_out.dim() >= 1, "gan_kernels: grad_out must have a batch dimension (B, ...)");
  auto make = [&](bool need) {
    return need ? empty_batch_major(grad_out) : at::empty({0}, grad_out.options());
  };
  at::Tensor d_real = make(need_real), d_fake = make(need_fake);
  if ((!need_real && !need_fake) || grad_out.numel() == 0) return {d_real, d_fake};
  const at::Tensor g = match_layout(grad_out, need_real ? d_real : d_fake);
  const int64_t B = grad_out.size(0), D = per_sample(grad_out);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "interpolate_backward_cpu", [&] {
    using A = acc_t<scalar_t>;
    const std::vector<A> a = alpha_values<A>(alpha, B);
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* rp = need_real ? d_real.data_ptr<scalar_t>() : nullptr;
    scalar_t* fp = need_fake ? d_fake.data_ptr<scalar_t>() : nullptr;
    for_each_sample_span(B, D, [&](int64_t i, int64_t lo, int64_t hi) {
      const A ai = a[i], bi = A(1) - a[i];
      if (rp && fp) {
        scale2(gp + lo, rp + lo, fp + lo, ai, bi, hi - lo);
      } else if (rp) {
        scale(gp + lo, rp + lo, ai, hi - lo);
      } else {
        scale(gp + lo, fp + lo, bi, hi - lo);
      }
    });
  });
  return {d_real, d_fake};
}

}  // namespace
}  // namespace cpu
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CPU, m) {
  m.impl("interpolate_forward", &gan_kernels::cpu::interpolate_forward_cpu);
  m.impl("interpolate_backward", &gan_kernels::cpu::interpolate_backward_cpu);
}
