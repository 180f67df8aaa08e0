// Python binding of the guided patch-based synthesis (CPU). Every argument is validated by
// bindings/synthesis_args.h (shared with the CUDA entry, bindings/cuda/synthesis.cpp); the core
// (csrc/core/synthesis*.cpp) assumes well-formed input.
#include <pybind11/pybind11.h>

#include "bindings/registry.h"
#include "bindings/synthesis_args.h"
#include "core/synthesis.h"

namespace rerender::bindings {
namespace {

py::object synthesize_binding(const py::object& style_obj, const py::object& guides_obj, const py::object& params,
                              const py::object& init_nnf, const py::object& target_mask, const py::object& init_active) {
  HostLoader loader("synthesize");
  const auto args = parse_synthesis_args(loader, style_obj, guides_obj, params, init_nnf, target_mask, init_active);
  std::vector<syn::Guide> guides;
  for (size_t i = 0; i < args.sources.size(); ++i)
    guides.push_back({plane_of(args.sources[i], args.sources[i].data()),
                      plane_of(args.targets[i], args.targets[i].data()), args.weights[i]});
  const uint8_t* mask = args.has_mask ? args.mask.as<uint8_t>() : nullptr;
  loader.budget.need("synthesize working buffers", synthesis_bytes(args));
  syn::Result res;
  without_gil("synthesize", [&] {
    res = syn::synthesize(plane_of(args.style, args.style.data()), guides, args.ht, args.wt, args.nnf_ptr(), mask,
                          args.params, args.active_ptr());
  });
  return result_arrays(loader.budget, res, args.image_shape, args.style.dtype);
}

// SynthesisParams, from the table of bindings/synthesis_args.h: keyword-only construction (defaults
// from syn::Params), read-only properties, replace(**changes), as_dict(), equality, repr, pickling.
void bind_params(py::module_& m) {
  py::class_<syn::Params> cls(m, "SynthesisParams",
                              "Options of one guided synthesis call (immutable; replace() makes a changed copy).");
  cls.def(py::init([](const py::kwargs& kw) { return with_changes(syn::Params{}, kw); }));
  for (const ParamField& f : param_fields()) {
    const auto get = f.get;
    cls.def_property_readonly(f.name, [get](const syn::Params& p) { return get(p); });
  }
  auto as_dict = [](const syn::Params& p) {
    py::dict d;
    for (const ParamField& f : param_fields()) d[f.name] = f.get(p);
    return d;
  };
  cls.def("as_dict", as_dict, "The options by name, in the order of the constructor's keywords.");
  cls.def("replace", [](const syn::Params& p, const py::kwargs& kw) { return with_changes(p, kw); },
          "A copy with the given options changed (checked like the constructor's).");
  cls.def("__eq__", [as_dict](const syn::Params& a, const py::object& b) -> py::object {
    if (!py::isinstance<syn::Params>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    return py::bool_(as_dict(a).equal(as_dict(b.cast<syn::Params>())));
  });
  cls.attr("__hash__") = py::none();
  cls.def("__repr__", [as_dict](const syn::Params& p) {
    std::string out = "SynthesisParams(";
    bool first = true;
    for (const auto& item : as_dict(p)) {
      out += (first ? "" : ", ") + std::string(py::str(item.first)) + "=" + std::string(py::repr(item.second));
      first = false;
    }
    return out + ")";
  });
  cls.def(py::pickle([as_dict](const syn::Params& p) { return as_dict(p); },
                     [](const py::dict& d) { return with_changes(syn::Params{}, d); }));
}

const RegisterBindings reg([](py::module_& m) {
  bind_params(m);
  m.def("synthesize", &synthesize_binding, py::arg("style"), py::arg("guides"), py::arg("params") = py::none(),
        py::arg("init_nnf") = py::none(), py::arg("target_mask") = py::none(), py::arg("init_active") = py::none(),
        "Guided patch-based synthesis (CPU) with the options of `params` (a SynthesisParams; None = the "
        "defaults); init_active (uint8/bool H x W, with init_nnf): zero = the warm start's guess needs no search. Returns (image, nnf int32 H x W x 2 (x, y), error float32 H x W).");
});

}  // namespace
}  // namespace rerender::bindings
