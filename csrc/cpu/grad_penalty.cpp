// CPU kernels of the gradient penalty (docs/kernel_contract.md, "Gradient penalty").
//
// Forward: one read of g. The batch is cut into (sample, chunk) tasks of
// kReduceChunk elements so a small batch of large samples still uses every
// core; each task writes one partial sum of squares, and a sample's partials
// are added in chunk order (bitwise the same result for any thread count).
// Backward: one read of g and one write, out_i = k_i * g_i with the per-sample
// coefficient k_i computed once.
#include <optional>

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cpu_kernels.h"
#include "gan_kernels/checks.h"
#include "gan_kernels/layout.h"
#include "gan_kernels/math.h"

namespace gan_kernels {
namespace cpu {
namespace {

// g read as one flat batch-major array (a copy only for other layouts).
at::Tensor flat_input(const at::Tensor& grad) {
  return is_batch_major(grad) ? grad : grad.contiguous();
}

// s = inv_scale * (value of inv_scale_tensor when given).
template <typename A>
A unscale_factor(double inv_scale, const std::optional<at::Tensor>& t) {
  A s = static_cast<A>(inv_scale);
  if (t.has_value() && t->defined()) {
    TORCH_CHECK(t->numel() == 1, "gan_kernels: inv_scale_tensor must have one element, got ",
                t->numel());
    check_on(*t, c10::DeviceType::CPU, "grad_penalty", "inv_scale_tensor");
    s = s * static_cast<A>(t->to(at::kFloat).contiguous().data_ptr<float>()[0]);
  }
  return s;
}

void check_args(const at::Tensor& grad, int64_t kind, int64_t reduction, const char* op) {
  check_on(grad, c10::DeviceType::CPU, op, "grad");
  TORCH_CHECK(grad.dim() >= 1, "gan_kernels: grad must have a batch dimension (B, ...)");
  check_penalty_kind(kind);
  check_reduction(reduction);
}

std::tuple<at::Tensor, at::Tensor> grad_penalty_forward_cpu(
    const at::Tensor& grad, int64_t kind, double center, double weight, int64_t reduction,
    double inv_scale, const std::optional<at::Tensor>& inv_scale_tensor) {
  check_args(grad, kind, reduction, "grad_penalty_forward");
  const at::ScalarType acc = acc_type_of(grad.scalar_type());
  const int64_t B = grad.size(0);
  const int64_t D = per_sample(grad);
  const at::Tensor g = flat_input(grad);
  at::Tensor norms = at::empty({B}, grad.options().dtype(acc));
  at::Tensor loss = reduction == kReduceNone ? at::empty({B}, grad.options().dtype(acc))
                                             : at::empty({}, grad.options().dtype(acc));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "grad_penalty_forward_cpu", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = g.const_data_ptr<scalar_t>();
    A* nrm = norms.data_ptr<A>();
    A* out = loss.data_ptr<A>();

    const int64_t chunk = std::max<int64_t>(1, std::min(D, kReduceChunk));
    const int64_t nc = D == 0 ? 0 : (D + chunk - 1) / chunk;
    std::vector<A> parts(static_cast<size_t>(B * nc));
    // Enough tasks per thread to amortise the fork when samples are tiny.
    const int64_t grain = std::max<int64_t>(1, kStreamGrain / std::max<int64_t>(1, chunk));
    at::parallel_for(0, B * nc, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t i = t / nc, c = t % nc;
        const int64_t lo = c * chunk, hi = std::min(D, lo + chunk);
        parts[t] = sumsq(x + i * D + lo, hi - lo);
      }
    });

    const A s = unscale_factor<A>(inv_scale, inv_scale_tensor);
    const A ctr = static_cast<A>(center), w = static_cast<A>(weight);
    A total = A(0);
    for (int64_t i = 0; i < B; ++i) {
      A ss = A(0);
      for (int64_t c = 0; c < nc; ++c) ss += parts[i * nc + c];
      const A n = std::sqrt(ss);
      nrm[i] = n;
      const A p = penalty_value<A>(kind, n, s, ctr);
      if (reduction == kReduceNone) {
        out[i] = w * p;
      } else {
        total += p;
      }
    }
    if (reduction == kReduceMean) {
      out[0] = w * (total / static_cast<A>(B));
    } else if (reduction == kReduceSum) {
      out[0] = w * total;
    }
  });
  return {loss, norms};
}

at::Tensor grad_penalty_backward_cpu(const at::Tensor& grad_out, const at::Tensor& grad,
                                     const at::Tensor& norms, int64_t kind, double center,
                                     double weight, int64_t reduction, double inv_scale,
                                     const std::optional<at::Tensor>& inv_scale_tensor) {
  check_args(grad, kind, reduction, "grad_penalty_backward");
  check_on(grad_out, c10::DeviceType::CPU, "grad_penalty_backward", "grad_out");
  check_on(norms, c10::DeviceType::CPU, "grad_penalty_backward", "norms");
  const int64_t B = grad.size(0);
  const int64_t D = per_sample(grad);
  TORCH_CHECK(norms.numel() == B, "gan_kernels: norms must have one value per sample, got ",
              norms.numel(), " for a batch of ", B);
  if (reduction == kReduceNone) {
    TORCH_CHECK(grad_out.numel() == B, "gan_kernels: grad_out of a reduction='none' penalty must have ",
                B, " elements, got ", grad_out.numel());
  } else {
    TORCH_CHECK(grad_out.numel() == 1, "gan_kernels: grad_out of a reduced penalty must be a scalar");
  }
  const at::Tensor g = flat_input(grad);
  at::Tensor out = empty_batch_major(grad);
  if (out.numel() == 0) return out;
  // grad_out may be an expanded (stride-0) view; it has at most B elements (small_values copies it).

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "grad_penalty_backward_cpu", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* x = g.const_data_ptr<scalar_t>();
    scalar_t* y = out.data_ptr<scalar_t>();
    const std::vector<A> go = small_values<A>(grad_out);
    const std::vector<A> nr = small_values<A>(norms);
    const A* gop = go.data();
    const A* np = nr.data();
    const A s = unscale_factor<A>(inv_scale, inv_scale_tensor);
    const A ctr = static_cast<A>(center);
    const A wW = static_cast<A>(weight) * (reduction == kReduceMean ? A(1) / static_cast<A>(B) : A(1));
    std::vector<A> k(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) {
      const A go_i = reduction == kReduceNone ? gop[i] : gop[0];
      k[i] = go_i * wW * penalty_coef<A>(kind, np[i], s, ctr);
    }
    for_each_sample_span(B, D, [&](int64_t i, int64_t lo, int64_t hi) {
      scale(x + lo, y + lo, k[i], hi - lo);
    });
  });
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CPU, m) {
  m.impl("grad_penalty_forward", &gan_kernels::cpu::grad_penalty_forward_cpu);
  m.impl("grad_penalty_backward", &gan_kernels::cpu::grad_penalty_backward_cpu);
}
