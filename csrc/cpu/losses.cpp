// CPU kernels of the discriminator / generator losses (docs/kernel_contract.md,
// "Losses"). The forward computes the loss and, in the same pass over the
// logits, each element's gradient for a unit upstream gradient, so the
// backward is a single scale (loss_backward). The relativistic mode needs the
// two means first, then one pass per tensor, then a constant correction.
//
// Every kind is described by math.h's LossSpec; this file has no per-kind code.
#include <optional>
#include <type_traits>

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "cpu_kernels.h"
#include "gan_kernels/checks.h"
#include "gan_kernels/layout.h"
#include "gan_kernels/math.h"

namespace gan_kernels {
namespace cpu {
namespace {

// Logits are small: read them contiguously.
struct Logits {
  at::Tensor t;  // contiguous, or undefined when absent
  int64_t n = 0;
};

Logits logits_of(const std::optional<at::Tensor>& x) {
  Logits l;
  if (x.has_value() && x->defined()) {
    l.t = x->contiguous();
    l.n = l.t.numel();
  }
  return l;
}

at::Tensor empty_grad(const at::Tensor& like, at::ScalarType acc) {
  return at::empty({0}, like.options().dtype(acc));
}

// loss: the per-element tensor for "none", else a 0-dim tensor when the
// caller asked for one (the single op) -- a list keeps the reduced value only,
// in `value`. The gradients are undefined when not computed.
struct LossResult {
  at::Tensor loss, grad_real, grad_fake;
  double value = 0;
};

// Running sums of the loss terms. Each term is computed in acc_t<T> (float32
// for float32 / half inputs); only the running sums are widened to double, so
// a reduced loss of thousands of terms whose real and fake parts cancel (the
// Wasserstein loss) keeps float32's accuracy, whatever the number of terms.
using LossSum = double;

// The loss of `spec` over real logits r (N_r may be 0: no real term) and fake
// logits f, with the per-element gradients when compute_grad (and the
// Jacobian is diagonal).
template <typename T>
LossResult loss_impl(const LossSpec& spec, const Logits& r, const Logits& f, const at::Tensor& fake_in,
                     int64_t reduction, bool compute_grad, bool loss_tensor = true) {
  using A = acc_t<T>;
  using S = LossSum;
  const at::ScalarType acc = acc_type_of(fake_in.scalar_type());
  const bool none = reduction == kReduceNone;
  const bool relativistic = spec.mode == kModeRelativistic;
  const bool paired = spec.mode == kModePaired;
  const bool keep = compute_grad && !(relativistic && none);
  const int64_t nr = r.n, nf = f.n;
  const T* rp = nr ? r.t.const_data_ptr<T>() : nullptr;
  const T* fp = f.t.const_data_ptr<T>();
  const A drift = static_cast<A>(spec.drift);
  // drift r^2 is added only when drift != 0, as the reference does (0 * inf
  // would otherwise turn an infinite logit's loss into NaN).
  const bool has_drift = spec.drift != 0.0;
  const Term tr = spec.real, tf = spec.fake;
  // float32 arithmetic (float32 / half / bfloat16 logits) runs the vectorised
  // loops of loss_vec.cpp; float64 keeps the scalar std:: functions.
  constexpr bool kVec = !std::is_same_v<A, double>;
  auto pass_of = [&](const Term& term) {
    TermPass p;
    p.type = term.type;
    p.t = static_cast<float>(term.t);
    p.c = static_cast<float>(term.c);
    p.drift = static_cast<float>(spec.drift);
    return p;
  };

  // Only what the caller needs is allocated: for a list of small logits
  // tensors the allocations are most of the op's time.
  LossResult res;
  if (none) {
    res.loss = at::empty(fake_in.sizes(), fake_in.options().dtype(acc));
  } else if (loss_tensor) {
    res.loss = at::empty({}, fake_in.options().dtype(acc));
  }
  if (keep && r.t.defined()) res.grad_real = at::empty(r.t.sizes(), r.t.options().dtype(acc));
  if (keep) res.grad_fake = at::empty(f.t.sizes(), fake_in.options().dtype(acc));
  A* lp = none ? res.loss.data_ptr<A>() : nullptr;
  auto set_reduced = [&](A v) {
    res.value = static_cast<double>(v);
    if (res.loss.defined()) *res.loss.data_ptr<A>() = v;
  };
  A* gr = keep && nr ? res.grad_real.data_ptr<A>() : nullptr;
  A* gf = keep ? res.grad_fake.data_ptr<A>() : nullptr;
  auto W = [&](int64_t n) { return reduction == kReduceMean ? A(1) / static_cast<A>(n) : A(1); };
  auto reduce = [&](S s, int64_t n) { return static_cast<A>(reduction == kReduceMean ? s / static_cast<S>(n) : s); };

  if (paired) {
    TORCH_CHECK(nr == nf, "gan_kernels: paired (rpgan) logits must have the same number of elements, got ",
                nr, " and ", nf);
    const A w = W(nf);
    // Loss term and gradient of x = r - f, in one pass.
    auto s = chunked_sum<1, S>(nf, kLossChunk, [&](int64_t lo, int64_t hi) {
      if constexpr (kVec) {
        TermPass p = pass_of(tr);
        p.real = true;
        p.w = w;
        p.loss = none ? lp : nullptr;
        p.ga = gr;
        p.gb = gf;
        return std::array<S, 1>{term_pass(rp, fp, lo, hi, p)[0]};
      }
      S acc_v = S(0);
      for (int64_t i = lo; i < hi; ++i) {
        const A rv = static_cast<A>(rp[i]), x = rv - static_cast<A>(fp[i]);
        A v = term_value<A>(tr, x);
        if (has_drift) v += drift * rv * rv;
        if (none) lp[i] = v; else acc_v += v;
        if (gf) {
          const A d = term_grad<A>(tr, x);
          gr[i] = has_drift ? w * (d + A(2) * drift * rv) : w * d;
          gf[i] = -w * d;
        }
      }
      return std::array<S, 1>{acc_v};
    });
    if (!none) set_reduced(reduce(s[0], nf));
    return res;
  }

  A m_r = A(0), m_f = A(0);
  if (relativistic) {
    TORCH_CHECK(nr > 0, "gan_kernels: the relativistic loss needs real logits");
    auto mean_of = [&](const T* p, int64_t n) {
      auto s = chunked_sum<1, S>(n, kLossChunk, [&](int64_t lo, int64_t hi) {
        if constexpr (kVec) return std::array<S, 1>{sum_f64(p, lo, hi)};
        S a = S(0);
        for (int64_t i = lo; i < hi; ++i) a += static_cast<A>(p[i]);
        return std::array<S, 1>{a};
      });
      return static_cast<A>(s[0] / static_cast<S>(n));
    };
    m_r = mean_of(rp, nr);
    m_f = mean_of(fp, nf);
  }
  if (none && nr) {
    TORCH_CHECK(nr == nf, "gan_kernels: reduction='none' adds real and fake terms elementwise: they must have "
                "the same number of elements, got ", nr, " and ", nf);
  }

  // Real term (shifted by mean f when relativistic): returns (sum of values,
  // sum of a_i = W_r phi'), the latter for the relativistic cross term.
  const A wr = nr ? W(nr) : A(0), wf = W(nf);
  std::array<S, 2> sr{};
  if (nr) {
    sr = chunked_sum<2, S>(nr, kLossChunk, [&](int64_t lo, int64_t hi) {
      if constexpr (kVec) {
        TermPass p = pass_of(tr);
        p.real = true;
        p.shift = m_f;
        p.w = wr;
        p.loss = none ? lp : nullptr;
        p.ga = gr;
        return term_pass(rp, static_cast<const T*>(nullptr), lo, hi, p);
      }
      S sv = S(0), sa = S(0);
      for (int64_t i = lo; i < hi; ++i) {
        const A rv = static_cast<A>(rp[i]), x = rv - m_f;
        A v = term_value<A>(tr, x);
        if (has_drift) v += drift * rv * rv;
        if (none) lp[i] = v; else sv += v;
        if (gr) {
          const A a = wr * term_grad<A>(tr, x);
          gr[i] = has_drift ? a + A(2) * wr * drift * rv : a;
          sa += a;
        }
      }
      return std::array<S, 2>{sv, sa};
    });
  }
  std::array<S, 2> sf = chunked_sum<2, S>(nf, kLossChunk, [&](int64_t lo, int64_t hi) {
    if constexpr (kVec) {
      TermPass p = pass_of(tf);
      p.shift = m_r;
      p.w = wf;
      p.loss = none ? lp : nullptr;
      p.loss_add = nr > 0;
      p.ga = gf;
      return term_pass(fp, static_cast<const T*>(nullptr), lo, hi, p);
    }
    S sv = S(0), sb = S(0);
    for (int64_t i = lo; i < hi; ++i) {
      const A x = static_cast<A>(fp[i]) - m_r;
      const A v = term_value<A>(tf, x);
      if (none) {
        lp[i] = nr ? lp[i] + v : v;
      } else {
        sv += v;
      }
      if (gf) {
        const A b = wf * term_grad<A>(tf, x);
        gf[i] = b;
        sb += b;
      }
    }
    return std::array<S, 2>{sv, sb};
  });
  // Each term reduced on its own, then added, as the reference does.
  if (!none) set_reduced((nr ? reduce(sr[0], nr) : A(0)) + reduce(sf[0], nf));
  if (relativistic && keep) {
    // d/dr_k of the fake term through mean r, and d/df_k of the real term
    // through mean f: constants per tensor.
    const A cr = static_cast<A>(sf[1] / static_cast<S>(nr)), cf = static_cast<A>(sr[1] / static_cast<S>(nf));
    at::parallel_for(0, nr, kStreamGrain, [&](int64_t lo, int64_t hi) {
      if constexpr (kVec) {
        sub_scalar(gr + lo, cr, hi - lo);
      } else {
        for (int64_t i = lo; i < hi; ++i) gr[i] -= cr;
      }
    });
    at::parallel_for(0, nf, kStreamGrain, [&](int64_t lo, int64_t hi) {
      if constexpr (kVec) {
        sub_scalar(gf + lo, cf, hi - lo);
      } else {
        for (int64_t i = lo; i < hi; ++i) gf[i] -= cf;
      }
    });
  }
  return res;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cpu(
    const std::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t mode, int64_t real_term,
    double real_target, double real_coef, int64_t fake_term, double fake_target, double fake_coef, double drift,
    int64_t reduction, bool compute_grad) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  const at::Tensor real = checked_real_logits(real_opt, fake, spec, reduction, c10::DeviceType::CPU, "loss_forward");
  const Logits r = logits_of(real.defined() ? std::optional<at::Tensor>(real) : std::nullopt);
  const Logits f = logits_of(fake);
  LossResult res;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "loss_forward_cpu", [&] {
    res = loss_impl<scalar_t>(spec, r, f, fake, reduction, compute_grad);
  });
  if (reduction == kReduceNone) res.loss = res.loss.view(fake.sizes());
  const at::ScalarType acc = acc_type_of(fake.scalar_type());
  if (!res.grad_real.defined()) res.grad_real = empty_grad(fake, acc);
  if (!res.grad_fake.defined()) res.grad_fake = empty_grad(fake, acc);
  return {res.loss, res.grad_real, res.grad_fake};
}

// (grad_out * saved).to(dtype): one saved per-element gradient scaled by the upstream gradient.
at::Tensor scaled_grad(const at::Tensor& grad_out, const at::Tensor& saved, at::ScalarType dtype) {
  // Laid out like saved (the fake kernel's empty_like); the loop below writes logical order, into
  // a contiguous buffer first when saved is not contiguous (never the case from autograd).
  at::Tensor out = at::empty_like(saved, saved.options().dtype(dtype));
  if (saved.numel() == 0) return out;
  at::Tensor res = out.is_contiguous() ? out : at::empty(saved.sizes(), saved.options().dtype(dtype));
  const at::Tensor s = saved.contiguous();
  const at::ScalarType acc = s.scalar_type();
  TORCH_CHECK(acc == at::kFloat || acc == at::kDouble, "gan_kernels: saved gradients must be float32/64");
  // grad_out: 0-dim (read in place, no tensor op: this path is overhead-
  // bound at typical batch sizes), or saved's shape with any strides (an
  // expanded one has zero strides); small, so read it contiguously.
  const bool scalar = grad_out.numel() == 1;
  if (!scalar) {
    TORCH_CHECK(grad_out.numel() == saved.numel(), "gan_kernels: grad_out has ", grad_out.numel(),
                " elements but the saved gradient has ", saved.numel());
  }
  const at::Tensor g = scalar ? grad_out : grad_out.to(acc).reshape({-1}).contiguous();
  const int64_t n = s.numel();
  AT_DISPATCH_FLOATING_TYPES(acc, "loss_backward_cpu_acc", [&] {
    using A = scalar_t;
    const A* sp = s.const_data_ptr<A>();
    A go = A(0);
    if (scalar) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "loss_backward_cpu_go", [&] {
        go = static_cast<A>(*g.const_data_ptr<scalar_t>());
      });
    }
    const A* gp = scalar ? nullptr : g.const_data_ptr<A>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "loss_backward_cpu", [&] {
      scalar_t* op = res.data_ptr<scalar_t>();
      at::parallel_for(0, n, kStreamGrain, [&](int64_t lo, int64_t hi) {
        if (scalar) {
          for (int64_t i = lo; i < hi; ++i) op[i] = static_cast<scalar_t>(go * sp[i]);
        } else {
          for (int64_t i = lo; i < hi; ++i) op[i] = static_cast<scalar_t>(gp[i] * sp[i]);
        }
      });
    });
  });
  if (!res.is_same(out)) out.copy_(res);
  return out;
}

