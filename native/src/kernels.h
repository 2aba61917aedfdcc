// tfjs kernels as ATen operations. The JS side (src/backend/torch/kernels.ts)
// flattens each kernel's attributes into a list of plain values; a kernel
// here reads them by position.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

namespace normlab {

/** One attribute value: null, a number (booleans arrive as 0/1), a list of integers or a string. */
struct Attr {
  enum class Kind { Null, Number, Ints, String } kind = Kind::Null;
  double number = 0;
  std::vector<int64_t> ints;
  std::string string;
};

class Attrs {
 public:
  explicit Attrs(std::vector<Attr> values) : values_(std::move(values)) {}
  double number(size_t i) const;
  int64_t integer(size_t i) const { return static_cast<int64_t>(number(i)); }
  bool flag(size_t i) const { return number(i) != 0; }
  const std::vector<int64_t>& ints(size_t i) const;
  const std::string& string(size_t i) const;
  bool isNull(size_t i) const { return i >= values_.size() || values_[i].kind == Attr::Kind::Null; }

 private:
  const Attr& at(size_t i, Attr::Kind kind) const;
  std::vector<Attr> values_;
};

using Tensors = std::vector<at::Tensor>;
using Kernel = std::function<Tensors(const Tensors& inputs, const Attrs& attrs)>;

/** The kernel registered under a tfjs kernel name, or nullptr. */
const Kernel* findKernel(const std::string& name);
std::vector<std::string> kernelNames();

/** a·b of two matrices, split by rows of a across ATen's threads when large enough. */
at::Tensor parallelMm(const at::Tensor& a, const at::Tensor& b);

/** tfjs dtype name ('float32', 'int32', 'bool') to an ATen scalar type. */
at::ScalarType scalarType(const std::string& dtype);

/** The tensor as one of tfjs's dtypes: int64 results become int32, float64 float32. */
at::Tensor asTfjsDtype(const at::Tensor& t);

/** The arithmetic of matrix products (train.precision): fp32, tf32 (CUDA's TF32 products), bf16 (mixed precision). */
enum class Precision { Fp32, Tf32, Bf16 };
void setPrecision(Precision p);
Precision currentPrecision();

/**
 * A product's operands as bf16 mixed precision computes them: float32 cast to
 * bfloat16 (autocast's rule for products), anything else as it is. The result
 * goes back to float32 with asProductResult, so weights, gradients and every
 * statistic tfjs sees stay float32.
 */
at::Tensor productOperand(const at::Tensor& t);
at::Tensor asProductResult(const at::Tensor& t, const at::Tensor& like);

/** Device new tensors are created on (uploads, fills, ranges). */
void setDevice(c10::Device device);
c10::Device currentDevice();

}  // namespace normlab
