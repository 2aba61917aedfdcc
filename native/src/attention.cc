// Attention as one kernel: ATen's scaled_dot_product_attention (SDPA), which
// on CUDA with PyTorch >= 2 picks flash or memory-efficient attention and never
// builds the [T, T] probabilities; with libtorch 1.13 it is ATen's own
// masked-softmax composition. Its gradient is autograd's: the forward records
// SDPA's graph (what flash attention saves: the output and the softmax
// statistics, not the probabilities), and the backward runs that graph, so no
// libtorch needs a hand-written backward. JS side: src/model/layers.ts
// (causalAttention), src/model/fused.ts; the tfjs composition stays the
// definition and the fallback.
#include "attention.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Optional.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include <cmath>
#include <memory>

namespace normlab {
namespace {

// softmax(q·kᵀ·scale + mask)·v; no mask: causal (key position <= query
// position, T_q = T_k). Operands in the products' precision: bf16 under mixed
// precision, where SDPA keeps the softmax statistics in float32.
at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const c10::optional<at::Tensor>& mask,
                double scale) {
  const bool causal = !mask.has_value();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale);
#else
  // Before 2.1 SDPA always scales by 1/sqrt(hd): q carries the rest (nGPT's sqrt(hd)).
  const double rest = scale * std::sqrt(static_cast<double>(q.size(-1)));
  const at::Tensor scaled = std::abs(rest - 1) < 1e-12 ? q : q * rest;
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(scaled, k, v, mask, 0.0, causal);
#else
  return std::get<0>(at::_scaled_dot_product_attention(scaled, k, v, mask, 0.0, false, causal));
#endif
#endif
}

// The mask in the operands' dtype (SDPA takes a float mask of the query's).
c10::optional<at::Tensor> maskFor(const at::Tensor& mask, const at::Tensor& q) {
  if (!mask.defined()) return c10::nullopt;
  return mask.to(q.scalar_type());
}

// t, as a tensor autograd may record: every kernel's output is an inference
// tensor (addon.cc runs kernels under InferenceMode), which autograd refuses to
// save. An alias, not a copy; it keeps t alive. (An absent input stays absent.)
at::Tensor recordable(const at::Tensor& t) {
  if (!t.defined()) return t;
  if (!t.is_inference()) return t.detach();
  return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), [owner = t](void*) {}, t.options());
}

// One recorded forward: its output (graph attached) and the leaves the
// gradient is taken by.
struct Recorded {
  at::Tensor out, q, k, v;
};

void releaseRecorded(void* context) { delete static_cast<Recorded*>(context); }

// The recorded output's values, in a tensor whose storage owns the record:
// tfjs holds it as the kernel's output (and saves it for the gradient), and
// disposing it frees the graph. Its storage is a second one over the same
// memory, so memory().tensorBytes counts the output twice while it lives.
at::Tensor carrying(std::unique_ptr<Recorded> recorded) {
  const at::Tensor& out = recorded->out;
  at::Tensor t = at::for_blob(out.data_ptr(), out.sizes())
                     .strides(out.strides())
                     .context(recorded.get(), &releaseRecorded)
                     .options(out.options())
                     .make_tensor();
  recorded.release();
  return t;
}

}  // namespace

// Inputs q, k, v [B, H, T, hd] (k, v: [B, H, S, hd]), mask [T, S] (additive;
// absent: causal, T = S); attrs scale, record (whether tfjs will ask for the
// gradient). Output [B, H, T, hd], float32.
Tensors attention(const Tensors& in, const Attrs& a) {
  const double scale = a.number(0);
  if (!a.flag(1)) {
    const at::Tensor q = productOperand(in[0]);
    return {asProductResult(sdpa(q, productOperand(in[1]), productOperand(in[2]), maskFor(in[3], q), scale), in[0])};
  }
  c10::InferenceMode recording(false);
  auto r = std::make_unique<Recorded>();
  r->q = recordable(in[0]).requires_grad_(true);
  r->k = recordable(in[1]).requires_grad_(true);
  r->v = recordable(in[2]).requires_grad_(true);
  // The casts to and from bf16 are recorded too: the leaves and gradients stay float32.
  const at::Tensor q = productOperand(r->q);
  r->out = asProductResult(sdpa(q, productOperand(r->k), productOperand(r->v), maskFor(recordable(in[3]), q), scale), in[0]);
  return {carrying(std::move(r))};
}

// Inputs dy, out (NormlabAttention's output, recorded). Outputs dq, dk, dv.
Tensors attentionGrad(const Tensors& in, const Attrs&) {
  const c10::DataPtr& data = in[1].storage().data_ptr();
  TORCH_CHECK(data.get_deleter() == &releaseRecorded,
              "the gradient needs NormlabAttention's output recorded for gradients (attr record = 1)");
  const Recorded& r = *static_cast<Recorded*>(data.get_context());
  c10::InferenceMode recording(false);
  // A copy autograd owns: its engine may add into a gradient in place.
  const at::Tensor dy = in[0].clone();
  return torch::autograd::grad({r.out}, {r.q, r.k, r.v}, {dy});
}

}  // namespace normlab