std::tuple<at::Tensor, at::Tensor> loss_backward_cpu(const at::Tensor& grad_out, const at::Tensor& saved_a,
                                                     const at::Tensor& saved_b, at::ScalarType dtype_a,
                                                     at::ScalarType dtype_b) {
  check_on(grad_out, c10::DeviceType::CPU, "loss_backward", "grad_out");
  check_on(saved_a, c10::DeviceType::CPU, "loss_backward", "saved_a");
  check_on(saved_b, c10::DeviceType::CPU, "loss_backward", "saved_b");
  return {scaled_grad(grad_out, saved_a, dtype_a), scaled_grad(grad_out, saved_b, dtype_b)};
}

// ---------------------------------------------------------------------------
// Lists of logits (multi-discriminator training): every pair runs loss_impl
// exactly as a single loss does, so a list of one gives the single-tensor
// bits. Pairs that each fit in one chunk run in parallel, one pair per task;
// larger pairs run one after another, each spread over its chunks. Either way
// a pair's partial sums and their order are fixed, so the result does not
// depend on the thread count.

using LossListResult = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

LossListResult loss_list_forward_cpu(at::TensorList real, at::TensorList fake, int64_t mode, int64_t real_term,
                                     double real_target, double real_coef, int64_t fake_term, double fake_target,
                                     double fake_coef, double drift, int64_t reduction, bool compute_grad) {
  const LossSpec spec =
      make_spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift);
  check_loss_lists(real, fake, spec, reduction, c10::DeviceType::CPU);
  const bool uses_real = spec_uses_real(spec);
  const int64_t D = static_cast<int64_t>(fake.size());
  bool any_double = false;
  int64_t max_n = 0, total_n = 0;
  for (int64_t i = 0; i < D; ++i) {
    const at::Tensor r = uses_real ? real[i] : at::Tensor();
    any_double = any_double || fake[i].scalar_type() == at::kDouble;
    const int64_t n = std::max(fake[i].numel(), r.defined() ? r.numel() : int64_t{0});
    max_n = std::max(max_n, n);
    total_n += n;
  }
  std::vector<LossResult> res(static_cast<size_t>(D));
  auto run = [&](int64_t i) {
    const at::Tensor& f_in = fake[i];
    const Logits r = logits_of(uses_real ? std::optional<at::Tensor>(real[i]) : std::nullopt);
    const Logits f = logits_of(f_in);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f_in.scalar_type(), "loss_list_forward_cpu", [&] {
      res[i] = loss_impl<scalar_t>(spec, r, f, f_in, reduction, compute_grad, /*loss_tensor=*/false);
    });
  };
  if (D > 1 && max_n <= kLossChunk && total_n > kLossChunk) {
    at::parallel_for(0, D, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) run(i);
    });
  } else {
    for (int64_t i = 0; i < D; ++i) run(i);
  }
  // The terms, and their sum in list order (the first term itself for a list of one).
  const at::ScalarType out_t = any_double ? at::kDouble : at::kFloat;
  at::Tensor terms = at::empty({D}, fake[0].options().dtype(out_t));
  at::Tensor total = at::empty({}, fake[0].options().dtype(out_t));
  AT_DISPATCH_FLOATING_TYPES(out_t, "loss_list_total_cpu", [&] {
    scalar_t* tp = terms.data_ptr<scalar_t>();
    // value holds a term exactly (a float32 term widened to double), so this
    // rounds once, as reading the term in its own dtype would.
    for (int64_t i = 0; i < D; ++i) tp[i] = static_cast<scalar_t>(res[i].value);
    scalar_t acc = tp[0];
    for (int64_t i = 1; i < D; ++i) acc += tp[i];
    *total.data_ptr<scalar_t>() = acc;
  });
  std::vector<at::Tensor> grad_real, grad_fake;
  if (compute_grad) {
    for (int64_t i = 0; i < D; ++i) {
      if (uses_real) grad_real.push_back(res[i].grad_real);
      grad_fake.push_back(res[i].grad_fake);
    }
  }
  return {total, terms, grad_real, grad_fake};
}

