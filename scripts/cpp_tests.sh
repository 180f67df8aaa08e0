#!/usr/bin/env bash
# The C++ tests of the native core (tests/cpp: identities of the ops, SIMD variants, thread-count
# determinism, the shared synthesis schedule, the CUDA kernels in host emulation): configure and
# build them with CMake, run them with ctest. Fails on any failure. doctest (and SIMDe, so that
# the AVX-512 and NEON kernels run on an emulation of their instructions) come from Debian
# packages, installed here when missing (CI runs as root).
#
# `cpp_tests.sh arm64`: the same tests cross-built for AArch64 (baseline and NEON variants) with
# Debian's g++-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake) and run under qemu-aarch64 (ctest
# goes through the toolchain file's CMAKE_CROSSCOMPILING_EMULATOR); emulation makes it slow:
# several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-native}
missing=()
[ -f /usr/include/doctest/doctest.h ] || missing+=(doctest-dev)
case "$target" in
  native)
    [ -f /usr/include/simde/x86/avx512.h ] || missing+=(libsimde-dev)
    build=build/cpp-tests
    cross=() ;;
  arm64)
    command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
    build=build/cpp-tests-arm64
    cross=(-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake) ;;
  *)
    echo "scripts/cpp_tests.sh: unknown target '$target' (native or arm64)" >&2
    exit 2 ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/cpp_tests.sh: the C++ tests need ${missing[*]} (Debian/Ubuntu packages); install them first" >&2
    exit 1
  fi
fi
command -v cmake >/dev/null || .venv/bin/pip install -q cmake
CMAKE=$(command -v cmake || echo .venv/bin/cmake)
CTEST=$(dirname "$CMAKE")/ctest
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
"$CMAKE" -S . -B "$build" "${generator[@]}" "${cross[@]}" -DCMAKE_BUILD_TYPE=Release -DRERENDER_BUILD_TESTS=ON \
  -DRERENDER_BUILD_MODULE=OFF -DRERENDER_CUDA=OFF >/dev/null
"$CMAKE" --build "$build" -j"$(nproc)"
"$CTEST" --test-dir "$build" --output-on-failure
