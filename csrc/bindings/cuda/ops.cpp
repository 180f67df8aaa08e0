// Python bindings of the CUDA backend: device probe, CudaArray, and the CUDA variants of warp,
// occlusion, histogram_blend and min_error_combine (named cuda_<op>; same arguments and the same
// validation as the CPU ops; `threads` is checked for parity and otherwise unused).
#include "core/histblend.h"
#include "cuda/ops.h"
#include "cuda/runtime.h"

#include "bindings/cuda/device_args.h"
#include "bindings/registry.h"

namespace rerender::bindings {
namespace {

py::object cuda_warp(const py::object& image, const py::object& flow, const std::string& mode, bool return_valid,
                     int threads) {
  DeviceLoader loader("cuda_warp");
  auto args = parse_warp_args(loader, image, flow, mode, threads);
  const Image& m = args.image.meta;
  const int device = loader.device();
  cuda::DeviceGuard guard(device);
  CudaArray out = device_output(args.image.shape, m.dtype, device, "cuda_warp result");
  CudaArray valid = return_valid ? device_output({m.h, m.w}, DType::U8, device, "cuda_warp valid map") : CudaArray();
  {
    py::gil_scoped_release nogil;
    upload(args.image);
    upload(args.flow);
    uint8_t* valid_ptr = return_valid ? valid.buffer->as<uint8_t>() : nullptr;
    const bool nearest = args.mode == WarpMode::Nearest;
    if (m.dtype == DType::U8)
      cuda::warp(args.image.as<uint8_t>(), args.flow.as<float>(), m.h, m.w, m.c, nearest,
                 out.buffer->as<uint8_t>(), valid_ptr);
    else
      cuda::warp(args.image.as<float>(), args.flow.as<float>(), m.h, m.w, m.c, nearest, out.buffer->as<float>(),
                 valid_ptr);
  }
  if (return_valid) return py::make_tuple(deliver(out, loader), deliver(valid, loader));
  return deliver(out, loader);
}

py::object cuda_occlusion(const py::object& flow_ab, const py::object& flow_ba, double alpha1, double alpha2,
                          int threads) {
  DeviceLoader loader("cuda_occlusion");
  auto args = parse_occlusion_args(loader, flow_ab, flow_ba, alpha1, alpha2, threads);
  const Image& m = args.forward.meta;
  const int device = loader.device();
  cuda::DeviceGuard guard(device);
  CudaArray mask = device_output({m.h, m.w}, DType::U8, device, "cuda_occlusion result");
  {
    py::gil_scoped_release nogil;
    upload(args.forward);
    upload(args.backward);
    cuda::occlusion(args.forward.as<float>(), args.backward.as<float>(), m.h, m.w, static_cast<float>(alpha1),
                    static_cast<float>(alpha2), mask.buffer->as<uint8_t>());
  }
  return deliver(mask, loader);
}

// Host tables of one uint8 image, channel-major (c * 256 each).
struct HostByteTables {
  std::vector<double> to_gauss, upper;
};

HostByteTables byte_tables(const DeviceArg& img) {
  const int c = img.meta.c;
  const size_t n = static_cast<size_t>(img.meta.h) * img.meta.w;
  std::vector<uint64_t> hist(static_cast<size_t>(c) * 256);
  cuda::byte_histograms(img.as<uint8_t>(), n, c, hist.data());
  HostByteTables t;
  t.to_gauss.resize(static_cast<size_t>(c) * 256);
  t.upper.resize(static_cast<size_t>(c) * 256);
  for (int ch = 0; ch < c; ++ch) {
    const ByteCdf cdf = byte_cdf(&hist[static_cast<size_t>(ch) * 256]);  // the CPU's tables
    std::copy(cdf.to_gauss, cdf.to_gauss + 256, t.to_gauss.begin() + ch * 256);
    std::copy(cdf.upper, cdf.upper + 256, t.upper.begin() + ch * 256);
  }
  return t;
}

py::object cuda_histogram_blend(const py::object& a_obj, const py::object& b_obj, const py::object& weight_obj,
                                const py::object& ref_obj, int threads) {
  DeviceLoader loader("cuda_histogram_blend");
  auto args = parse_blend_args(loader, a_obj, b_obj, weight_obj, ref_obj, threads, /*max_pixels=*/0x7FFFFFFFull);
  const Image& m = args.a.meta;
  const int device = loader.device();
  cuda::DeviceGuard guard(device);
  CudaArray out = device_output(args.a.shape, m.dtype, device, "cuda_histogram_blend result");
  {
    py::gil_scoped_release nogil;
    upload(args.a);
    upload(args.b);
    if (args.has_weight_map) upload(args.weight_map);
    if (args.has_reference) upload(args.reference);
    const float* wmap = args.has_weight_map ? args.weight_map.as<float>() : nullptr;
    const size_t n = static_cast<size_t>(m.h) * m.w;
    if (m.dtype == DType::U8) {
      const HostByteTables ta = byte_tables(args.a), tb = byte_tables(args.b);
      const HostByteTables tr = args.has_reference ? byte_tables(args.reference) : HostByteTables();
      const cuda::ByteTables tables{ta.to_gauss.data(), tb.to_gauss.data(), ta.upper.data(), tb.upper.data(),
                                    args.has_reference ? tr.upper.data() : nullptr};
      cuda::blend_bytes(args.a.as<uint8_t>(), args.b.as<uint8_t>(), wmap, args.weight_scalar, n, m.c, tables,
                        out.buffer->as<uint8_t>());
    } else {
      const Image& r = args.reference.meta;
      const size_t n_ref = args.has_reference ? static_cast<size_t>(r.h) * r.w : 0;
      cuda::blend_floats(args.a.as<float>(), args.b.as<float>(), wmap, args.weight_scalar, n, m.c,
                         args.has_reference ? args.reference.as<float>() : nullptr, n_ref, out.buffer->as<float>());
    }
  }
  return deliver(out, loader);
}

py::tuple cuda_min_error_combine(const py::object& a_obj, const py::object& b_obj, const py::object& ea_obj,
                                 const py::object& eb_obj, int threads) {
  DeviceLoader loader("cuda_min_error_combine");
  auto args = parse_combine_args(loader, a_obj, b_obj, ea_obj, eb_obj, threads);
  const Image& m = args.a.meta;
  const int device = loader.device();
  cuda::DeviceGuard guard(device);
  CudaArray out = device_output(args.a.shape, m.dtype, device, "cuda_min_error_combine result");
  CudaArray mask = device_output({m.h, m.w}, DType::U8, device, "cuda_min_error_combine mask");
  {
    py::gil_scoped_release nogil;
    upload(args.a);
    upload(args.b);
    upload(args.error_a);
    upload(args.error_b);
    const size_t n = static_cast<size_t>(m.h) * m.w;
    if (m.dtype == DType::U8)
      cuda::min_error_combine(args.a.as<uint8_t>(), args.b.as<uint8_t>(), args.error_a.as<float>(),
                              args.error_b.as<float>(), n, m.c, out.buffer->as<uint8_t>(), mask.buffer->as<uint8_t>());
    else
      cuda::min_error_combine(args.a.as<float>(), args.b.as<float>(), args.error_a.as<float>(),
                              args.error_b.as<float>(), n, m.c, out.buffer->as<float>(), mask.buffer->as<uint8_t>());
  }
  return py::make_tuple(deliver(out, loader), deliver(mask, loader));
}

const RegisterBindings reg([](py::module_& m) {
  // CUDA failures (launch errors, a lost device) surface as RuntimeError with CUDA's message, and
  // running out of device memory as MemoryError (registered last: tried first).
  py::register_exception<cuda::Error>(m, "CudaError", PyExc_RuntimeError);
  py::register_exception<cuda::OutOfMemory>(m, "CudaOutOfMemoryError", PyExc_MemoryError);

  m.def("cuda_device_count", [] { return cuda::device_count(); },
        "(number of usable CUDA devices, reason when 0); never raises, also without a driver.");
  m.def("cuda_device_name", [](int device) { return cuda::device_name(device); }, py::arg("device") = 0,
        "Name of a CUDA device (for reports).");

  py::class_<CudaArray>(m, "CudaArray", "A result in CUDA device memory (exposes __cuda_array_interface__).")
      .def_property_readonly("__cuda_array_interface__", &CudaArray::interface)
      .def_property_readonly("shape", [](const CudaArray& a) {
        py::tuple t(a.shape.size());
        for (size_t i = 0; i < a.shape.size(); ++i) t[i] = a.shape[i];
        return t;
      })
      .def_property_readonly("dtype", [](const CudaArray& a) { return numpy_dtype(a.dtype); })
      .def_readonly("device", &CudaArray::device)
      .def("get", &CudaArray::to_host, "Copy to a new numpy array.")
      .def("__repr__", [](const CudaArray& a) {
        std::string s = "CudaArray(shape=(";
        for (size_t i = 0; i < a.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(a.shape[i]);
        return s + "), dtype=" + elem_name(a.dtype) + ", device=" + std::to_string(a.device) + ")";
      });

  m.def("cuda_warp", &cuda_warp, py::arg("image"), py::arg("flow"), py::arg("mode") = "bilinear",
        py::arg("return_valid") = false, py::arg("threads") = 0, "Backward warp on the GPU (see warp).");
  m.def("cuda_occlusion", &cuda_occlusion, py::arg("flow_ab"), py::arg("flow_ba"), py::arg("alpha1") = 0.01,
        py::arg("alpha2") = 0.5, py::arg("threads") = 0, "Forward-backward occlusion mask on the GPU (see occlusion).");
  m.def("cuda_histogram_blend", &cuda_histogram_blend, py::arg("a"), py::arg("b"), py::arg("weight_a"),
        py::arg("reference") = py::none(), py::arg("threads") = 0,
        "Histogram-preserving blend on the GPU (see histogram_blend).");
  m.def("cuda_min_error_combine", &cuda_min_error_combine, py::arg("a"), py::arg("b"), py::arg("error_a"),
        py::arg("error_b"), py::arg("threads") = 0, "Min-error combination on the GPU (see min_error_combine).");
});

}  // namespace
}  // namespace rerender::bindings
