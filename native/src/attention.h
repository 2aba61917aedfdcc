// Attention as one kernel over ATen's scaled_dot_product_attention (attention.cc).
#pragma once
#include "kernels.h"

namespace normlab {

Tensors attention(const Tensors& in, const Attrs& a);
Tensors attentionGrad(const Tensors& in, const Attrs& a);

}  // namespace normlab
