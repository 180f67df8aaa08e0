// Python bindings of backward warping and the forward-backward occlusion check (CPU).
#include "core/occlusion.h"
#include "core/warp.h"

#include "bindings/ops_args.h"
#include "bindings/registry.h"

namespace rerender::bindings {
namespace {

py::object warp_binding(const py::object& image, const py::object& flow, const std::string& mode,
                        bool return_valid, int threads) {
  HostLoader loader("warp");
  const auto args = parse_warp_args(loader, image, flow, mode, threads);
  const Image& img = args.image;
  py::array out = empty_like(loader.budget, img);
  py::array_t<uint8_t> valid = return_valid ? empty_mask(loader.budget, img.h, img.w, "valid map") : py::array_t<uint8_t>();
  uint8_t* valid_ptr = return_valid ? valid.mutable_data() : nullptr;
  without_gil("warp", [&] {
    if (img.dtype == DType::U8)
      warp(view<uint8_t>(img), view<float>(args.flow), args.mode, mutable_view<uint8_t>(out, img), valid_ptr, threads);
    else
      warp(view<float>(img), view<float>(args.flow), args.mode, mutable_view<float>(out, img), valid_ptr, threads);
  });
  if (return_valid) return py::make_tuple(out, valid);
  return std::move(out);
}

py::array occlusion_binding(const py::object& flow_ab, const py::object& flow_ba, double alpha1,
                            double alpha2, int threads) {
  HostLoader loader("occlusion");
  const auto args = parse_occlusion_args(loader, flow_ab, flow_ba, alpha1, alpha2, threads);
  auto mask = empty_mask(loader.budget, args.forward.h, args.forward.w, "result");
  uint8_t* mask_ptr = mask.mutable_data();
  without_gil("occlusion", [&] {
    occlusion(view<float>(args.forward), view<float>(args.backward), static_cast<float>(alpha1),
              static_cast<float>(alpha2), mask_ptr, threads);
  });
  return std::move(mask);
}

const RegisterBindings reg([](py::module_& m) {
  m.def("warp", &warp_binding, py::arg("image"), py::arg("flow"), py::arg("mode") = "bilinear",
        py::arg("return_valid") = false, py::arg("threads") = 0,
        "Backward warp out(x) = image(x + flow(x)) with border clamp (CPU). With return_valid, "
        "also a uint8 H x W map, 1 where the sample lay inside the frame.");
  m.def("occlusion", &occlusion_binding, py::arg("flow_ab"), py::arg("flow_ba"),
        py::arg("alpha1") = 0.01, py::arg("alpha2") = 0.5, py::arg("threads") = 0,
        "Forward-backward occlusion mask (uint8 H x W, 1 = occluded) on flow_ab's grid (CPU).");
});

}  // namespace
}  // namespace rerender::bindings
