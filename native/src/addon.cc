// The N-API face of the torch backend: a table of native tensors addressed by
// integer handles, uploads and downloads, and one entry point that runs a
// kernel of kernels.cc on handles. JS side: src/backend/torch/.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <dlfcn.h>
#include <napi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstring>
#include <set>

#include "allocator.h"
#include "distributed.h"
#include "kernels.h"

namespace normlab {
namespace {

/** Native tensors by handle; a released slot is reused. */
class HandleTable {
 public:
  int32_t add(at::Tensor t) {
    ++live_;
    if (!free_.empty()) {
      const int32_t h = free_.back();
      free_.pop_back();
      slots_[h] = std::move(t);
      return h;
    }
    slots_.push_back(std::move(t));
    return static_cast<int32_t>(slots_.size() - 1);
  }

  const at::Tensor& get(int32_t h) const {
    TORCH_CHECK(h >= 0 && static_cast<size_t>(h) < slots_.size() && slots_[h].defined(), "no tensor with handle ", h);
    return slots_[h];
  }

  void release(int32_t h) {
    get(h);
    slots_[h].reset();
    free_.push_back(h);
    --live_;
  }

  size_t live() const { return live_; }

  /** Bytes of the distinct storages the live tensors use (views share one). */
  size_t storageBytes() const {
    std::set<const void*> seen;
    size_t bytes = 0;
    for (const auto& t : slots_) {
      if (t.defined() && seen.insert(t.storage().unsafeGetStorageImpl()).second) bytes += t.storage().nbytes();
    }
    return bytes;
  }

 private:
  std::vector<at::Tensor> slots_;
  std::vector<int32_t> free_;
  size_t live_ = 0;
};

HandleTable handles;
std::vector<const Kernel*> kernelsById;

// Results of run() go here, so a kernel call allocates no JS objects:
// [count, then per output: handle, dtype code, rank, dims…].
constexpr size_t kOutputCapacity = 1 << 16;
Napi::Reference<Napi::Int32Array> outputsRef;
int32_t* outputs = nullptr;

// Codes shared with DTYPES in src/backend/torch/backend.ts.
int32_t dtypeCode(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kInt: return 1;
    case at::kBool: return 2;
    default: TORCH_CHECK(false, "tensor of dtype ", t, " cannot reach tfjs");
  }
}

// V8 is told how much native memory JS objects keep alive, so it can weigh it in its GC decisions.
int64_t reportedBytes = 0;
void reportExternalMemory(Napi::Env env) {
  const AllocatorStats s = allocatorStats();
  const int64_t now = static_cast<int64_t>(s.liveBytes + s.cachedBytes);
  if (now != reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, now - reportedBytes);
  reportedBytes = now;
}

// ATen's errors carry a C++ backtrace; the user gets the message.
template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F body) {
  try {
    c10::InferenceMode inference;  // no autograd bookkeeping: tfjs does the differentiation
    Napi::Value result = body();
    reportExternalMemory(info.Env());
    return result;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

std::vector<int64_t> toShape(const Napi::Value& v) {
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) shape[i] = a.Get(i).As<Napi::Number>().Int64Value();
  return shape;
}

Attr toAttr(const Napi::Value& v) {
  Attr a;
  if (v.IsNumber() || v.IsBoolean()) {
    a.kind = Attr::Kind::Number;
    a.number = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : v.As<Napi::Boolean>().Value();
  } else if (v.IsArray()) {
    a.kind = Attr::Kind::Ints;
    a.ints = toShape(v);
  } else if (v.IsString()) {
    a.kind = Attr::Kind::String;
    a.string = v.As<Napi::String>().Utf8Value();
  }
  return a;
}

// kernelId(name): the id run() takes, or -1 when this build has no such kernel.
Napi::Value KernelId(const Napi::CallbackInfo& info) {
  const Kernel* kernel = findKernel(info[0].As<Napi::String>().Utf8Value());
  if (kernel == nullptr) return Napi::Number::New(info.Env(), -1);
  kernelsById.push_back(kernel);
  return Napi::Number::New(info.Env(), static_cast<double>(kernelsById.size() - 1));
}

Napi::Value KernelNames(const Napi::CallbackInfo& info) {
  const auto names = kernelNames();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(i, names[i]);
  return out;
}

// run(kernelId, handles (-1 for an absent optional input), attrs) → number of outputs.
Napi::Value Run(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int32_t id = info[0].As<Napi::Number>().Int32Value();
    TORCH_CHECK(id >= 0 && static_cast<size_t>(id) < kernelsById.size(), "unknown kernel id ", id);
    Napi::Array ids = info[1].As<Napi::Array>();
    Tensors inputs(ids.Length());
    for (uint32_t i = 0; i < ids.Length(); ++i) {
      const int32_t h = ids.Get(i).As<Napi::Number>().Int32Value();
      if (h >= 0) inputs[i] = handles.get(h);
    }
    Napi::Array attrValues = info[2].As<Napi::Array>();
    std::vector<Attr> attrs(attrValues.Length());
    for (uint32_t i = 0; i < attrValues.Length(); ++i) attrs[i] = toAttr(attrValues.Get(i));

    Tensors results = (*kernelsById[id])(inputs, Attrs(std::move(attrs)));
    size_t p = 1;
    for (const auto& r : results) TORCH_CHECK((p += 3 + r.dim()) <= kOutputCapacity, "too many outputs");
    p = 0;
    outputs[p++] = static_cast<int32_t>(results.size());
    for (auto& r : results) {
      at::Tensor t = asTfjsDtype(r);
      outputs[p++] = handles.add(t);
      outputs[p++] = dtypeCode(t.scalar_type());
      outputs[p++] = static_cast<int32_t>(t.dim());
      for (int64_t d : t.sizes()) outputs[p++] = static_cast<int32_t>(d);
    }
    return Napi::Number::New(info.Env(), static_cast<double>(results.size()));
  });
}