std::vector<at::Tensor> loss_list_backward_cpu(const at::Tensor& grad_out, at::TensorList saved, at::TensorList like) {
  check_on(grad_out, c10::DeviceType::CPU, "loss_list_backward", "grad_out");
  TORCH_CHECK_VALUE(grad_out.numel() == 1, "gan_kernels::loss_list_backward: grad_out must hold one value, got ",
                    grad_out.numel());
  TORCH_CHECK_VALUE(saved.size() == like.size(), "gan_kernels::loss_list_backward: ", saved.size(),
                    " saved gradients but ", like.size(), " tensors to take their dtypes from");
  std::vector<at::Tensor> out;
  out.reserve(saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    check_on(saved[i], c10::DeviceType::CPU, "loss_list_backward", "saved");
    out.push_back(scaled_grad(grad_out, saved[i], like[i].scalar_type()));
  }
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace gan_kernels

TORCH_LIBRARY_IMPL(gan_kernels, CPU, m) {
  m.impl("loss_forward", &gan_kernels::cpu::loss_forward_cpu);
  m.impl("loss_backward", &gan_kernels::cpu::loss_backward_cpu);
  m.impl("loss_list_forward", &gan_kernels::cpu::loss_list_forward_cpu);
  m.impl("loss_list_backward", &gan_kernels::cpu::loss_list_backward_cpu);
}
