// Helpers of the differentiable ops (csrc/autograd/*.cpp): each public op is
// a C++ torch::autograd::Function registered as the op's Autograd kernel, so a
// call records a C++ graph node and neither direction runs Python.
//
// First-order backward runs the device ops. When the backward itself must be
// differentiable (grad mode on inside backward: create_graph=True), the ops
// differentiate a plain ATen formula of the forward instead (`vjp`): the
// gradient of a gradient is rare and small next to the first backward, and an
// ATen formula gets its derivatives from autograd.
#pragma once

#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/graph_task.h>

namespace gan_kernels {
namespace autograd {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The accumulation dtype of an input dtype (float64 stays float64).
inline at::ScalarType acc_of(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline at::Tensor up(const at::Tensor& x) { return x.to(acc_of(x)); }

// Real and fake brought to one dtype (torch's promotion), differentiably.
inline void promote_pair(at::Tensor& a, at::Tensor& b) {
  if (a.scalar_type() == b.scalar_type()) return;
  const at::ScalarType t = c10::promoteTypes(a.scalar_type(), b.scalar_type());
  a = a.to(t);
  b = b.to(t);
}

// Whether a backward may hand out its saved per-element gradients themselves
// instead of scaled copies: grad_out is exactly 1 (the usual `loss.backward()`
// gives a loss node exactly 1), read in place from a plain CPU scalar (no
// synchronisation; a CUDA value would need one), and the graph is not kept, so
// the engine frees the saved tensors right after this call and no later
// backward can see a caller's in-place change to the gradient. Fake tensors,
// functorch wrappers and subclasses carry other dispatch keys and take the
// general path.
inline bool can_return_saved(const at::Tensor& go) {
  if (torch::autograd::get_current_graph_task_keep_graph()) return false;
  static const c10::DispatchKeySet plain = c10::DispatchKeySet(c10::DispatchKey::CPU) |
                                           c10::DispatchKeySet(c10::DispatchKey::AutogradCPU) |
                                           c10::DispatchKeySet(c10::DispatchKey::ADInplaceOrView) |
                                           c10::DispatchKeySet(c10::DispatchKey::AutocastCPU);
  if (!go.defined() || !plain.isSupersetOf(go.key_set()) || go.sym_numel() != 1) return false;
  if (go.scalar_type() == at::kFloat) return *go.const_data_ptr<float>() == 1.0f;
  if (go.scalar_type() == at::kDouble) return *go.const_data_ptr<double>() == 1.0;
  return false;
}

// Reduce a per-element (or per-sample) tensor: 0 none, 1 mean, 2 sum.
inline at::Tensor reduce(const at::Tensor& x, int64_t reduction) {
  if (reduction == 1) return x.mean();
  if (reduction == 2) return x.sum();
  return x;
}

// Vector-Jacobian product of fn(inputs) with grad_out, for the inputs marked
// in `needs`; differentiable itself when grad mode is on (the graph reaches
// back through the saved inputs). An input the formula does not use gets
// zeros.
inline variable_list vjp(const std::function<at::Tensor(const variable_list&)>& fn, const variable_list& inputs,
                         const std::vector<bool>& needs, const at::Tensor& grad_out) {
  const bool create_graph = at::GradMode::is_enabled();
  at::AutoGradMode enable(true);
  variable_list ins, wrt;
  for (size_t i = 0; i < inputs.size(); ++i) {
    at::Tensor x = inputs[i];
    if (x.defined() && needs[i] && !x.requires_grad()) x = x.detach().requires_grad_(true);
    ins.push_back(x);
    if (needs[i] && x.defined()) wrt.push_back(x);
  }
  variable_list res(inputs.size());
  if (wrt.empty()) return res;
  const at::Tensor out = fn(ins);
  variable_list grads = torch::autograd::grad({out}, wrt, {grad_out}, /*retain_graph=*/create_graph, create_graph,
                                              /*allow_unused=*/true);
  size_t k = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!needs[i] || !ins[i].defined()) continue;
    const at::Tensor& g = grads[k++];
    res[i] = g.defined() ? g : at::zeros_like(ins[i]);
  }
  return res;
}

}  // namespace autograd
}  // namespace gan_kernels
