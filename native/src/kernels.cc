#include "kernels.h"

#include "attention.h"
#include "distributed.h"
#include "fused.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <unordered_map>

namespace normlab {

double Attrs::number(size_t i) const { return at(i, Attr::Kind::Number).number; }
const std::vector<int64_t>& Attrs::ints(size_t i) const { return at(i, Attr::Kind::Ints).ints; }
const std::string& Attrs::string(size_t i) const { return at(i, Attr::Kind::String).string; }

const Attr& Attrs::at(size_t i, Attr::Kind kind) const {
  TORCH_CHECK(i < values_.size() && values_[i].kind == kind, "attribute ", i, " is missing or has the wrong type");
  return values_[i];
}

at::ScalarType scalarType(const std::string& dtype) {
  if (dtype == "float32") return at::kFloat;
  if (dtype == "int32") return at::kInt;
  if (dtype == "bool") return at::kBool;
  TORCH_CHECK(false, "dtype '", dtype, "' is not supported (float32, int32 and bool are)");
}

at::Tensor asTfjsDtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: case at::kInt: case at::kBool: return t;
    case at::kDouble: case at::kHalf: case at::kBFloat16: return t.to(at::kFloat);
    case at::kLong: case at::kShort: case at::kChar: case at::kByte: return t.to(at::kInt);
    default: TORCH_CHECK(false, "result dtype ", t.scalar_type(), " has no tfjs counterpart");
  }
}

