// The kernels of the variants this CPU cannot run, on SIMDe's emulation of their intrinsics: the
// AVX-512 kernels and, on x86, the NEON ones. They compute the bits of the plain C++ definition,
// as the variants that run natively do (test_simd.cpp). (What this proves is the kernels' order
// of operations; the emulated conversions are SIMDe's own, and NEON's real ones are checked on
// AArch64 under emulation of the whole CPU: scripts/cpp_tests.sh arm64.)
#include <doctest/doctest.h>

#include <vector>

#include "kernel_checks.h"

namespace {
const std::vector<const KernelSet*> emulated = {&kernels_avx512_simde, &kernels_neon_simde};
}

TEST_CASE("emulated AVX-512 and NEON patch SSDs equal the plain C++ definition, bit for bit") {
  kernel_checks::ssd_matches_definition(emulated, 20000);
}

TEST_CASE("emulated AVX-512 and NEON occupancy sums and feature conversions agree with the definition") {
  kernel_checks::occupancy_matches_definition(emulated);
  kernel_checks::conversions_match_definition(emulated);
}
