// Fused kernels: one ATen call sequence where tfjs's composition takes many
// kernels (each a dispatch from JS and a full pass over memory). The JS side
// and the compositions they replace: src/model/fused.ts, src/train/adamw.ts.
#include "fused.h"

namespace normlab {
namespace {

// rsqrt(mean(x², last axis) + eps), keeping the axis.
at::Tensor inverseRms(const at::Tensor& x, double eps) {
  return x.square().mean(-1, true).add_(eps).rsqrt_();
}

// out += rotate_half(x) · sin, where rotate_half([x1, x2]) = [−x2, x1] over
// halves of the last axis (Hugging Face's), without building rotate_half(x).
void addRotatedHalf(at::Tensor& out, const at::Tensor& x, const at::Tensor& sin) {
  const int64_t h = x.size(-1) / 2;
  out.narrow(-1, 0, h).addcmul_(x.narrow(-1, h, h), sin.narrow(-1, 0, h), -1);
  out.narrow(-1, h, h).addcmul_(x.narrow(-1, 0, h), sin.narrow(-1, h, h));
}

// [..., n] as rows [N, n] (a view when contiguous).
at::Tensor rows(const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); }

// Rows [N, n] back to `like`'s leading shape.
at::Tensor unrows(const at::Tensor& flat, const at::Tensor& like) {
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  shape.back() = flat.size(1);
  return flat.view(shape);
}

}  // namespace

// Inputs x [..., in], weight [out, in] (PyTorch's layout). x·weightᵀ, one
// matrix product over all leading axes: tfjs's matMul reshapes around it five times.
Tensors linear(const Tensors& in, const Attrs&) {
  return {unrows(parallelMm(rows(in[0]), in[1].t()), in[0])};
}

// Inputs dy [..., out], weight. dx = dy·weight.
Tensors linearGradX(const Tensors& in, const Attrs&) {
  return {unrows(parallelMm(rows(in[0]), in[1]), in[0])};
}

// Inputs dy [..., out], x [..., in]. d weight = dyᵀ·x over all rows.
Tensors linearGradWeight(const Tensors& in, const Attrs&) {
  return {parallelMm(rows(in[0]).t(), rows(in[1]))};
}

// Inputs x, weight; attr eps. x · rsqrt(mean(x²) + eps) · weight.
Tensors rmsNorm(const Tensors& in, const Attrs& a) {
  return {in[0] * inverseRms(in[0], a.number(0)) * in[1]};
}

// Inputs dy, x, weight; attr eps. With g = dy·weight and r the inverse RMS:
// dx = r·g − r³·x·mean(g·x).
Tensors rmsNormGradX(const Tensors& in, const Attrs& a) {
  const at::Tensor& x = in[1];
  const at::Tensor r = inverseRms(x, a.number(0));
  const at::Tensor g = in[0] * in[2];
  const at::Tensor coefficient = (g * x).mean(-1, true).mul_(r.pow(3));
  return {(g * r).addcmul_(x, coefficient, -1)};
}

// Inputs dy, x; attr eps. d weight = Σ over every leading axis of dy · x · r.
Tensors rmsNormGradWeight(const Tensors& in, const Attrs& a) {
  const at::Tensor& x = in[1];
  const at::Tensor normalized = x * inverseRms(x, a.number(0));
  return {(in[0] * normalized).reshape({-1, x.size(-1)}).sum(0)};
}

// Inputs x, cos, sin (broadcast against x). x·cos + rotate_half(x)·sin.
Tensors rope(const Tensors& in, const Attrs&) {
  at::Tensor out = in[0] * in[1];
  addRotatedHalf(out, in[0], in[2]);
  return {out};
}

