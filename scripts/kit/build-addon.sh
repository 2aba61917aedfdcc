#!/usr/bin/env bash
# Builds the torch backend's addon in the GPU kit without node-gyp: g++ on every
# native/src/*.cc with the flags native/binding.gyp gives node-gyp (mirrored here;
# keep the two in step), against the libtorch scripts/build-torch.ts would pick:
#   NORMLAB_LIBTORCH=<dir>   an unpacked libtorch (include/, lib/)
#   python3's torch          a pip-installed PyTorch, via torch.utils.cmake_prefix_path
#   the system               Debian/Ubuntu's libtorch-dev
# Usage: build-addon.sh <node-headers dir>; writes native/build/Release/normlab_torch.node.
set -euo pipefail
APP="$(cd "$(dirname "$0")" && pwd)"
HEADERS="$(cd "$1" && pwd)"
OUT="$APP/native/build/Release/normlab_torch.node"
OBJ="$APP/native/build/obj"
PY="${PYTHON:-python3}"

is_libtorch() { [ -f "$1/ATen/ATen.h" ] && [ -f "$2/libtorch_cpu.so" ] && [ -f "$2/libc10.so" ]; }

INC="" LIB="" SOURCE=""
if [ -n "${NORMLAB_LIBTORCH:-}" ]; then
  INC="$NORMLAB_LIBTORCH/include" LIB="$NORMLAB_LIBTORCH/lib" SOURCE="NORMLAB_LIBTORCH"
elif ROOT="$("$PY" -c 'import os, torch.utils; print(os.path.dirname(os.path.dirname(torch.utils.cmake_prefix_path)))' 2>/dev/null)" &&
     is_libtorch "$ROOT/include" "$ROOT/lib"; then
  INC="$ROOT/include" LIB="$ROOT/lib" SOURCE="$PY torch ($ROOT)"
else
  for lib in "/usr/lib/$(uname -m)-linux-gnu" /usr/lib /usr/local/lib; do
    if is_libtorch /usr/include "$lib"; then INC=/usr/include LIB="$lib" SOURCE="system ($lib)"; break; fi
  done
fi
if ! is_libtorch "$INC" "$LIB"; then
  echo "build-addon: no libtorch found (python3's torch, NORMLAB_LIBTORCH, or libtorch-dev)" >&2
  exit 1
fi

# Old pip wheels use the pre-C++11 std::string ABI; the addon must match the library.
ABI=0; grep -q __cxx11 "$LIB/libc10.so" && ABI=1
CUDA=0; [ -f "$LIB/libtorch_cuda.so" ] && CUDA=1
# C++17 (node-gyp's), or newer where PyTorch builds its extensions so.
STD="$("$PY" -c 'import inspect, re, torch.utils.cpp_extension as e; print(max(map(int, re.findall(r"-std=c\+\+(\d+)", inspect.getsource(e))), default=17))' 2>/dev/null | tail -n 1)"
[ "${STD:-0}" -gt 17 ] 2>/dev/null || STD=17

FLAGS=(-O3 -fPIC -pthread -m64 -fno-omit-frame-pointer "-std=gnu++$STD" -fexceptions -frtti -fopenmp
  -Wno-unused-parameter -Wno-deprecated-declarations
  -DNODE_GYP_MODULE_NAME=normlab_torch -DBUILDING_NODE_EXTENSION -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS
  "-D_GLIBCXX_USE_CXX11_ABI=$ABI"
  -I"$HEADERS" -I"$APP/node_modules/node-addon-api" -I"$INC/torch/csrc/api/include")
# /usr/include is searched anyway; naming it with -I breaks libstdc++'s #include_next.
[ "$INC" != /usr/include ] && FLAGS+=(-I"$INC")
# c10d's process groups, where this libtorch has them (PyTorch's own macros).
[ -f "$INC/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp" ] && FLAGS+=(-DUSE_C10D_GLOO)
LIBS=(-L"$LIB" -ltorch_cpu -lc10)
if [ "$CUDA" = 1 ]; then
  [ -f "$INC/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp" ] && FLAGS+=(-DUSE_C10D_NCCL)
  # CUDA's and NCCL's headers: the toolkit, and pip's nvidia-* packages beside torch.
  for d in "${CUDA_HOME:-/usr/local/cuda}/include" "$(dirname "$(dirname "$(command -v nvcc || echo /none/bin/nvcc)")")/include" \
           "$LIB"/../../nvidia/*/include "$LIB"/../../nvidia/*/*/include; do
    [ -d "$d" ] && FLAGS+=(-I"$d")
  done
  # Nothing references libtorch_cuda's symbols; without --no-as-needed its CUDA kernels never register.
  LIBS+=(-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed)
fi

echo "build-addon: libtorch from $SOURCE, CUDA $CUDA, C++ ABI $ABI, -std=gnu++$STD"
rm -rf "$OBJ" && mkdir -p "$OBJ" "$(dirname "$OUT")"
# Every source file, whatever is added to native/src; one compiler per core.
JOBS="$(nproc)" pids=()
for src in "$APP"/native/src/*.cc; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  g++ "${FLAGS[@]}" -c "$src" -o "$OBJ/$(basename "$src" .cc).o" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" = 0 ] || { echo "build-addon: compiling failed (errors above)" >&2; exit 1; }
g++ -shared -pthread -fopenmp -o "$OUT" "$OBJ"/*.o -Wl,-rpath,"$LIB" "${LIBS[@]}"
echo "build-addon: built $OUT"
