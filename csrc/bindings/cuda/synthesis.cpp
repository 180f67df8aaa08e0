// Python binding of the guided patch-based synthesis on the GPU (cuda_synthesize): the arguments,
// validation (bindings/synthesis_args.h, shared with the CPU entry) and results of synthesize.
// Style, guides and target_mask may be numpy arrays (copied up) or device arrays
// (__cuda_array_interface__: read in place); a device init_nnf is brought to the host for its
// bounds check. The core writes the results (image in the style's dtype, int32 NNF, float32
// error) into device buffers: they stay there as CudaArray when any input was a device array
// (no host round trip), else they come back as numpy arrays, as from the CPU entry.
#include "bindings/cuda/device_args.h"
#include "bindings/registry.h"
#include "bindings/synthesis_args.h"
#include "cuda/runtime.h"
#include "cuda/synthesis.h"

namespace rerender::bindings {

// The two Loader hooks of parse_synthesis_args for DeviceLoader (found by argument-dependent
// lookup, hence outside the anonymous namespace).
inline size_t rank_of(const DeviceArg& a) { return a.shape.size(); }

inline py::object host_nnf(DeviceLoader& loader, const py::object& obj, const std::string& name, int ht, int wt) {
  if (!py::hasattr(obj, "__cuda_array_interface__")) return obj;  // numpy (or wrong): checked as on the CPU
  const ArrayInterface ai = read_interface(obj, name);
  py::dtype dtype;
  try {
    dtype = py::module_::import("numpy").attr("dtype")(ai.typestr);
  } catch (const py::error_already_set& e) {
    fail(name, ": malformed __cuda_array_interface__ (", e.what(), ")");
  }
  // the CPU path's checks and messages, before anything is allocated for the copy
  if (!dtype.is(py::dtype::of<int32_t>()))
    fail("init_nnf: unsupported dtype ", std::string(py::str(dtype)), " (expected int32)");
  if (ai.shape.size() != 3 || ai.shape[0] != ht || ai.shape[1] != wt || ai.shape[2] != 2)
    fail("init_nnf: expected shape (", ht, ", ", wt, ", 2) (target H x W x (x, y)), got ", describe(ai.shape));
  if (!c_contiguous(ai, 4)) fail(name, ": GPU arrays must be C-contiguous (e.g. call .contiguous() first)");
  const void* ptr = reinterpret_cast<const void*>(ai.data);
  const int device = cuda::pointer_device(ptr);
  if (device < 0) fail(name, ": __cuda_array_interface__ does not point to CUDA device memory");
  loader.adopt(device, name);  // a device input like the others (same device; waits for producers)
  py::array host = new_array(loader.budget, name + ": copy to the host", dtype, ai.shape);
  void* dst = host.mutable_data();
  const size_t bytes = host.nbytes();
  {
    py::gil_scoped_release nogil;
    cuda::DeviceGuard guard(device);
    cuda::copy_to_host(dst, ptr, bytes);
  }
  return host;
}

namespace {

// Where the core reads an argument: the device array itself, or the validated numpy array.
const void* data_of(const DeviceArg& a) { return a.on_device ? a.ptr : a.meta.data(); }

// No init_active (the CPU entry's initial active set of a warm start): the jump-flood search
// visits every pixel in parallel, so skipping some would save little; rerender.synthesize leaves
// the argument out on this backend (same results, every pixel searched).
py::object cuda_synthesize(const py::object& style_obj, const py::object& guides_obj, const py::object& params,
                           const py::object& init_nnf, const py::object& target_mask) {
  DeviceLoader loader("cuda_synthesize");
  const auto args = parse_synthesis_args(loader, style_obj, guides_obj, params, init_nnf, target_mask);
  const Image& style = args.style.meta;
  std::vector<syn::Guide> guides;
  for (size_t i = 0; i < args.sources.size(); ++i)
    guides.push_back({plane_of(args.sources[i].meta, data_of(args.sources[i])),
                      plane_of(args.targets[i].meta, data_of(args.targets[i])), args.weights[i]});
  const auto* mask = args.has_mask ? static_cast<const uint8_t*>(data_of(args.mask)) : nullptr;
  const int device = loader.device();
  cuda::DeviceGuard guard(device);
  CudaArray image = device_output(args.image_shape, style.dtype, device, "cuda_synthesize image");
  CudaArray nnf = device_output({args.ht, args.wt, 2}, Elem::I32, device, "cuda_synthesize nnf");
  CudaArray error = device_output({args.ht, args.wt}, Elem::F32, device, "cuda_synthesize error");
  {
    py::gil_scoped_release nogil;
    const cuda::Outputs out{image.buffer->get(), style.dtype == DType::U8, nnf.buffer->as<int32_t>(),
                            error.buffer->as<float>()};
    cuda::synthesize(plane_of(style, data_of(args.style)), guides, args.ht, args.wt, args.nnf_ptr(), mask, args.params,
                     out);
  }
  return py::make_tuple(deliver(image, loader), deliver(nnf, loader), deliver(error, loader));
}

const RegisterBindings reg([](py::module_& m) {
  m.def("cuda_synthesize", &cuda_synthesize, py::arg("style"), py::arg("guides"), py::arg("params") = py::none(),
        py::arg("init_nnf") = py::none(), py::arg("target_mask") = py::none(),
        "Guided patch-based synthesis on the GPU (see synthesize; params.threads is checked and otherwise unused). "
        "Inputs: numpy or __cuda_array_interface__ arrays; returns (image, nnf, error): CudaArray when an input "
        "was a device array, else numpy.");
});

}  // namespace
}  // namespace rerender::bindings
