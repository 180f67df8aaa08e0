// Every SIMD variant computes the same bits: the kernels side by side on random data, then whole
// syntheses with each path this CPU supports forced in turn.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/simd.h"
#include "core/synthesis.h"
#include "kernel_checks.h"
#include "synthesis_case.h"

using namespace rerender;

namespace {

// The variants whose kernels this CPU runs: the baseline, AVX2 where the CPU has it (x86-64),
// NEON (AArch64). (AVX-512, and NEON on x86: test_emulated.cpp.)
std::vector<const KernelSet*> native_sets() {
  std::vector<const KernelSet*> sets = {&kernels_baseline};
#if defined(RERENDER_SIMD_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v3")) sets.push_back(&kernels_avx2);
  else MESSAGE("no AVX2 on this CPU: AVX2 kernels not compared");
#elif defined(RERENDER_SIMD_NEON)
  sets.push_back(&kernels_neon);
#endif
  return sets;
}

}  // namespace

TEST_CASE("the patch SSD of every variant this CPU runs equals the plain C++ definition, bit for bit") {
  kernel_checks::ssd_matches_definition(native_sets(), 20000);
}

TEST_CASE("the occupancy sums and feature conversions agree across variants") {
  kernel_checks::occupancy_matches_definition(native_sets());
  kernel_checks::conversions_match_definition(native_sets());
}

TEST_CASE("synthesis gives the same bytes on every SIMD path this CPU supports") {
  const simd::Path before = simd::active();
  const auto paths = simd::supported();
  REQUIRE(paths.front() == simd::Path::Baseline);
  for (const SynthesisCase& c : synthesis_cases()) {
    std::vector<synthesis::Result> results;
    for (simd::Path path : paths) {
      REQUIRE(simd::set_active(path));
      results.push_back(c.run(2));
    }
    for (size_t i = 1; i < results.size(); ++i) {
      INFO(c.name, ": ", simd::name(paths[i]), " vs ", simd::name(paths[0]));
      CHECK(results[i].nnf == results[0].nnf);
      CHECK(std::memcmp(results[i].image.data(), results[0].image.data(), results[0].image.size() * 4) == 0);
      CHECK(std::memcmp(results[i].error.data(), results[0].error.data(), results[0].error.size() * 4) == 0);
    }
  }
  simd::set_active(before);
  MESSAGE("SIMD paths compared: ", paths.size());
}

TEST_CASE("path names: every name parses back, 'baseline' names the baseline, the CPU's paths as built") {
  for (simd::Path p : {simd::Path::Baseline, simd::Path::Avx2, simd::Path::Avx512, simd::Path::Neon}) {
    simd::Path q;
    REQUIRE(simd::parse(simd::name(p), q));
    CHECK(q == p);
  }
  simd::Path q = simd::Path::Neon;
  CHECK(simd::parse("baseline", q));
  CHECK(q == simd::Path::Baseline);
  CHECK_FALSE(simd::parse("avx9", q));
#if defined(RERENDER_SIMD_NEON)
  CHECK(simd::supported() == std::vector<simd::Path>{simd::Path::Baseline, simd::Path::Neon});
  CHECK(std::string(simd::name(simd::Path::Baseline)) == "scalar");
#elif defined(RERENDER_SIMD_X86)
  CHECK_FALSE(simd::is_supported(simd::Path::Neon));
  CHECK(std::string(simd::name(simd::Path::Baseline)) == "sse2");
#endif
  const simd::Path before = simd::active();
  for (simd::Path p : {simd::Path::Avx2, simd::Path::Avx512, simd::Path::Neon})
    if (!simd::is_supported(p)) CHECK_FALSE(simd::set_active(p));  // refused, and nothing changes
  CHECK(simd::active() == before);
}
