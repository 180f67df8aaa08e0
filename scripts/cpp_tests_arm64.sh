#!/usr/bin/env bash
# The C++ tests of the native core built for AArch64 (baseline and NEON variants) and run on an
# x86-64 machine under qemu-aarch64: the NEON kernels against the plain C++ definition, and whole
# syntheses byte for byte on both paths. Cross-compiled with Debian's g++-aarch64-linux-gnu
# (cmake/aarch64-linux-gnu.cmake); the toolchain, qemu-user and the header-only doctest are
# installed from Debian when missing (as root). Emulation makes this slow: several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
[ -f /usr/include/doctest/doctest.h ] || missing+=(doctest-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/cpp_tests_arm64.sh: needs ${missing[*]} (Debian/Ubuntu packages); install them first" >&2
    exit 1
  fi
fi
command -v cmake >/dev/null || .venv/bin/pip install -q cmake
CMAKE=$(command -v cmake || echo .venv/bin/cmake)
CTEST=$(dirname "$CMAKE")/ctest
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
"$CMAKE" -S . -B build/cpp-tests-arm64 "${generator[@]}" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DRERENDER_BUILD_TESTS=ON -DRERENDER_BUILD_MODULE=OFF -DRERENDER_CUDA=OFF >/dev/null
"$CMAKE" --build build/cpp-tests-arm64 -j"$(nproc)"
# (ctest runs the test executables through the toolchain file's CMAKE_CROSSCOMPILING_EMULATOR)
"$CTEST" --test-dir build/cpp-tests-arm64 --output-on-failure
