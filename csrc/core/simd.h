// Which SIMD variant of the synthesis runs (see simd_variant.h): chosen at run time from what
// this CPU supports, so that one binary runs everywhere and uses the CPU it finds. Every variant
// gives the same bytes; forcing one (set_active) is for tests, benchmarks and bug reports.
#pragma once
#include <string>
#include <vector>

namespace rerender::simd {

enum class Path { Baseline, Avx2, Avx512 };

// "sse2" (the x86-64 baseline) or "scalar" (other architectures), "avx2" (x86-64-v3), "avx512"
// (x86-64-v4).
const char* name(Path path);
// The path of that name, if the name is known (on any CPU); false otherwise.
bool parse(const std::string& name, Path& path);
// Paths compiled in and supported by this CPU, baseline first.
std::vector<Path> supported();
bool is_supported(Path path);
// The path calls use now: the fastest supported one unless set_active chose another.
Path active();
// Returns false (and changes nothing) when the path is not supported here. Thread-safe; calls
// already running keep the path they started with.
bool set_active(Path path);

}  // namespace rerender::simd
