#!/usr/bin/env bash
# The whole test suite: installs what it needs when missing, then checks the
# no_std runtime builds for the boards, runs every test (release profile:
# candle in a debug build is far too slow to train in tests) and a short run
# of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

for target in thumbv7em-none-eabihf thumbv7em-none-eabi thumbv8m.main-none-eabihf riscv32imac-unknown-none-elf; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
if ! command -v qemu-system-arm >/dev/null; then
  as_root apt-get update -qq && as_root apt-get install -y -qq qemu-system-arm
fi
command -v defmt-print >/dev/null || cargo install defmt-print --locked
# The firmware's linker (.cargo/config.toml): the stack below the static data.
command -v flip-link >/dev/null || cargo install flip-link --locked
# libfuzzer-sys builds libFuzzer from its C++ sources.
if ! command -v c++ >/dev/null; then
  as_root apt-get update -qq && as_root apt-get install -y -qq g++
fi

echo "== runtime builds for the boards (no_std)"
cargo build -q --release -p runtime --target thumbv7em-none-eabihf
# Cortex-M4 without the FPU ABI: the DSP kernels that need no FPU.
cargo build -q --release -p runtime --target thumbv7em-none-eabi
# Cortex-M33 (Armv8-M Mainline) with the DSP extension (target-cpu in
# .cargo/config.toml): the same Arm kernels as the Cortex-M4F.
cargo build -q --release -p runtime --target thumbv8m.main-none-eabihf
cargo build -q --release -p runtime --target riscv32imac-unknown-none-elf

echo "== tests"
cargo test --release --workspace "$@"

# The CUDA build: nvcc and the CUDA libraries from NVIDIA's wheels, cached
# outside the checkout (the first run downloads ~1 GB and compiles candle's
# kernels: 99 minutes measured with both cores busy with other work; later
# runs rebuild what changed, seconds to a minute or two). No GPU needed: the
# binary links against a driver stub and must stop cleanly at the first
# driver call. The cold build would not fit a test run's time, so it runs
# here when the cache exists (scripts/cuda-build.sh made it once) or when
# THINKLING_CUDA=1 asks; THINKLING_SKIP_CUDA=1 skips this step.
echo "== trainer --features cuda builds and links (scripts/cuda-build.sh)"
cuda_cache=${THINKLING_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thinkling/cuda}
if [ "${THINKLING_SKIP_CUDA:-0}" = 1 ]; then
  echo "skipped: THINKLING_SKIP_CUDA=1"
elif [ "${THINKLING_CUDA:-0}" != 1 ] && ! compgen -G "$cuda_cache/toolkit-*/nvidia" >/dev/null; then
  echo "skipped: no CUDA toolkit cache in $cuda_cache (run scripts/cuda-build.sh once, or THINKLING_CUDA=1)"
else
  ./scripts/cuda-build.sh --check >/dev/null
fi
# Coverage-guided fuzzing, about 30 s per target (the long runs and their
# figures: docs/fuzzing.md). THINKLING_FUZZ_SECONDS changes the time.
echo "== fuzz"
./scripts/fuzz.sh --time "${THINKLING_FUZZ_SECONDS:-30}"
