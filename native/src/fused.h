// Fused kernels (fused.cc): not tfjs kernels but normlab's own, registered
// under Normlab* names next to the tfjs ones in kernels.cc.
#pragma once
#include "kernels.h"

namespace normlab {

Tensors linear(const Tensors& in, const Attrs& a);
Tensors linearGradX(const Tensors& in, const Attrs& a);
Tensors linearGradWeight(const Tensors& in, const Attrs& a);
Tensors rmsNorm(const Tensors& in, const Attrs& a);
Tensors rmsNormGradX(const Tensors& in, const Attrs& a);
Tensors rmsNormGradWeight(const Tensors& in, const Attrs& a);
Tensors rope(const Tensors& in, const Attrs& a);
Tensors ropeGrad(const Tensors& in, const Attrs& a);
Tensors swiglu(const Tensors& in, const Attrs& a);
Tensors swigluGradGate(const Tensors& in, const Attrs& a);
Tensors swigluGradUp(const Tensors& in, const Attrs& a);
Tensors maskedSoftmax(const Tensors& in, const Attrs& a);
Tensors maskedSoftmaxGrad(const Tensors& in, const Attrs& a);
Tensors crossEntropy(const Tensors& in, const Attrs& a);
Tensors crossEntropyGrad(const Tensors& in, const Attrs& a);
Tensors adamw(const Tensors& in, const Attrs& a);
Tensors squareSums(const Tensors& in, const Attrs& a);

}  // namespace normlab
