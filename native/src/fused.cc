// Fused kernels: one ATen call sequence where tfjs's composition takes many
// kernels (each a dispatch from JS and a full pass over memory). The JS side
// and the compositions they replace: src/model/fused.ts, src/train/adamw.ts.
#include "fused.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <initializer_list>
#include <vector>

namespace normlab {
namespace {

// RMSNorm and AdamW also have hand-written loops: one pass over memory where
// ATen's ops take several, for contiguous float32 tensors on the CPU. Anywhere
// else (CUDA, strided views) the ATen form runs.
bool plainCpuFloats(std::initializer_list<at::Tensor> tensors) {
  for (const auto& t : tensors) {
    if (!t.device().is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous() || t.numel() == 0) return false;
  }
  return true;
}

// Rows per parallel chunk: about as many elements as ATen gives one thread.
int64_t rowGrain(int64_t n) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / n); }

float inverseRmsRow(const float* x, int64_t n, double eps) {
  double squares = 0;
#pragma omp simd reduction(+ : squares)
  for (int64_t i = 0; i < n; ++i) squares += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(1 / std::sqrt(squares / static_cast<double>(n) + eps));
}

// x [..., n] and weight [n] as rows of n plain floats.
bool rowsWithWeight(const at::Tensor& x, const at::Tensor& weight) {
  return plainCpuFloats({x, weight}) && weight.dim() == 1 && weight.size(0) == x.size(-1);
}

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

// Inputs x, weight; attr eps. x · r · weight, r = rsqrt(mean(x²) + eps) per row.
Tensors rmsNorm(const Tensors& in, const Attrs& a) {
  const at::Tensor &x = in[0], &weight = in[1];
  const float eps = static_cast<float>(a.number(0));
  if (!rowsWithWeight(x, weight)) return {x * inverseRms(x, eps) * weight};
  const int64_t n = x.size(-1);
  at::Tensor y = at::empty_like(x);
  const float *xs = x.data_ptr<float>(), *w = weight.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  at::parallel_for(0, x.numel() / n, rowGrain(n), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* xr = xs + row * n;
      float* yr = ys + row * n;
      const float r = inverseRmsRow(xr, n, eps);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * r * w[i];
    }
  });
  return {y};
}

// Inputs dy, x, weight; attr eps. With g = dy·weight:
// dx = r·g − r³·x·mean(g·x).
Tensors rmsNormGradX(const Tensors& in, const Attrs& a) {
  const at::Tensor &dy = in[0], &x = in[1], &weight = in[2];
  const float eps = static_cast<float>(a.number(0));
  if (!rowsWithWeight(x, weight) || !plainCpuFloats({dy})) {
    const at::Tensor r = inverseRms(x, eps);
    const at::Tensor g = dy * weight;
    const at::Tensor coefficient = (g * x).mean(-1, true).mul_(r.pow(3));
    return {(g * r).addcmul_(x, coefficient, -1)};
  }
  const int64_t n = x.size(-1);
  at::Tensor dx = at::empty_like(x);
  const float *dys = dy.data_ptr<float>(), *xs = x.data_ptr<float>(), *w = weight.data_ptr<float>();
  float* dxs = dx.data_ptr<float>();
  at::parallel_for(0, x.numel() / n, rowGrain(n), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float *dyr = dys + row * n, *xr = xs + row * n;
      float* dxr = dxs + row * n;
      const float r = inverseRmsRow(xr, n, eps);
      double gx = 0;
#pragma omp simd reduction(+ : gx)
      for (int64_t i = 0; i < n; ++i) gx += static_cast<double>(dyr[i] * w[i]) * xr[i];
      const float coefficient = static_cast<float>(gx / static_cast<double>(n) * r * r * r);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dxr[i] = dyr[i] * w[i] * r - xr[i] * coefficient;
    }
  });
  return {dx};
}

