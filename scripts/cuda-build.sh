#!/usr/bin/env bash
# Builds the trainer with `--features cuda` on a Linux x86_64 machine, with or
# without a GPU, from NVIDIA's CUDA 13.4 Python wheels (nvcc, headers, cudart,
# cuBLAS, cuRAND, NVRTC). No system CUDA toolkit is needed.
#
#   scripts/cuda-build.sh [CARGO ARGS…]   build; prints the binary's path last
#   scripts/cuda-build.sh --check         build, then show that the binary
#                                         starts and that `--device cuda`
#                                         fails cleanly where no GPU is
#                                         reachable (what scripts/test.sh runs)
#
# Everything lives in a cache outside the checkout, so a clean checkout reuses
# it: THINKLING_CUDA_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/thinkling/cuda.
#   toolkit-<version>/             the wheels (pip --target), set up once
#     nvidia/cu13/lib/             their libraries, plus unversioned links
#     nvidia/cu13/lib/stubs/       libcuda stub (link time only, see below)
#   target/                        cargo's target directory (incremental)
#
# libcuda belongs to the GPU driver and is in no wheel. The link uses a stub
# whose soname is libcuda.so.1 and which defines every driver entry point of
# cuda.h (each returns CUDA_ERROR_STUB_LIBRARY), so the binary records
# libcuda.so.1 as needed and the dynamic loader resolves it at start-up: on a
# GPU machine that is the driver's real library (the stub directory is not in
# the binary's run path); here it is the stub, through LD_LIBRARY_PATH, and
# the first driver call fails. The wheels' own libraries are found through the
# binary's run path.
#
# Environment: CUDA_COMPUTE_CAP (default: nvidia-smi's answer, else 90) is the
# GPU architecture candle's kernels are compiled for (PTX, which newer GPUs
# also run).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLKIT=13.4.3          # the cuda-toolkit wheel: CUDA 13.4, the newest cudarc 0.19 knows
CUDARC_VERSION=13040    # the same, as cudarc spells it
CACHE=${THINKLING_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thinkling/cuda}
TK=$CACHE/toolkit-$TOOLKIT
ROOT=$TK/nvidia/cu13

die() { echo "cuda-build: $*" >&2; exit 1; }
say() { echo "cuda-build: $*" >&2; }

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "the CUDA wheels used here are for Linux x86_64 (this is $(uname -s)-$(uname -m))"
command -v cc >/dev/null || die "no C compiler (cc) for the libcuda stub"
command -v c++ >/dev/null || die "no C++ compiler (c++): nvcc needs one as its host compiler"

# --- the toolkit, once -------------------------------------------------------
STUB_VERSION="libcuda stub v2"

# The driver stub: one function per driver entry point declared in cuda.h
# (after its macros, so cuCtxCreate is cuCtxCreate_v2 as in the real one),
# each returning CUDA_ERROR_STUB_LIBRARY (34), which the error functions name.
make_stub() {
  local r=$1 d=$1/lib/stubs
  mkdir -p "$d"
  {
    echo "/* $STUB_VERSION: for linking without a driver */"
    echo 'int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_STUB_LIBRARY"; return 0; }'
    echo 'int cuGetErrorString(int e, const char **s) { *s = "no NVIDIA driver: this libcuda is the link-time stub"; return 0; }'
    cc -E -P -I"$r/include" -x c "$r/include/cuda.h" \
      | grep -oE '\bCUresult[[:space:]]+cu[A-Za-z0-9_]+[[:space:]]*\(' \
      | sed -E 's/^CUresult[[:space:]]+//; s/[[:space:]]*\($//' | sort -u \
      | grep -vxE 'cuGetErrorName|cuGetErrorString' \
      | sed 's/.*/int &(void) { return 34; }/'
  } >"$d/cuda_stub.c.tmp"
  [ "$(grep -c 'return 34' "$d/cuda_stub.c.tmp")" -gt 100 ] \
    || die "could not read the driver API from $r/include/cuda.h"
  cc -shared -fPIC -fno-builtin -Wl,-soname,libcuda.so.1 \
    -o "$d/libcuda.so.1.tmp" -x c "$d/cuda_stub.c.tmp"
  mv -f "$d/libcuda.so.1.tmp" "$d/libcuda.so.1"
  mv -f "$d/cuda_stub.c.tmp" "$d/cuda_stub.c"
  ln -sfn libcuda.so.1 "$d/libcuda.so"
}

