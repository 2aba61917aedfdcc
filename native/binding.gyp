# The torch backend's addon. scripts/build-torch.ts finds a libtorch and passes
# its paths in; built by `npm install` (or `npm run install`) when one is found.
{
  "variables": {
    "torch_include%": "/usr/include",
    "torch_lib%": "/usr/lib/x86_64-linux-gnu",
    "torch_cxx11_abi%": "1",
    "torch_cuda%": "0",
    # c10d process groups for data parallel (distributed.cc): Gloo's and NCCL's headers, when found.
    "c10d_gloo%": "0",
    "c10d_nccl%": "0",
    "c10d_include_dirs%": "",
  },
  "targets": [{
    "target_name": "normlab_torch",
    "sources": ["src/addon.cc", "src/kernels.cc", "src/fused.cc", "src/attention.cc", "src/allocator.cc", "src/distributed.cc"],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "<(torch_include)/torch/csrc/api/include",
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=<(torch_cxx11_abi)"],
    # Node's common.gypi compiles without exceptions and RTTI; ATen's headers need both.
    # Without -fopenmp, at::parallel_for (inline in ATen's headers) runs on one thread.
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-fexceptions", "-frtti", "-fopenmp", "-Wno-unused-parameter"],
    "ldflags": ["-fopenmp", "-Wl,-rpath,<(torch_lib)"],
    "libraries": ["-L<(torch_lib)", "-ltorch_cpu", "-lc10"],
    "conditions": [
      # /usr/include is searched anyway; naming it with -I breaks libstdc++'s #include_next.
      ["torch_include!='/usr/include'", {"include_dirs": ["<(torch_include)"]}],
      # Nothing references libtorch_cuda's symbols; without --no-as-needed its CUDA kernels never register.
      ["torch_cuda==1", {"libraries": ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"]}],
      ["c10d_gloo==1", {"defines": ["USE_C10D_GLOO"]}],
      ["c10d_nccl==1", {"defines": ["USE_C10D_NCCL"]}],
      ["c10d_include_dirs!=''", {"include_dirs": ["<@(c10d_include_dirs)"]}],
    ],
  }],
}
