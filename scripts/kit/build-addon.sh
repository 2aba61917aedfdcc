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
STD="$("$PY" -c 'import inspect, re, torch.utils.cpp_extension as e; print(max(map(int, re.findall(r"-std=c\+\+(\d+)", inspect.getsource(e))), default=17))' 2>/dev/null | tail -n 1 || true)"
[ "${STD:-0}" -gt 17 ] 2>/dev/null || STD=17

FLAGS=(-O3 -fPIC -pthread -m64 -fno-omit-frame-pointer "-std=gnu++$STD" -fexceptions -frtti -fopenmp
  -Wno-unused-parameter -Wno-deprecated-declarations
  -DNODE_GYP_MODULE_NAME=normlab_torch -DBUILDING_NODE_EXTENSION -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS
  "-D_GLIBCXX_USE_CXX11_ABI=$ABI"
  -I"$HEADERS" -I"$APP/node_modules/node-addon-api" -I"$INC/torch/csrc/api/include")
# /usr/include is searched anyway; naming it with -I breaks libstdc++'s #include_next.
[ "$INC" != /usr/include ] && FLAGS+=(-I"$INC")
LIBS=(-L"$LIB" -ltorch_cpu -lc10)
# Nothing references libtorch_cuda's symbols; without --no-as-needed its CUDA kernels never register.
[ "$CUDA" = 1 ] && LIBS+=(-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed)

# c10d's process groups for data parallel, as scripts/build-torch.ts's findC10d finds them:
# Gloo with its headers; NCCL with a CUDA libtorch, nccl.h and the CUDA runtime's headers.
C10D="$INC/torch/csrc/distributed/c10d" PGS=""
folder_with() { local file="$1"; shift; for d in "$@"; do [ -f "$d/$file" ] && { echo "$d"; return 0; }; done; return 1; }
add_include() { [ "$1" != /usr/include ] && [ "$1" != "$INC" ] && FLAGS+=(-I"$1"); return 0; }
if [ -f "$C10D/ProcessGroupGloo.hpp" ] && d="$(folder_with gloo/algorithm.h "$INC" /usr/include /usr/local/include)"; then
  FLAGS+=(-DUSE_C10D_GLOO) PGS="Gloo" && add_include "$d"
fi
if [ "$CUDA" = 1 ] && [ -f "$C10D/ProcessGroupNCCL.hpp" ]; then
  mapfile -t NVIDIA < <("$PY" -c 'import nvidia, os; [print(os.path.join(p, d, "include")) for p in nvidia.__path__ for d in sorted(os.listdir(p))]' 2>/dev/null || true)
  CANDIDATES=("$INC" "${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}/include" "${NVIDIA[@]}" /usr/include)
  if folder_with nccl.h "${CANDIDATES[@]}" >/dev/null && folder_with cuda_runtime_api.h "${CANDIDATES[@]}" >/dev/null; then
    # ATen's CUDA headers include cuBLAS, cuSPARSE and cuSOLVER's: every candidate folder that exists.
    for d in "${CANDIDATES[@]}"; do [ -d "$d" ] && add_include "$d"; done
    FLAGS+=(-DUSE_C10D_NCCL) PGS="${PGS:+$PGS and }NCCL"
  fi
fi

echo "build-addon: libtorch from $SOURCE, CUDA $CUDA, C++ ABI $ABI, -std=gnu++$STD, c10d: ${PGS:-no process group}"
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