namespace {

c10::Device gDevice(c10::DeviceType::CPU);

at::TensorOptions on(at::ScalarType dtype) { return at::TensorOptions().dtype(dtype).device(gDevice); }

using Fn1 = std::function<at::Tensor(const at::Tensor&)>;
using Fn2 = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;
using Reduce = std::function<at::Tensor(const at::Tensor&, at::IntArrayRef, bool)>;

Kernel unary(Fn1 f) {
  return [f](const Tensors& in, const Attrs&) { return Tensors{f(in[0])}; };
}

Kernel binary(Fn2 f) {
  return [f](const Tensors& in, const Attrs&) { return Tensors{f(in[0], in[1])}; };
}

// Attrs: the axes (normalized, non-negative), keepDims. No axes is the identity,
// where ATen would reduce everything.
Kernel reduction(Reduce f) {
  return [f](const Tensors& in, const Attrs& a) {
    const auto& axes = a.ints(0);
    return Tensors{axes.empty() ? in[0] : f(in[0], axes, a.flag(1))};
  };
}

// ATen's prod takes one axis at a time; the highest first keeps lower indices valid.
at::Tensor prodOver(const at::Tensor& x, at::IntArrayRef axes, bool keepDims) {
  std::vector<int64_t> sorted(axes.begin(), axes.end());
  std::sort(sorted.rbegin(), sorted.rend());
  at::Tensor y = x;
  for (int64_t axis : sorted) y = at::prod(y, axis, keepDims);
  return y;
}

// A constant tensor (tf.fill, zerosLike, onesLike, the gradients' broadcasts) as a
// stride-0 view of one value: nothing to allocate or write.
at::Tensor filled(at::IntArrayRef shape, const at::Scalar& value, at::ScalarType dtype) {
  return at::scalar_tensor(value, on(dtype)).expand(shape);
}

at::Tensor filledLike(const at::Tensor& x, double value) {
  return at::scalar_tensor(value, x.options()).expand(x.sizes());
}

// OpenBLAS runs on one thread (addon.ts): next to ATen's OpenMP pool a second
// pool would oversubscribe the cores. A product worth it is split across the
// OpenMP threads instead, by rows of one matrix or by batch, one BLAS call each.
constexpr int64_t kParallelFlops = int64_t(1) << 22;

// Several chunks per thread, taken as threads come free: a thread that another
// process delays costs the product one chunk, not half of it.
template <class Part>
at::Tensor splitAcrossThreads(at::Tensor out, int64_t rows, Part part) {
  const int64_t threads = at::get_num_threads();
  const int64_t chunks = std::min(rows, 4 * threads);
  const int64_t chunk = (rows + chunks - 1) / chunks;
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) {
    try {
      c10::InferenceMode inference;  // thread-local: the output is an inference tensor
      const int64_t begin = c * chunk;
      if (begin < rows) part(out.narrow(0, begin, std::min(chunk, rows - begin)), begin);
    } catch (...) {
#pragma omp critical
      if (!error) error = std::current_exception();  // an exception must not leave the parallel region
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

bool worthSplitting(const at::Tensor& x, int64_t rows, int64_t flops) {
  return x.device().is_cpu() && at::get_num_threads() > 1 && rows >= at::get_num_threads() && flops >= kParallelFlops;
}

// One product, split across threads when worth it (operands already in the product's dtype).
at::Tensor mmSplit(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0);
  if (!worthSplitting(a, m, 2 * m * a.size(1) * b.size(1))) return at::mm(a, b);
  return splitAcrossThreads(at::empty({m, b.size(1)}, a.options()), m, [&](at::Tensor part, int64_t begin) {
    at::mm_out(part, a.narrow(0, begin, part.size(0)), b);
  });
}

}  // namespace

at::Tensor parallelMm(const at::Tensor& a0, const at::Tensor& b0) {
  return asProductResult(mmSplit(productOperand(a0), productOperand(b0)), a0);
}

namespace {

at::Tensor parallelBmm(const at::Tensor& a0, const at::Tensor& b0) {
  const at::Tensor a = productOperand(a0), b = productOperand(b0);
  const int64_t n = a.size(0);
  if (!worthSplitting(a, n, 2 * n * a.size(1) * a.size(2) * b.size(2))) return asProductResult(at::bmm(a, b), a0);
  return asProductResult(splitAcrossThreads(at::empty({n, a.size(1), b.size(2)}, a.options()), n, [&](at::Tensor part, int64_t begin) {
    at::bmm_out(part, a.narrow(0, begin, part.size(0)), b.narrow(0, begin, part.size(0)));
  }), a0);
}

// Inputs a, b; attrs transposeA, transposeB. tfjs sends rank-3 tensors; a
// batch of one (every linear layer) is a single matrix product.
Tensors batchMatMul(const Tensors& in, const Attrs& a) {
  at::Tensor x = a.flag(0) ? in[0].transpose(-2, -1) : in[0];
  at::Tensor y = a.flag(1) ? in[1].transpose(-2, -1) : in[1];
  if (x.dim() != 3 || y.dim() != 3 || x.size(0) != y.size(0)) return {asProductResult(at::matmul(productOperand(x), productOperand(y)), x)};
  if (x.size(0) == 1) return {parallelMm(x[0], y[0]).unsqueeze(0)};
  return {parallelBmm(x, y)};
}

at::Tensor activation(const at::Tensor& x, const std::string& name, const at::Tensor& preluWeights, double alpha) {
  if (name == "linear") return x;
  if (name == "relu") return at::relu(x);
  if (name == "relu6") return at::hardtanh(x, 0, 6);
  if (name == "elu") return at::elu(x);
  if (name == "sigmoid") return at::sigmoid(x);
  if (name == "leakyrelu") return at::leaky_relu(x, alpha);
  if (name == "prelu") return at::where(x < 0, x * preluWeights, x);
  TORCH_CHECK(false, "activation '", name, "' is not supported");
}

// Inputs a, b, bias?, preluActivationWeights?; attrs transposeA, transposeB, activation, leakyreluAlpha.
Tensors fusedMatMul(const Tensors& in, const Attrs& a) {
  at::Tensor y = batchMatMul(in, a)[0];
  if (in[2].defined()) y = y + in[2];
  return {activation(y, a.string(2), in[3], a.isNull(3) ? 0.2 : a.number(3))};
}

// Input x, indices; attrs axis, batchDims. Out-of-range indices are errors, as on tfjs's cpu backend.
Tensors gather(const Tensors& in, const Attrs& a) {
  const at::Tensor& x = in[0];
  const at::Tensor& indices = in[1];
  const int64_t axis = a.integer(0);
  TORCH_CHECK(a.integer(1) == 0, "GatherV2 with batchDims > 0 is not supported");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + axis);
  shape.insert(shape.end(), indices.sizes().begin(), indices.sizes().end());
  shape.insert(shape.end(), x.sizes().begin() + axis + 1, x.sizes().end());
  return {at::index_select(x, axis, indices.reshape({-1})).reshape(shape)};
}

// Inputs x, segmentIds; attr numSegments. The gradient of gather. Ids outside
// [0, numSegments) are dropped, as in TensorFlow: they go to a spare row cut off at the end.
Tensors unsortedSegmentSum(const Tensors& in, const Attrs& a) {
  const at::Tensor& x = in[0];
  const int64_t n = a.integer(0);
  at::Tensor ids = in[1].reshape({-1}).to(at::kLong);
  ids = at::where(ids.ge(0).logical_and(ids.lt(n)), ids, n);
  std::vector<int64_t> rowShape(x.sizes().begin() + in[1].dim(), x.sizes().end());
  std::vector<int64_t> sumsShape{n + 1};
  sumsShape.insert(sumsShape.end(), rowShape.begin(), rowShape.end());
  std::vector<int64_t> rowsShape{ids.numel()};
  rowsShape.insert(rowsShape.end(), rowShape.begin(), rowShape.end());
  at::Tensor sums = at::zeros(sumsShape, x.options()).index_add_(0, ids, x.reshape(rowsShape));
  return {sums.narrow(0, 0, n)};
}

// Input indices; attrs depth, onValue, offValue, dtype. Ids outside [0, depth) give all-off rows.
Tensors oneHot(const Tensors& in, const Attrs& a) {
  const int64_t depth = a.integer(0);
  const at::ScalarType dtype = scalarType(a.string(3));
  at::Tensor ids = in[0].to(at::kLong).unsqueeze(-1);
  at::Tensor valid = ids.ge(0).logical_and(ids.lt(depth));
  std::vector<int64_t> shape(in[0].sizes().begin(), in[0].sizes().end());
  shape.push_back(depth);
  at::Tensor out = at::full(shape, a.number(2), on(dtype));
  if (depth == 0) return {out};
  at::Tensor value = at::where(valid, at::scalar_tensor(a.number(1), on(dtype)), at::scalar_tensor(a.number(2), on(dtype)));
  return {out.scatter_(-1, ids.clamp(0, depth - 1), value)};
}

// Inputs x; attrs axis, exclusive, reverse (tfjs's Cumsum and Cumprod).
Kernel cumulative(std::function<at::Tensor(const at::Tensor&, int64_t)> f, double identity) {
  return [f, identity](const Tensors& in, const Attrs& a) {
    const int64_t axis = a.integer(0);
    const bool reverse = a.flag(2);
    at::Tensor x = reverse ? in[0].flip(axis) : in[0];
    at::Tensor y = f(x, axis);
    if (a.flag(1) && x.size(axis) > 0) {
      at::Tensor first = filledLike(y.narrow(axis, 0, 1), identity);
      y = at::cat({first, y.narrow(axis, 0, x.size(axis) - 1)}, axis);
    }
    return Tensors{asTfjsDtype(reverse ? y.flip(axis) : y)};
  };
}

// Attrs start, stop, step, dtype. Built as start + i·step so an empty range is
// simply zero steps long (ATen's arange rejects a step of the wrong sign).
Tensors range(const Tensors&, const Attrs& a) {
  const double start = a.number(0), stop = a.number(1), step = a.number(2);
  const auto n = static_cast<int64_t>(std::max(0.0, std::ceil((stop - start) / step)));
  return {(at::arange(n, on(at::kDouble)) * step + start).to(scalarType(a.string(3)))};
}

// Input x; attrs begin, size (both complete: tfjs's parseSliceParams ran on the JS side).
Tensors slice(const Tensors& in, const Attrs& a) {
  at::Tensor y = in[0];
  const auto& begin = a.ints(0);
  const auto& size = a.ints(1);
  for (size_t d = 0; d < begin.size(); ++d) y = y.narrow(static_cast<int64_t>(d), begin[d], size[d]);
  return {y};
}

// Input x; attrs paddings as [before0, after0, before1, …], constantValue. ATen lists the last axis first.
Tensors pad(const Tensors& in, const Attrs& a) {
  const auto& p = a.ints(0);
  std::vector<int64_t> reversed;
  for (size_t d = p.size() / 2; d-- > 0;) {
    reversed.push_back(p[2 * d]);
    reversed.push_back(p[2 * d + 1]);
  }
  return {at::constant_pad_nd(in[0], reversed, a.number(1))};
}

// tfjs's Step: 1 where x > 0, alpha elsewhere, NaN kept.
at::Tensor step(const at::Tensor& x, double alpha) {
  at::Tensor y = at::where(x.gt(0), at::scalar_tensor(1.0, x.options()), at::scalar_tensor(alpha, x.options()));
  return at::where(x.isnan(), x, y);
}

Tensors topK(const Tensors& in, const Attrs& a) {
  auto [values, indices] = at::topk(in[0], a.integer(0), -1, true, a.flag(1));
  return {values, indices};
}

// Kernels are listed under their tfjs names (tfjs-core kernel_names.ts).
const std::unordered_map<std::string, Kernel>& table() {
  using T = const at::Tensor&;
  static const std::unordered_map<std::string, Kernel> kernels = {
      // Element-wise, one input x.
      {"Abs", unary([](T x) { return at::abs(x); })},
      {"Acos", unary([](T x) { return at::acos(x); })},
      {"Acosh", unary([](T x) { return at::acosh(x); })},
      {"Asin", unary([](T x) { return at::asin(x); })},
      {"Asinh", unary([](T x) { return at::asinh(x); })},
      {"Atan", unary([](T x) { return at::atan(x); })},
      {"Atanh", unary([](T x) { return at::atanh(x); })},
      {"Ceil", unary([](T x) { return at::ceil(x); })},
      {"Cos", unary([](T x) { return at::cos(x); })},
      {"Cosh", unary([](T x) { return at::cosh(x); })},
      {"Elu", unary([](T x) { return at::elu(x); })},
      {"Erf", unary([](T x) { return at::erf(x); })},
      {"Exp", unary([](T x) { return at::exp(x); })},
      {"Expm1", unary([](T x) { return at::expm1(x); })},
      {"Floor", unary([](T x) { return at::floor(x); })},
      {"IsFinite", unary([](T x) { return at::isfinite(x); })},
      {"IsInf", unary([](T x) { return at::isinf(x); })},
      {"IsNan", unary([](T x) { return at::isnan(x); })},
      {"Log", unary([](T x) { return at::log(x); })},
      {"Log1p", unary([](T x) { return at::log1p(x); })},
      {"LogicalNot", unary([](T x) { return at::logical_not(x); })},
      {"Neg", unary([](T x) { return at::neg(x); })},
      {"OnesLike", unary([](T x) { return filledLike(x, 1); })},
      {"Reciprocal", unary([](T x) { return at::reciprocal(x); })},
      {"Relu", unary([](T x) { return at::relu(x); })},
      {"Relu6", unary([](T x) { return at::hardtanh(x, 0, 6); })},
      {"Round", unary([](T x) { return at::round(x); })},  // half to even, as tfjs
      {"Rsqrt", unary([](T x) { return at::rsqrt(x); })},
      {"Selu", unary([](T x) { return at::selu(x); })},
      {"Sigmoid", unary([](T x) { return at::sigmoid(x); })},
      {"Sign", unary([](T x) { return at::sign(x); })},
      {"Sin", unary([](T x) { return at::sin(x); })},
      {"Sinh", unary([](T x) { return at::sinh(x); })},
      {"Softplus", unary([](T x) { return at::softplus(x); })},
      {"Sqrt", unary([](T x) { return at::sqrt(x); })},
      {"Square", unary([](T x) { return at::square(x); })},
      {"Tan", unary([](T x) { return at::tan(x); })},
      {"Tanh", unary([](T x) { return at::tanh(x); })},
      {"ZerosLike", unary([](T x) { return filledLike(x, 0); })},

      // Element-wise, two inputs a, b (same dtype; tfjs broadcasts).
      {"Add", binary([](T a, T b) { return at::add(a, b); })},
      {"Atan2", binary([](T a, T b) { return at::atan2(a, b); })},
      {"EluGrad", binary([](T dy, T y) { return at::where(y.lt(0), dy * (y + 1), dy); })},
      {"Equal", binary([](T a, T b) { return at::eq(a, b); })},
      {"FloorDiv", binary([](T a, T b) { return at::div(a, b, "floor").to(at::kInt); })},  // int32 always, as tfjs
      {"Greater", binary([](T a, T b) { return at::gt(a, b); })},
      {"GreaterEqual", binary([](T a, T b) { return at::ge(a, b); })},
      {"Less", binary([](T a, T b) { return at::lt(a, b); })},
      {"LessEqual", binary([](T a, T b) { return at::le(a, b); })},
      {"LogicalAnd", binary([](T a, T b) { return at::logical_and(a, b); })},
      {"LogicalOr", binary([](T a, T b) { return at::logical_or(a, b); })},
      {"Maximum", binary([](T a, T b) { return at::maximum(a, b); })},
      {"Minimum", binary([](T a, T b) { return at::minimum(a, b); })},
      {"Mod", binary([](T a, T b) { return at::remainder(a, b); })},  // sign of the divisor, as tfjs
      {"Multiply", binary([](T a, T b) { return at::mul(a, b); })},
      {"NotEqual", binary([](T a, T b) { return at::ne(a, b); })},
      {"Pow", binary([](T a, T b) { return at::pow(a, b); })},
      {"Prelu", binary([](T x, T alpha) { return at::where(x.lt(0), x * alpha, x); })},
      {"RealDiv", binary([](T a, T b) { return at::div(a, b); })},
      {"SquaredDifference", binary([](T a, T b) { return at::square(a - b); })},
      {"Sub", binary([](T a, T b) { return at::sub(a, b); })},

      // Element-wise with attributes.
      {"Cast", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].to(scalarType(a.string(0)))}; }},
      {"ClipByValue", [](const Tensors& in, const Attrs& a) { return Tensors{at::clamp(in[0], a.number(0), a.number(1))}; }},
      {"LeakyRelu", [](const Tensors& in, const Attrs& a) { return Tensors{at::leaky_relu(in[0], a.number(0))}; }},
      {"Select", [](const Tensors& in, const Attrs&) { return Tensors{at::where(in[0].to(at::kBool), in[1], in[2])}; }},
      {"Step", [](const Tensors& in, const Attrs& a) { return Tensors{step(in[0], a.number(0))}; }},
      {"AddN", [](const Tensors& in, const Attrs&) {
         at::Tensor sum = in[0];
         for (size_t i = 1; i < in.size(); ++i) sum = sum + in[i];
         return Tensors{sum};
       }},

      // Reductions: attrs axes, keepDims.
      {"All", reduction([](T x, at::IntArrayRef axes, bool keep) { return at::amin(x.to(at::kInt), axes, keep).to(at::kBool); })},
      {"Any", reduction([](T x, at::IntArrayRef axes, bool keep) { return at::amax(x.to(at::kInt), axes, keep).to(at::kBool); })},
      {"Max", reduction([](T x, at::IntArrayRef axes, bool keep) { return at::amax(x, axes, keep); })},
      {"Mean", reduction([](T x, at::IntArrayRef axes, bool keep) {
         return at::mean(x.is_floating_point() ? x : x.to(at::kFloat), axes, keep);
       })},
      {"Min", reduction([](T x, at::IntArrayRef axes, bool keep) { return at::amin(x, axes, keep); })},
      {"Prod", reduction(prodOver)},
      {"Sum", reduction([](T x, at::IntArrayRef axes, bool keep) { return at::sum(x, axes, keep); })},
      {"ArgMax", [](const Tensors& in, const Attrs& a) { return Tensors{at::argmax(in[0], a.integer(0))}; }},
      {"ArgMin", [](const Tensors& in, const Attrs& a) { return Tensors{at::argmin(in[0], a.integer(0))}; }},
      {"Cumprod", cumulative([](T x, int64_t axis) { return at::cumprod(x, axis); }, 1)},
      {"Cumsum", cumulative([](T x, int64_t axis) { return at::cumsum(x, axis); }, 0)},
      {"Softmax", [](const Tensors& in, const Attrs& a) { return Tensors{at::softmax(in[0], a.integer(0))}; }},
      {"TopK", topK},

      // Fused gradients (src/backend/torch/gradients.ts), one ATen kernel where tfjs's formula takes several.
      {"TorchSigmoidGrad", binary([](T dy, T y) { return at::sigmoid_backward(dy, y); })},
      {"TorchSoftmaxGrad", [](const Tensors& in, const Attrs& a) {
         return Tensors{at::_softmax_backward_data(in[0], in[1], a.integer(0), in[1].scalar_type())};
       }},

      // normlab's fused kernels (fused.cc, attention.cc).
      {"NormlabAdamW", adamw},
      {"NormlabAllReduceSum", allReduceSum},
      {"NormlabAttention", attention},
      {"NormlabAttentionGrad", attentionGrad},
      {"NormlabBroadcast", broadcastFrom},
      {"NormlabCrossEntropy", crossEntropy},
      {"NormlabCrossEntropyGrad", crossEntropyGrad},
      {"NormlabLinear", linear},
      {"NormlabLinearGradX", linearGradX},
      {"NormlabLinearGradWeight", linearGradWeight},
      {"NormlabMaskedSoftmax", maskedSoftmax},
      {"NormlabMaskedSoftmaxGrad", maskedSoftmaxGrad},
      {"NormlabRMSNorm", rmsNorm},
      {"NormlabRMSNormGradX", rmsNormGradX},
      {"NormlabRMSNormGradWeight", rmsNormGradWeight},
      {"NormlabRope", rope},
      {"NormlabRopeGrad", ropeGrad},
      {"NormlabSquareSums", squareSums},
      {"NormlabSwiGLU", swiglu},
      {"NormlabSwiGLUGradGate", swigluGradGate},
      {"NormlabSwiGLUGradUp", swigluGradUp},

      // Matrix products.
      {"BatchMatMul", batchMatMul},
      {"_FusedMatMul", fusedMatMul},
      {"Einsum", [](const Tensors& in, const Attrs& a) { return Tensors{at::einsum(a.string(0), in)}; }},

      // Shapes and data movement; most return views of their input.
      {"BroadcastTo", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].expand(a.ints(0))}; }},
      {"Concat", [](const Tensors& in, const Attrs& a) { return Tensors{at::cat(in, a.integer(0))}; }},
      {"ExpandDims", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].unsqueeze(a.integer(0))}; }},
      {"GatherV2", gather},
      {"OneHot", oneHot},
      {"Pack", [](const Tensors& in, const Attrs& a) { return Tensors{at::stack(in, a.integer(0))}; }},
      {"PadV2", pad},
      {"Reshape", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].reshape(a.ints(0))}; }},
      {"Reverse", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].flip(a.ints(0))}; }},
      {"Slice", slice},
      {"SplitV", [](const Tensors& in, const Attrs& a) { return at::split_with_sizes(in[0], a.ints(0), a.integer(1)); }},
      {"Tile", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].repeat(a.ints(0))}; }},
      {"Transpose", [](const Tensors& in, const Attrs& a) { return Tensors{in[0].permute(a.ints(0))}; }},
      {"Unpack", [](const Tensors& in, const Attrs& a) { return at::unbind(in[0], a.integer(0)); }},
      {"UnsortedSegmentSum", unsortedSegmentSum},

      // New tensors.
      {"Fill", [](const Tensors&, const Attrs& a) { return Tensors{filled(a.ints(0), a.number(1), scalarType(a.string(2)))}; }},
      {"LinSpace", [](const Tensors&, const Attrs& a) {
         return Tensors{at::linspace(a.number(0), a.number(1), a.integer(2), on(at::kFloat))};
       }},
      {"Range", range},
  };
  return kernels;
}

}  // namespace

const Kernel* findKernel(const std::string& name) {
  auto it = table().find(name);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> kernelNames() {
  std::vector<std::string> names;
  for (const auto& entry : table()) names.push_back(entry.first);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
Precision gPrecision = Precision::Fp32;
}  // namespace

void setPrecision(Precision p) { gPrecision = p; }
Precision currentPrecision() { return gPrecision; }

at::Tensor productOperand(const at::Tensor& t) {
  return gPrecision == Precision::Bf16 && t.scalar_type() == at::kFloat ? t.to(at::kBFloat16) : t;
}

at::Tensor asProductResult(const at::Tensor& t, const at::Tensor& like) {
  return t.scalar_type() == like.scalar_type() ? t : t.to(like.scalar_type());
}

void setDevice(c10::Device device) { gDevice = device; }
c10::Device currentDevice() { return gDevice; }

}  // namespace normlab
