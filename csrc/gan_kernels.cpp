// Every schema of the gan_kernels operator library, declared once.
//
// Kernels live per device in cpu/ (TORCH_LIBRARY_IMPL(gan_kernels, CPU, m)) and
// cuda/ (TORCH_LIBRARY_IMPL(gan_kernels, CUDA, m)); fake (meta) kernels and the
// autograd Functions are registered from Python (gan_kernels/_cpp.py), so
// adding a device never touches this file.
//
// Integer codes (kind, reduction) are defined in include/gan_kernels/codes.h
// and mirrored in gan_kernels/_kinds.py.

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
  // Discriminator loss from logits. Returns the loss (float32 for half
  // inputs) and, when compute_grad, d loss / d real and d loss / d fake for a
  // unit upstream gradient (float32 for half inputs), computed in the same
  // pass. For the relativistic kind with reduction "none" the Jacobian is not
  // diagonal and the gradients are returned empty.
  m.def(
      "d_loss_forward(Tensor real, Tensor fake, int kind, int reduction, "
      "float real_label, float drift, float ls_fake, float ls_real, "
      "bool compute_grad) -> (Tensor, Tensor, Tensor)");
  // Generator loss; `real` is needed by the relativistic kinds only.
  // Returns (loss, grad_fake, grad_real); grad_real is empty when real is None.
  m.def(
      "g_loss_forward(Tensor fake, Tensor? real, int kind, int reduction, "
      "float ls_target, bool compute_grad) -> (Tensor, Tensor, Tensor)");
  // Backward of both losses: (grad_out * saved_a).to(dtype_a), same for b.
  // grad_out is 0-dim (mean/sum) or has the logits' shape (none). An empty
  // saved tensor gives an empty result.
  m.def(
      "loss_backward(Tensor grad_out, Tensor saved_a, Tensor saved_b, "
      "ScalarType dtype_a, ScalarType dtype_b) -> (Tensor, Tensor)");
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
