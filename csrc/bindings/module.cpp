#include <omp.h>

#include "bindings/registry.h"

namespace py = pybind11;

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
  for (auto reg : rerender::bindings::registrars()) reg(m);
}
