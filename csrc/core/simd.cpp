#include "core/simd.h"

#include <atomic>

namespace rerender::simd {
namespace {

#if defined(RERENDER_SIMD_X86)
// The variants are compiled for the x86-64 psABI levels v3 and v4 (simd_variant.h).
bool cpu_has(Path path) {
  __builtin_cpu_init();  // (also checks that the OS saves the wider registers)
  switch (path) {
    case Path::Baseline: return true;
    case Path::Avx2: return __builtin_cpu_supports("x86-64-v3");
    case Path::Avx512: return __builtin_cpu_supports("x86-64-v4");
  }
  return false;
}
#else
bool cpu_has(Path path) { return path == Path::Baseline; }
#endif

Path fastest() {
  for (Path p : {Path::Avx512, Path::Avx2})
    if (cpu_has(p)) return p;
  return Path::Baseline;
}

std::atomic<Path>& current() {
  static std::atomic<Path> path{fastest()};
  return path;
}

}  // namespace

const char* name(Path path) {
  switch (path) {
    case Path::Avx512: return "avx512";
    case Path::Avx2: return "avx2";
    case Path::Baseline: break;
  }
#if defined(__x86_64__) || defined(_M_X64)
  return "sse2";
#else
  return "scalar";
#endif
}

bool parse(const std::string& text, Path& path) {
  for (Path p : {Path::Baseline, Path::Avx2, Path::Avx512})
    if (text == name(p)) {
      path = p;
      return true;
    }
  return false;
}

bool is_supported(Path path) { return cpu_has(path); }

std::vector<Path> supported() {
  std::vector<Path> out;
  for (Path p : {Path::Baseline, Path::Avx2, Path::Avx512})
    if (cpu_has(p)) out.push_back(p);
  return out;
}

Path active() { return current().load(std::memory_order_relaxed); }

bool set_active(Path path) {
  if (!cpu_has(path)) return false;
  current().store(path, std::memory_order_relaxed);
  return true;
}

}  // namespace rerender::simd