install_toolkit() {
  command -v python3 >/dev/null || die "python3 not found; it installs the CUDA wheels (apt-get install python3 python3-pip)"
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d "$CACHE/.toolkit-$TOOLKIT.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  local pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    say "python3 has no pip; making a throwaway virtualenv for it"
    python3 -m venv "$tmp/venv" >/dev/null 2>&1 \
      || die "python3 has neither pip nor venv (apt-get install python3-pip or python3-venv)"
    pip=("$tmp/venv/bin/python" -m pip)
  fi
  say "installing the CUDA $TOOLKIT wheels into $TK (once; about 1 GB)"
  PIP_ROOT_USER_ACTION=ignore nice -n 19 "${pip[@]}" install --quiet --no-input --disable-pip-version-check \
      --target "$tmp/tk" "cuda-toolkit[nvcc,cudart,cccl,cublas,curand,nvrtc]==$TOOLKIT" \
    || die "pip could not download or install the CUDA wheels (network? disk space?); nothing was cached, rerun to retry"
  local r=$tmp/tk/nvidia/cu13
  [ -x "$r/bin/nvcc" ] || die "the wheels have no bin/nvcc (looked in $r/bin)"

  # Unversioned names for the linker (the wheels ship libcudart.so.13 etc.).
  local lib so
  for lib in cudart cublas cublasLt curand nvrtc; do
    so=$(cd "$r/lib" && ls "lib$lib.so."* 2>/dev/null | sort -V | head -n1)
    [ -n "$so" ] || die "no lib$lib.so.* in the wheels ($r/lib)"
    ln -sf "$so" "$r/lib/lib$lib.so"
  done

  make_stub "$r"

  # Complete: publish it in one rename (an interrupted run leaves only a
  # temporary directory, removed on exit or ignored next time).
  rm -rf "$tmp/venv"
  complete || rm -rf "$TK"
  mv -T "$tmp/tk" "$TK" 2>/dev/null || complete || die "could not move the toolkit into $TK"
  rm -rf "$tmp"
  trap - EXIT
}

complete() { [ -x "$ROOT/bin/nvcc" ] && [ -e "$ROOT/lib/stubs/libcuda.so.1" ]; }
complete || install_toolkit
grep -qF "$STUB_VERSION" "$ROOT/lib/stubs/cuda_stub.c" 2>/dev/null || make_stub "$ROOT"
find "$CACHE" -maxdepth 1 -name '.toolkit-*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true

# --- the build -----------------------------------------------------------------
export CUDA_ROOT=$ROOT
export PATH=$ROOT/bin:$PATH
export CUDARC_CUDA_VERSION=$CUDARC_VERSION
export NVCC_APPEND_FLAGS="-I$ROOT/include -I$ROOT/include/cccl${NVCC_APPEND_FLAGS:+ $NVCC_APPEND_FLAGS}"
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ') || true
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
fi
export CARGO_TARGET_DIR=$CACHE/target
# The run path finds the wheels' libraries; libcuda comes from the system.
if [ -n "${RUSTFLAGS:-}" ]; then # it would replace build.rustflags
  export RUSTFLAGS="$RUSTFLAGS -C link-arg=-Wl,-rpath,$ROOT/lib"
  config=()
else
  config=(--config "build.rustflags=['-C', 'link-arg=-Wl,-rpath,$ROOT/lib']")
fi

say "cargo build -p trainer --features cuda $* (sm_$CUDA_COMPUTE_CAP; target $CARGO_TARGET_DIR)"
start=$(date +%s)
nice -n 19 cargo build -p trainer --features cuda "${config[@]}" "$@"
say "built in $(( $(date +%s) - start )) s"

profile=debug prev=
for a in "$@"; do
  case "$prev/$a" in
    */--release) profile=release ;;
    --profile/*) profile=$a ;;
    */--profile=*) profile=${a#--profile=} ;;
  esac
  prev=$a
done
[ "$profile" = dev ] && profile=debug
bin=$CARGO_TARGET_DIR/$profile/trainer
[ -x "$bin" ] || die "no binary at $bin"

if [ "$check" = 1 ]; then
  # Linked against the driver library, found at start-up, not found in the
  # run path (a GPU machine loads its own).
  readelf -d "$bin" | grep -q 'NEEDED.*\[libcuda\.so\.1\]' \
    || die "$bin does not record libcuda.so.1 as needed: it would not load the driver on a GPU machine"
  runpath=$(readelf -d "$bin" | grep -E 'R(UN)?PATH' || true)
  case "$runpath" in
    *stubs*) die "$bin has the stub directory in its run path" ;;
    *"[$ROOT/lib]"* | *"[$ROOT/lib:"* | *":$ROOT/lib]"* | *":$ROOT/lib:"*) ;;
    *) die "$bin does not have $ROOT/lib in its run path ($runpath)" ;;
  esac
  export LD_LIBRARY_PATH=$ROOT/lib/stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  "$bin" --help >/dev/null || die "$bin does not start"
  out=$(mktemp -d)
  set +e
  msg=$("$bin" train --device cuda --preset smoke --steps 1 --out "$out/run" --quiet 2>&1)
  rc=$?
  set -e
  rm -rf "$out"
  echo "$msg" | sed 's/^/  trainer: /' >&2
  [ "$rc" != 0 ] || die "--device cuda succeeded against the driver stub"
  [ "$rc" = 1 ] || die "--device cuda ended with status $rc (a panic or a crash), not a clean error"
  echo "$msg" | grep -qi 'cuda' || die "the error does not mention CUDA"
  say "ok: linked with libcuda.so.1 needed; without a GPU, --device cuda stops with a clear error"
fi
echo "$bin"