// Host to GPU without waiting for the GPU: a single value (tfjs's scalars) is
// a fill kernel; an array is copied from pinned memory asynchronously (ATen
// keeps the pinned block until the copy is done). A pageable copy would wait
// for every kernel queued before it, once per upload.
at::Tensor toCuda(const at::Tensor& pinned) {
  const auto options = pinned.options().device(currentDevice()).pinned_memory(false);
  if (pinned.numel() == 1) return at::full(pinned.sizes(), pinned.item(), options);
  return pinned.to(options, /*non_blocking=*/true);
}

// upload(values: TypedArray, shape, dtype) → handle. The values are copied.
Napi::Value Upload(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::TypedArray values = info[0].As<Napi::TypedArray>();
    const at::ScalarType dtype = scalarType(info[2].As<Napi::String>().Utf8Value());
    const bool cuda = currentDevice().is_cuda();
    at::Tensor t = at::empty(toShape(info[1]), at::TensorOptions().dtype(dtype).pinned_memory(cuda));
    TORCH_CHECK(values.ByteLength() == t.nbytes(), "upload: ", values.ByteLength(), " bytes of values for a tensor of ",
                t.nbytes(), " bytes");
    const auto* data = static_cast<const uint8_t*>(values.ArrayBuffer().Data()) + values.ByteOffset();
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), data, t.nbytes());
    return Napi::Number::New(info.Env(), handles.add(cuda ? toCuda(t) : t));
  });
}

// download(handle) → a new Float32Array, Int32Array or Uint8Array (bool).
Napi::Value Download(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor t = handles.get(info[0].As<Napi::Number>().Int32Value()).to(at::kCPU).contiguous();
    Napi::Env env = info.Env();
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, t.nbytes());
    if (t.nbytes() > 0) std::memcpy(buffer.Data(), t.data_ptr(), t.nbytes());
    switch (t.scalar_type()) {
      case at::kFloat: return Napi::Float32Array::New(env, t.numel(), buffer, 0);
      case at::kInt: return Napi::Int32Array::New(env, t.numel(), buffer, 0);
      default: return Napi::Uint8Array::New(env, t.numel(), buffer, 0);
    }
  });
}

Napi::Value Release(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    handles.release(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  const AllocatorStats s = allocatorStats();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("tensors", static_cast<double>(handles.live()));
  out.Set("tensorBytes", static_cast<double>(handles.storageBytes()));
  out.Set("allocatedBytes", static_cast<double>(s.liveBytes));
  out.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  out.Set("peakAllocatedBytes", static_cast<double>(s.peakLiveBytes));
  return out;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    emptyCache();
    return info.Env().Undefined();
  });
}

// The BLAS library that libtorch loaded, when it is OpenBLAS: the addon is
// dlopen'ed without RTLD_GLOBAL, so its symbols are looked up by library.
template <class Fn>
Fn openblasSymbol(const char* name) {
  for (const char* lib : {"libopenblas.so.0", "libblas.so.3", "libopenblas.so"}) {
    void* handle = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    void* symbol = dlsym(handle, name);
    dlclose(handle);
    if (symbol != nullptr) return reinterpret_cast<Fn>(symbol);
  }
  return nullptr;
}

