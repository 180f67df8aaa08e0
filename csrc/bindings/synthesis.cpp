// Python binding of the guided patch-based synthesis (CPU). Every argument is validated by
// bindings/synthesis_args.h (shared with the CUDA entry, bindings/cuda/synthesis.cpp); the core
// (csrc/core/synthesis*.cpp) assumes well-formed input.
#include <pybind11/pybind11.h>

#include "bindings/registry.h"
#include "bindings/synthesis_args.h"
#include "core/synthesis.h"

namespace rerender::bindings {
namespace {

py::object synthesize_binding(const py::object& style_obj, const py::object& guides_obj,
                              const py::object& style_weight, const py::object& patch_size,
                              const py::object& pyramid_levels, const py::object& search_vote_iters,
                              const py::object& patchmatch_iters, const py::object& uniformity,
                              const py::object& stop_threshold, const py::object& init_nnf,
                              const py::object& target_mask, const py::object& seed, const py::object& threads) {
  HostLoader loader("synthesize");
  const auto args = parse_synthesis_args(loader, style_obj, guides_obj, style_weight, patch_size, pyramid_levels,
                                         search_vote_iters, patchmatch_iters, uniformity, stop_threshold, init_nnf,
                                         target_mask, seed, threads);
  std::vector<syn::Guide> guides;
  for (size_t i = 0; i < args.sources.size(); ++i)
    guides.push_back({plane_of(args.sources[i], args.sources[i].data()),
                      plane_of(args.targets[i], args.targets[i].data()), args.weights[i]});
  const uint8_t* mask = args.has_mask ? args.mask.as<uint8_t>() : nullptr;
  loader.budget.need("synthesize working buffers", synthesis_bytes(args));
  syn::Result res;
  without_gil("synthesize", [&] {
    res = syn::synthesize(plane_of(args.style, args.style.data()), guides, args.ht, args.wt, args.nnf_ptr(), mask,
                          args.params);
  });
  return result_arrays(loader.budget, res, args.image_shape, args.style.dtype);
}

const RegisterBindings reg([](py::module_& m) {
  m.def("synthesize", &synthesize_binding, py::arg("style"), py::arg("guides"), py::arg("style_weight") = 1.0,
        py::arg("patch_size") = 5, py::arg("pyramid_levels") = py::none(), py::arg("search_vote_iters") = 12,
        py::arg("patchmatch_iters") = 6, py::arg("uniformity") = 3500.0, py::arg("stop_threshold") = 5.0,
        py::arg("init_nnf") = py::none(), py::arg("target_mask") = py::none(), py::arg("seed") = 0,
        py::arg("threads") = 0,
        "Guided patch-based synthesis (CPU). Returns (image, nnf int32 H x W x 2 (x, y), error float32 H x W).");
});

}  // namespace
}  // namespace rerender::bindings
