// Every schema of the gan_kernels operator library, declared once.
//
// Kernels live per device in cpu/ (TORCH_LIBRARY_IMPL(gan_kernels, CPU, m)) and
// cuda/ (TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m)); the differentiable ops'
// autograd kernels in autograd/; fake (meta) kernels are registered from
// Python (gan_kernels/_cpp.py). Adding a device never touches this file.
//
// Integer codes (loss mode, term type, penalty kind, reduction) are defined in
// include/gan_kernels/codes.h and mirrored in gan_kernels/_kinds.py.

#include <Python.h>
#include <torch/library.h>

// An importable, empty Python module: `import gan_kernels._C` loads this
// shared library, which runs the static registrations below.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "gan_kernels compiled operators", -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(gan_kernels, m) {
  // --- The differentiable ops the Python API calls (csrc/autograd/). Each has
  // an Autograd kernel (a C++ autograd Function: the graph node is C++, no
  // Python runs in either direction) and a CompositeExplicitAutograd kernel
  // for calls without autograd; both run the device ops below.

  // Any loss of the library, its kind given as data (include/gan_kernels/math.h
  // LossSpec): mode, the real term (type, target, coef), the fake term, drift.
  // `real` is None when the spec has no real term (separate-mode G losses).
  m.def(
      "loss(Tensor? real, Tensor fake, int mode, int real_term, float real_target, "
      "float real_coef, int fake_term, float fake_target, float fake_coef, "
      "float drift, int reduction) -> Tensor");
  // x_hat_i = alpha_i * real_i + (1 - alpha_i) * fake_i, alpha of shape (B,).
  m.def("interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor");
  // weight * reduce_i p(s * ||grad_i||), s = inv_scale * (inv_scale_tensor or 1).
  m.def(
      "grad_penalty(Tensor grad, int kind, float center, float weight, int reduction, "
      "float inv_scale, Tensor? inv_scale_tensor) -> Tensor");

  // Multi-discriminator training: the sum over discriminators of one loss,
  // one pair of logits per discriminator (real is an empty list when the spec
  // has no real term). Returns (total, terms): total is differentiable, terms
  // (D,) holds the per-discriminator losses, detached, for logging. Only the
  // reduced forms ("mean", "sum") are defined for lists.
  m.def(
      "loss_list(Tensor[] real, Tensor[] fake, int mode, int real_term, float real_target, "
      "float real_coef, int fake_term, float fake_target, float fake_coef, "
      "float drift, int reduction) -> (Tensor, Tensor)");
  // sum_k weights[k] * reduce |real[k] - fake[k]| over the pairs of two
  // lists of feature maps (reduce: mean for "mean" and "none", sum for "sum";
  // "none" returns the (K,) weighted per-pair terms instead of their sum).
  m.def("feature_matching(Tensor[] real, Tensor[] fake, float[] weights, int reduction) -> Tensor");

  // --- Device ops (cpu/, cuda/; the Triton back end registers the same
  // schemas in its own namespace). Not differentiable themselves.

  // The loss of a LossSpec and, when compute_grad, d loss / d real and
  // d loss / d fake for a unit upstream gradient (float32 for half inputs),
  // computed in the same pass. For the relativistic mode with reduction
  // "none" the Jacobian is not diagonal and the gradients come back empty; an
  // absent real gives an empty grad_real.
  m.def(
      "loss_forward(Tensor? real, Tensor fake, int mode, int real_term, float real_target, "
      "float real_coef, int fake_term, float fake_target, float fake_coef, "
      "float drift, int reduction, bool compute_grad) -> (Tensor, Tensor, Tensor)");
  // Backward of the loss: (grad_out * saved_a).to(dtype_a), same for b.
  // grad_out is 0-dim (mean/sum) or has the logits' shape (none). An empty
  // saved tensor gives an empty result.
  m.def(
      "loss_backward(Tensor grad_out, Tensor saved_a, Tensor saved_b, "
      "ScalarType dtype_a, ScalarType dtype_b) -> (Tensor, Tensor)");
  // loss_forward over lists of logits in one call: (total, terms (D,), and
  // when compute_grad the per-element gradients of each real / fake tensor for
  // a unit upstream gradient; an empty list otherwise, and for real when the
  // spec has no real term). terms and total are float64 when any pair is.
  m.def(
      "loss_list_forward(Tensor[] real, Tensor[] fake, int mode, int real_term, float real_target, "
      "float real_coef, int fake_term, float fake_target, float fake_coef, "
      "float drift, int reduction, bool compute_grad) -> (Tensor, Tensor, Tensor[], Tensor[])");
  // Backward of loss_list: (grad_out * saved[i]).to(like[i].dtype) for every
  // i, grad_out 0-dim.
  m.def("loss_list_backward(Tensor grad_out, Tensor[] saved, Tensor[] like) -> Tensor[]");
  // Feature matching: the (K,) weighted per-pair terms (reduction "none") or
  // their sum (0-dim), float32 (float64 when any pair is float64).
  m.def("feature_matching_forward(Tensor[] real, Tensor[] fake, float[] weights, int reduction) -> Tensor");
  // d / d real[k] = grad * w_k * sign(real[k] - fake[k]) (/ numel for mean),
  // d / d fake[k] its negative, recomputed from the inputs; grad is 0-dim or
  // (K,) ("none"). A side not asked for comes back as an empty list.
  m.def(
      "feature_matching_backward(Tensor grad, Tensor[] real, Tensor[] fake, float[] weights, "
      "int reduction, bool need_real, bool need_fake) -> (Tensor[], Tensor[])");
  // x_hat_i = alpha_i * real_i + (1 - alpha_i) * fake_i, alpha of shape (B,).
  m.def("interpolate_forward(Tensor real, Tensor fake, Tensor alpha) -> Tensor");
  // (alpha * g, (1 - alpha) * g); an output not asked for is empty.
  m.def(
      "interpolate_backward(Tensor grad_out, Tensor alpha, bool need_real, "
      "bool need_fake) -> (Tensor, Tensor)");
  // Gradient penalty on grad (B, ...): returns (loss, norms) where norms are
  // the per-sample L2 norms of the unscaled grad (float32, float64 for double).
  // The penalty uses s * grad with s = inv_scale * (inv_scale_tensor or 1).
  m.def(
      "grad_penalty_forward(Tensor grad, int kind, float center, float weight, "
      "int reduction, float inv_scale, Tensor? inv_scale_tensor) -> (Tensor, Tensor)");
  // d loss / d grad given grad_out (0-dim, or (B,) for reduction none).
  m.def(
      "grad_penalty_backward(Tensor grad_out, Tensor grad, Tensor norms, int kind, "
      "float center, float weight, int reduction, float inv_scale, "
      "Tensor? inv_scale_tensor) -> Tensor");
}