// "OpenBLAS 0.3.21 (SkylakeX kernels)", from a config string that starts "OpenBLAS 0.3.21 …".
std::string blasDescription() {
  using Text = char* (*)();
  auto config = openblasSymbol<Text>("openblas_get_config");
  auto core = openblasSymbol<Text>("openblas_get_corename");
  if (config == nullptr || core == nullptr) return "not OpenBLAS";
  const std::string text = config();
  const size_t end = text.find(' ', text.find(' ') + 1);
  return text.substr(0, end) + " (" + core() + " kernels)";
}

// setThreads(intraOp, blas): ATen's OpenMP pool and OpenBLAS's own pool.
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    if (auto setBlas = openblasSymbol<void (*)(int)>("openblas_set_num_threads")) setBlas(info[1].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

int cudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

// setDevice('cpu' | 'cuda', index = 0): where uploads and new tensors go.
Napi::Value SetDevice(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    if (name == "cuda") {
      TORCH_CHECK(cudaDeviceCount() > 0, at::hasCUDA() ? "no CUDA device is visible" : "this libtorch was built without CUDA");
      const int index = info.Length() > 1 ? info[1].As<Napi::Number>().Int32Value() : 0;
      TORCH_CHECK(index >= 0 && index < cudaDeviceCount(), "no CUDA device ", index, " (", cudaDeviceCount(), " visible)");
      setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
    } else {
      setDevice(c10::Device(c10::DeviceType::CPU));
    }
    return info.Env().Undefined();
  });
}

// setPrecision('fp32' | 'tf32' | 'bf16'): the arithmetic of matrix products.
// TF32 is CUDA's (cuBLAS and cuDNN); on the CPU it changes nothing. bf16 is
// mixed precision (kernels.h: productOperand).
Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    TORCH_CHECK(name == "fp32" || name == "tf32" || name == "bf16", "precision '", name, "' is not fp32, tf32 or bf16");
    const bool tf32 = name == "tf32";
    at::globalContext().setAllowTF32CuBLAS(tf32);
    at::globalContext().setAllowTF32CuDNN(tf32);
    setPrecision(name == "bf16" ? Precision::Bf16 : tf32 ? Precision::Tf32 : Precision::Fp32);
    return info.Env().Undefined();
  });
}

// c10dInit({backend, rank, worldSize, masterAddr, masterPort, timeoutMs}): blocks until every rank has joined.
Napi::Value C10dInit(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Object o = info[0].As<Napi::Object>();
    GroupOptions options;
    options.backend = o.Get("backend").As<Napi::String>().Utf8Value();
    options.rank = o.Get("rank").As<Napi::Number>().Int32Value();
    options.worldSize = o.Get("worldSize").As<Napi::Number>().Int32Value();
    options.masterAddr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
    options.masterPort = o.Get("masterPort").As<Napi::Number>().Int32Value();
    options.timeout = std::chrono::milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
    initGroup(options);
    return info.Env().Undefined();
  });
}

Napi::Value C10dBarrier(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    barrier();
    return info.Env().Undefined();
  });
}

Napi::Value C10dDestroy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    destroyGroup();
    return info.Env().Undefined();
  });
}

Napi::Value C10dBackends(const Napi::CallbackInfo& info) {
  const auto names = c10dBackends();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(i, names[i]);
  return out;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("torch", TORCH_VERSION);
  out.Set("threads", at::get_num_threads());
  out.Set("blas", blasDescription());
  out.Set("cudaDevices", cudaDeviceCount());
  out.Set("device", currentDevice().str());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  installAllocator();
  Napi::Int32Array buffer = Napi::Int32Array::New(env, kOutputCapacity);
  outputs = buffer.Data();
  outputsRef = Napi::Persistent(buffer);
  exports.Set("outputs", buffer);
  exports.Set("kernelId", Napi::Function::New(env, KernelId));
  exports.Set("kernelNames", Napi::Function::New(env, KernelNames));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("release", Napi::Function::New(env, Release));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("setDevice", Napi::Function::New(env, SetDevice));
  exports.Set("setPrecision", Napi::Function::New(env, SetPrecision));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("c10dInit", Napi::Function::New(env, C10dInit));
  exports.Set("c10dBarrier", Napi::Function::New(env, C10dBarrier));
  exports.Set("c10dDestroy", Napi::Function::New(env, C10dDestroy));
  exports.Set("c10dBackends", Napi::Function::New(env, C10dBackends));
  return exports;
}

}  // namespace
}  // namespace normlab

using normlab::Init;
NODE_API_MODULE(normlab_torch, Init)
