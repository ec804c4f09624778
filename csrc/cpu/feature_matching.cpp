// CPU kernels of feature matching over a list of (real, fake) feature-map
// pairs: term_k = w_k * reduce |r_k - f_k| (mean, or sum for "sum").
//
// The whole list is one parallel loop over (pair, fixed chunk) tasks, so a
// list of many small maps (HiFi-GAN's 54) and a list of a few large ones keep
// every core busy alike; each chunk's partial sum lands in its own slot and a
// pair's slots are added in order, so the bits do not depend on the thread
// count. The backward recomputes sign(r - f) from the inputs: nothing is
// saved, and its traffic is the 2N reads and up to 2N writes it needs anyway.
#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cpu_kernels.h"
#include "gan_kernels/checks.h"
#include "gan_kernels/layout.h"

namespace gan_kernels {
namespace cpu {
namespace {

struct Task {
  int64_t pair, lo, hi;
};

// (pair, chunk) tasks in list order; a pair's tasks are consecutive.
std::vector<Task> tasks_of(const std::vector<FmPair>& pairs, int64_t chunk) {
  std::vector<Task> tasks;
  for (size_t k = 0; k < pairs.size(); ++k) {
    for (int64_t lo = 0; lo < pairs[k].n; lo += chunk) {
      tasks.push_back({static_cast<int64_t>(k), lo, std::min(pairs[k].n, lo + chunk)});
    }
  }
  return tasks;
}

at::Tensor feature_matching_forward_cpu(at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
                                        int64_t reduction) {
  check_reduction(reduction);
  check_feature_lists(real, fake, weights, c10::DeviceType::CPU, "feature_matching_forward");
  const int64_t K = static_cast<int64_t>(fake.size());
  std::vector<FmPair> pairs;
  bool any_double = false;
  for (int64_t k = 0; k < K; ++k) {
    pairs.push_back(fm_pair(real[k], fake[k]));
    any_double = any_double || fake[k].scalar_type() == at::kDouble;
  }
  const std::vector<Task> tasks = tasks_of(pairs, kReduceChunk);
  std::vector<double> parts(tasks.size());
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const Task& task = tasks[t];
      const FmPair& p = pairs[task.pair];
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.r.scalar_type(), "feature_matching_cpu", [&] {
        parts[t] = abs_diff_sum(p.r.const_data_ptr<scalar_t>() + task.lo, p.f.const_data_ptr<scalar_t>() + task.lo,
                                task.hi - task.lo);
      });
    }
  };
  if (tasks.size() > 1) {
    at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, run);
  } else {
    run(0, static_cast<int64_t>(tasks.size()));
  }
  // term_k = w_k * (sum_k / N_k) in the pair's accumulation dtype, as the
  // reference's weight * mean; the total adds the terms in list order.
  const at::ScalarType out_t = any_double ? at::kDouble : at::kFloat;
  const bool none = reduction == kReduceNone;
  at::Tensor out = none ? at::empty({K}, fake[0].options().dtype(out_t)) : at::empty({}, fake[0].options().dtype(out_t));
  AT_DISPATCH_FLOATING_TYPES(out_t, "feature_matching_total_cpu", [&] {
    scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t total = 0;
    size_t t = 0;
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (; t < tasks.size() && tasks[t].pair == k; ++t) s += parts[t];
      const bool dbl = fake[k].scalar_type() == at::kDouble;
      const double n = static_cast<double>(pairs[k].n);
      scalar_t term;
      if (dbl) {
        term = static_cast<scalar_t>(weights[k] * (reduction == kReduceSum ? s : s / n));
      } else {
        const float red = static_cast<float>(reduction == kReduceSum ? s : s / n);
        term = static_cast<scalar_t>(static_cast<float>(weights[k]) * red);
      }
      if (none) {
        op[k] = term;
      } else {
        total = k == 0 ? term : total + term;
      }
    }
    if (!none) *op = total;
  });
  return out;
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_matching_backward_cpu(
    const at::Tensor& grad, at::TensorList real, at::TensorList fake, c10::ArrayRef<double> weights,
    int64_t reduction, bool need_real, bool need_fake) {
  check_reduction(reduction);
  check_feature_lists(real, fake, weights, c10::DeviceType::CPU, "feature_matching_backward");
  check_on(grad, c10::DeviceType::CPU, "feature_matching_backward", "grad");
  const int64_t K = static_cast<int64_t>(fake.size());
  TORCH_CHECK_VALUE(grad.numel() == 1 || grad.numel() == K, "gan_kernels::feature_matching_backward: grad has ",
                    grad.numel(), " elements, expected 1 or ", K);
  std::vector<at::Tensor> d_real, d_fake;
  if (!need_real && !need_fake) return {d_real, d_fake};
  const at::Tensor go = grad.to(at::kDouble).reshape({-1}).contiguous();
  const double* gp = go.const_data_ptr<double>();
  std::vector<FmPair> pairs;
  // Written in each pair's reading order: the outputs themselves when reading
  // in place (they then have the inputs' strides), else contiguous buffers.
  std::vector<at::Tensor> out_r, out_f;
  for (int64_t k = 0; k < K; ++k) {
    pairs.push_back(fm_pair(real[k], fake[k]));
    if (need_real) out_r.push_back(grad_buffer(pairs.back(), real[k]));
    if (need_fake) out_f.push_back(grad_buffer(pairs.back(), fake[k]));
  }
  const std::vector<Task> tasks = tasks_of(pairs, kStreamGrain);
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const Task& task = tasks[t];
      const int64_t k = task.pair;
      const FmPair& p = pairs[k];
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.r.scalar_type(), "feature_matching_bwd_cpu", [&] {
        using A = acc_t<scalar_t>;
        // The reference's chain: (go * w) / N, times sign(r - f); sign(0) = 0, NaN stays NaN.
        A s = static_cast<A>(gp[grad.numel() == 1 ? 0 : k]) * static_cast<A>(weights[k]);
        if (reduction != kReduceSum) s = s / static_cast<A>(p.n);
        const scalar_t* rp = p.r.const_data_ptr<scalar_t>();
        const scalar_t* fp = p.f.const_data_ptr<scalar_t>();
        scalar_t* dr = need_real ? out_r[k].data_ptr<scalar_t>() : nullptr;
        scalar_t* df = need_fake ? out_f[k].data_ptr<scalar_t>() : nullptr;
        sign_scale(rp + task.lo, fp + task.lo, dr ? dr + task.lo : nullptr, df ? df + task.lo : nullptr, s,
                   task.hi - task.lo);
      });
    }
  });
  // Back to each input's own layout (a batch-major input keeps its strides).
  for (int64_t k = 0; k < K; ++k) {
    if (need_real) d_real.push_back(grad_in_layout(pairs[k], out_r[k], real[k]));
    if (need_fake) d_fake.push_back(grad_in_layout(pairs[k], out_f[k], fake[k]));
  }
  return {d_real, d_fake};
}

}  // namespace
}  // namespace cpu
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CPU, m) {
  m.impl("feature_matching_forward", &gan_kernels::cpu::feature_matching_forward_cpu);
  m.impl("feature_matching_backward", &gan_kernels::cpu::feature_matching_backward_cpu);
}
