// Python bindings of histogram-preserving blending and the min-error combination (CPU).
#include "core/histblend.h"

#include "bindings/ops_args.h"
#include "bindings/registry.h"

namespace rerender::bindings {
namespace {

py::array histogram_blend_binding(const py::object& a_obj, const py::object& b_obj,
                                  const py::object& weight_obj, const py::object& ref_obj, int threads) {
  HostLoader loader("histogram_blend");
  const auto args = parse_blend_args(loader, a_obj, b_obj, weight_obj, ref_obj, threads);
  const Image& a = args.a;
  const Image& b = args.b;
  py::array out = empty_like(loader.budget, a);
  loader.budget.need("histogram_blend working buffers",
                     histogram_blend_working_bytes(a.h, a.w, a.c, args.has_reference ? args.reference.h : 0,
                                                   args.has_reference ? args.reference.w : 0, a.dtype == DType::F32,
                                                   threads));
  BlendWeight weight;
  weight.scalar = args.weight_scalar;
  weight.per_pixel = args.has_weight_map ? args.weight_map.as<float>() : nullptr;
  without_gil("histogram_blend", [&] {
    if (a.dtype == DType::U8) {
      const auto ref = args.has_reference ? view<uint8_t>(args.reference) : ImageView<const uint8_t>();
      histogram_blend(view<uint8_t>(a), view<uint8_t>(b), weight, ref, mutable_view<uint8_t>(out, a), threads);
    } else {
      const auto ref = args.has_reference ? view<float>(args.reference) : ImageView<const float>();
      histogram_blend(view<float>(a), view<float>(b), weight, ref, mutable_view<float>(out, a), threads);
    }
  });
  return out;
}

py::tuple min_error_combine_binding(const py::object& a_obj, const py::object& b_obj,
                                    const py::object& ea_obj, const py::object& eb_obj, int threads) {
  HostLoader loader("min_error_combine");
  const auto args = parse_combine_args(loader, a_obj, b_obj, ea_obj, eb_obj, threads);
  const Image& a = args.a;
  py::array out = empty_like(loader.budget, a);
  auto mask = empty_mask(loader.budget, a.h, a.w, "mask");
  uint8_t* mask_ptr = mask.mutable_data();
  const float* ea = args.error_a.as<float>();
  const float* eb = args.error_b.as<float>();
  without_gil("min_error_combine", [&] {
    if (a.dtype == DType::U8)
      min_error_combine(view<uint8_t>(a), view<uint8_t>(args.b), ea, eb, mutable_view<uint8_t>(out, a), mask_ptr, threads);
    else
      min_error_combine(view<float>(a), view<float>(args.b), ea, eb, mutable_view<float>(out, a), mask_ptr, threads);
  });
  return py::make_tuple(out, mask);
}

const RegisterBindings reg([](py::module_& m) {
  m.def("histogram_blend", &histogram_blend_binding, py::arg("a"), py::arg("b"), py::arg("weight_a"),
        py::arg("reference") = py::none(), py::arg("threads") = 0,
        "Histogram-preserving blend of a and b (Heitz & Neyret 2018), weight_a a scalar or float32 "
        "H x W map in [0, 1] (CPU).");
  m.def("min_error_combine", &min_error_combine_binding, py::arg("a"), py::arg("b"), py::arg("error_a"),
        py::arg("error_b"), py::arg("threads") = 0,
        "Per pixel, a where error_a <= error_b else b; returns (image, uint8 mask 1 where a) (CPU).");
});

}  // namespace
}  // namespace rerender::bindings
