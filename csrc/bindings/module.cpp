#include <omp.h>

#include <cstdlib>
#include <string>

#include "bindings/registry.h"
#include "core/simd.h"

namespace py = pybind11;

namespace {

namespace simd = rerender::simd;

std::string supported_names() {
  std::string s;
  for (simd::Path p : simd::supported()) s += (s.empty() ? "" : ", ") + std::string(simd::name(p));
  return s;
}

// Force the SIMD path by name; `what` names the setting in errors (the argument or the variable).
void select_simd(const std::string& path, const std::string& what) {
  simd::Path p;
  if (!simd::parse(path, p))
    throw py::value_error(what + ": unknown SIMD path '" + path + "' (this CPU supports: " + supported_names() + ")");
  if (!simd::set_active(p))
    throw py::value_error(what + ": this CPU does not support '" + path + "' (it supports: " + supported_names() + ")");
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "rerender native core: guided PatchMatch synthesis, histogram-preserving blending, "
            "forward-backward occlusion checks and warping (CPU; CUDA when compiled in).";
  m.def("max_threads", [] { return omp_get_max_threads(); },
        "Number of OpenMP threads a call uses when threads=0.");
  m.def("compiled_backends", [] {
    py::list out;
    out.append("cpu");
#ifdef RERENDER_WITH_CUDA
    out.append("cuda");
#endif
    return out;
  }, "Backends compiled into this module (\"cpu\" always, \"cuda\" when built with CUDA).");

  m.def("simd", [] { return std::string(simd::name(simd::active())); },
        "The SIMD path CPU calls use now: 'avx512', 'avx2', 'sse2' (x86-64 baseline) or 'scalar' (other "
        "architectures). Chosen at import from this CPU, or by RERENDER_SIMD.");
  m.def("simd_paths", [] {
    py::list out;
    for (simd::Path p : simd::supported()) out.append(simd::name(p));
    return out;
  }, "The SIMD paths this module and CPU support, baseline first.");
  m.def("set_simd", [](const std::string& path) { select_simd(path, "path"); }, py::arg("path"),
        "Force a SIMD path (one of simd_paths()); every path gives the same bytes. For tests, benchmarks "
        "and bug reports.");
  // RERENDER_SIMD=sse2|avx2|avx512 forces a path for the whole process (an unknown or unsupported
  // value fails the import: it was asked for explicitly).
  if (const char* env = std::getenv("RERENDER_SIMD"); env && *env) select_simd(env, "RERENDER_SIMD");

  for (auto reg : rerender::bindings::registrars()) reg(m);
}