// Inputs dy, x; attr eps. d weight = Σ over every leading axis of dy · x · r,
// summed in float64 (one partial sum per thread).
Tensors rmsNormGradWeight(const Tensors& in, const Attrs& a) {
  const at::Tensor &dy = in[0], &x = in[1];
  const float eps = static_cast<float>(a.number(0));
  if (!plainCpuFloats({dy, x})) {
    const at::Tensor normalized = x * inverseRms(x, eps);
    return {(dy * normalized).reshape({-1, x.size(-1)}).sum(0)};
  }
  const int64_t n = x.size(-1), threads = at::get_num_threads();
  std::vector<double> partial(static_cast<size_t>(threads * n), 0.0);
  const float *dys = dy.data_ptr<float>(), *xs = x.data_ptr<float>();
  at::parallel_for(0, x.numel() / n, rowGrain(n), [&](int64_t begin, int64_t end) {
    double* sum = partial.data() + at::get_thread_num() * n;
    for (int64_t row = begin; row < end; ++row) {
      const float *dyr = dys + row * n, *xr = xs + row * n;
      const float r = inverseRmsRow(xr, n, eps);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) sum[i] += static_cast<double>(dyr[i] * (xr[i] * r));
    }
  });
  at::Tensor dw = at::empty({n}, x.options());
  float* out = dw.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    double total = 0;
    for (int64_t t = 0; t < threads; ++t) total += partial[t * n + i];
    out[i] = static_cast<float>(total);
  }
  return {dw};
}

// Inputs x, cos, sin (broadcast against x). x·cos + rotate_half(x)·sin.
Tensors rope(const Tensors& in, const Attrs&) {
  at::Tensor out = in[0] * in[1];
  addRotatedHalf(out, in[0], in[2]);
  return {out};
}

// Inputs dy, cos, sin. rotate_half's transpose is its negation:
// dx = dy·cos − rotate_half(dy·sin).
Tensors ropeGrad(const Tensors& in, const Attrs&) {
  const at::Tensor& dy = in[0];
  at::Tensor out = dy * in[1];
  const at::Tensor dySin = dy * in[2];
  const int64_t h = dy.size(-1) / 2;
  out.narrow(-1, 0, h).add_(dySin.narrow(-1, h, h));
  out.narrow(-1, h, h).sub_(dySin.narrow(-1, 0, h));
  return {out};
}

// The SwiGLU and its gradients compute in the products' precision (bf16
// under mixed precision: autocast runs them on its products' bf16 outputs).

// Inputs gate, up. SiLU(gate) · up.
Tensors swiglu(const Tensors& in, const Attrs&) {
  return {asProductResult(at::silu(productOperand(in[0])) * productOperand(in[1]), in[0])};
}

// Inputs dy, gate, up. d gate = dy · up · σ(gate) · (1 + gate · (1 − σ(gate))).
Tensors swigluGradGate(const Tensors& in, const Attrs&) {
  const at::Tensor dy = productOperand(in[0]);
  return {asProductResult(at::silu_backward(dy * productOperand(in[2]), productOperand(in[1])), in[0])};
}

// Inputs dy, gate. d up = dy · SiLU(gate).
Tensors swigluGradUp(const Tensors& in, const Attrs&) {
  return {asProductResult(productOperand(in[0]) * at::silu(productOperand(in[1])), in[0])};
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
  const at::Tensor &p = in[0], &g = in[1];
  const bool sameShapes = g.sizes() == p.sizes() && in[2].sizes() == p.sizes() && in[3].sizes() == p.sizes();
  if (!sameShapes || !plainCpuFloats({p, g, in[2], in[3]})) {
    at::Tensor m = at::add(in[2] * beta1, g, (1 - beta1) * scale);
    at::Tensor v = at::addcmul(in[3] * beta2, g, g, (1 - beta2) * scale * scale);
    at::Tensor denominator = v.sqrt().div_(sqrtBias2).add_(eps);
    at::Tensor param = decay == 1 ? p.clone() : p * decay;
    param.addcdiv_(m, denominator, -stepSize);  // in place on tensors made here
    return {param, m, v};
  }
  at::Tensor param = at::empty_like(p), m = at::empty_like(p), v = at::empty_like(p);
  const float *p0 = p.data_ptr<float>(), *g0 = g.data_ptr<float>(), *m0 = in[2].data_ptr<float>(), *v0 = in[3].data_ptr<float>();
  float *p1 = param.data_ptr<float>(), *m1 = m.data_ptr<float>(), *v1 = v.data_ptr<float>();
  const float b1 = beta1, b2 = beta2, c1 = (1 - beta1) * scale, c2 = (1 - beta2) * scale * scale;
  const float e = eps, d = decay, step = stepSize, bias2 = sqrtBias2;
  at::parallel_for(0, p.numel(), at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float mi = m0[i] * b1 + c1 * g0[i];
      const float vi = v0[i] * b2 + c2 * g0[i] * g0[i];
      m1[i] = mi;
      v1[i] = vi;
      p1[i] = p0[i] * d - step * (mi / (std::sqrt(vi) / bias2 + e));
    }
  });
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
