#!/usr/bin/env bash
# The C++ tests of the native core (tests/cpp: identities of the ops, SIMD variants, thread-count
# determinism, the shared synthesis schedule, the CUDA kernels in host emulation): configure and
# build them with CMake, run them with ctest. Fails on any failure. doctest (and SIMDe, so that
# the AVX-512 kernels run on an emulation of their instructions) come from Debian packages,
# installed here when missing (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -f /usr/include/doctest/doctest.h ] || missing+=(doctest-dev)
[ -f /usr/include/simde/x86/avx512.h ] || missing+=(libsimde-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
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
"$CMAKE" -S . -B build/cpp-tests "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DRERENDER_BUILD_TESTS=ON \
  -DRERENDER_BUILD_MODULE=OFF -DRERENDER_CUDA=OFF >/dev/null
"$CMAKE" --build build/cpp-tests -j"$(nproc)"
"$CTEST" --test-dir build/cpp-tests --output-on-failure