// Inputs dy, cos, sin. rotate_half's transpose is its negation:
// dx = dy·cos − rotate_half(dy·sin) = dy·cos + rotate_half(dy)·(−sin) for
// tables whose halves repeat; computed in the first form, which always holds.
Tensors ropeGrad(const Tensors& in, const Attrs&) {
  const at::Tensor& dy = in[0];
  at::Tensor out = dy * in[1];
  const at::Tensor dySin = dy * in[2];
  const int64_t h = dy.size(-1) / 2;
  out.narrow(-1, 0, h).add_(dySin.narrow(-1, h, h));
  out.narrow(-1, h, h).sub_(dySin.narrow(-1, 0, h));
  return {out};
}

// Inputs gate, up. SiLU(gate) · up.
Tensors swiglu(const Tensors& in, const Attrs&) {
  return {at::silu(in[0]) * in[1]};
}

// Inputs dy, gate, up. d gate = dy · up · σ(gate) · (1 + gate · (1 − σ(gate))).
Tensors swigluGradGate(const Tensors& in, const Attrs&) {
  return {at::silu_backward(in[0] * in[2], in[1])};
}

// Inputs dy, gate. d up = dy · SiLU(gate).
Tensors swigluGradUp(const Tensors& in, const Attrs&) {
  return {in[0] * at::silu(in[1])};
}

// Inputs scores, mask (broadcast); attr scale. softmax(scores · scale + mask) over the last axis.
Tensors maskedSoftmax(const Tensors& in, const Attrs& a) {
  return {at::softmax((in[0] * a.number(0)).add_(in[1]), -1)};
}

// Inputs dy, y (the softmax); attr scale. d scores = scale · softmax'(dy).
Tensors maskedSoftmaxGrad(const Tensors& in, const Attrs& a) {
  return {at::_softmax_backward_data(in[0], in[1], -1, at::kFloat).mul_(a.number(0))};
}

// Inputs logits [N, V], targets [N] (int). Per row: logsumexp(logits) − logits[target].
Tensors crossEntropy(const Tensors& in, const Attrs&) {
  const at::Tensor& logits = in[0];
  const at::Tensor picked = logits.gather(1, in[1].to(at::kLong).unsqueeze(1)).squeeze(1);
  return {at::logsumexp(logits, {1}) - picked};
}

// Inputs dy [N], logits, targets. d logits = dy · (softmax(logits) − one_hot(target)).
Tensors crossEntropyGrad(const Tensors& in, const Attrs&) {
  at::Tensor grad = at::softmax(in[1], 1);
  grad.scatter_add_(1, in[2].to(at::kLong).unsqueeze(1), at::full({grad.size(0), 1}, -1.0, grad.options()));
  return {grad.mul_(in[0].unsqueeze(1))};
}

// One AdamW step of one parameter, fused: tfjs's ops take 14 kernels and 7
// scalar uploads for it. Inputs param, grad, m, v; attrs gradScale, beta1,
// beta2, eps, decay (the factor weight decay puts on the parameter, 1 for
// none), stepSize = lr/(1-beta1^t), sqrtBias2 = sqrt(1-beta2^t).
// Outputs param', m', v'.
Tensors adamw(const Tensors& in, const Attrs& a) {
  const double scale = a.number(0), beta1 = a.number(1), beta2 = a.number(2), eps = a.number(3);
  const double decay = a.number(4), stepSize = a.number(5), sqrtBias2 = a.number(6);
  const at::Tensor& g = in[1];
  at::Tensor m = at::add(in[2] * beta1, g, (1 - beta1) * scale);
  at::Tensor v = at::addcmul(in[3] * beta2, g, g, (1 - beta2) * scale * scale);
  at::Tensor denominator = v.sqrt().div_(sqrtBias2).add_(eps);
  at::Tensor param = decay == 1 ? in[0].clone() : in[0] * decay;
  param.addcdiv_(m, denominator, -stepSize);  // in place on tensors made here
  return {param, m, v};
}

// Inputs: any number of tensors. Output [n]: Σx² of each, for the gradient norms.
Tensors squareSums(const Tensors& in, const Attrs&) {
  std::vector<at::Tensor> sums;
  sums.reserve(in.size());
  for (const auto& x : in) sums.push_back(x.square().sum());
  return {at::stack(sums)};
}

}  // namespace normlab
