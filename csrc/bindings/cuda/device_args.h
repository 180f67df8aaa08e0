// GPU-side arguments of the CUDA bindings: device arrays arrive through
// __cuda_array_interface__ (torch CUDA tensors, CuPy, Numba) and are used in place; numpy
// arrays are validated exactly as on the CPU and copied to the device. Results go back as numpy
// arrays when every input was a numpy array, otherwise they stay on the device as CudaArray
// (which itself exposes __cuda_array_interface__).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/ops_args.h"
#include "cuda/runtime.h"

namespace rerender::bindings {

// An input on its way to the device. `meta` carries shape and dtype (and, for numpy inputs,
// the host array); `ptr` is the device pointer once `upload` ran.
struct DeviceArg {
  Image meta;
  std::vector<py::ssize_t> shape;
  const void* ptr = nullptr;
  std::shared_ptr<cuda::Buffer> owned;  // the device copy of a host array
  bool on_device = false;
  int device = -1;
  template <typename T> const T* as() const { return static_cast<const T*>(ptr); }
};

inline const Image& meta(const DeviceArg& a) { return a.meta; }

// Element types of device results: the images' (DType) plus int32 for the synthesis NNF.
enum class Elem { U8, I32, F32 };
inline Elem elem_of(DType d) { return d == DType::U8 ? Elem::U8 : Elem::F32; }
inline size_t itemsize_of(Elem e) { return e == Elem::U8 ? 1 : 4; }
inline const char* elem_name(Elem e) { return e == Elem::U8 ? "uint8" : e == Elem::I32 ? "int32" : "float32"; }
inline py::dtype numpy_dtype(Elem e) {
  return e == Elem::U8 ? py::dtype::of<uint8_t>() : e == Elem::I32 ? py::dtype::of<int32_t>() : py::dtype::of<float>();
}

// A device-resident result: owns its buffer, exposes __cuda_array_interface__ (version 3).
struct CudaArray {
  std::shared_ptr<cuda::Buffer> buffer;
  std::vector<py::ssize_t> shape;
  Elem dtype = Elem::U8;
  int device = 0;

  std::string typestr() const { return dtype == Elem::U8 ? "|u1" : dtype == Elem::I32 ? "<i4" : "<f4"; }
  size_t itemsize() const { return itemsize_of(dtype); }
  py::dict interface() const {
    py::dict d;
    py::tuple shp(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) shp[i] = shape[i];
    d["shape"] = shp;
    d["typestr"] = typestr();
    d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(buffer->get()), false);
    d["strides"] = py::none();
    d["version"] = 3;
    return d;  // no "stream": the producing call synchronised before returning
  }
  py::array to_host() const {
    py::array out(numpy_dtype(dtype), shape);
    void* dst = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      cuda::DeviceGuard guard(device);
      cuda::copy_to_host(dst, buffer->get(), out.nbytes());
    }
    return out;
  }
};

// Parses and checks device inputs; remembers their (common) device.
class DeviceLoader {
 public:
  DeviceArg load(const py::handle& obj, const std::string& name, ImageRules rules = {}) {
    DeviceArg arg;
    if (obj.is_none() || !py::hasattr(obj, "__cuda_array_interface__")) {
      arg.meta = as_image(obj, name, rules);  // numpy: the CPU path's checks and messages
      arg.shape.assign(arg.meta.arr.shape(), arg.meta.arr.shape() + arg.meta.arr.ndim());
      return arg;
    }
    const py::dict cai = obj.attr("__cuda_array_interface__");
    const std::string typestr = py::cast<std::string>(cai["typestr"]);
    const py::tuple shape = cai["shape"];
    for (auto s : shape) arg.shape.push_back(py::cast<py::ssize_t>(s));
    check_meta(arg, name, rules, typestr);
    if (cai.contains("strides") && !cai["strides"].is_none()) {
      const py::tuple strides = cai["strides"];
      py::ssize_t expected = static_cast<py::ssize_t>(arg.meta.dtype == DType::U8 ? 1 : 4);
      for (size_t i = arg.shape.size(); i-- > 0;) {
        if (arg.shape[i] > 1 && py::cast<py::ssize_t>(strides[i]) != expected)
          fail(name, ": GPU arrays must be C-contiguous (e.g. call .contiguous() first)");
        expected *= arg.shape[i];
      }
    }
    const py::tuple data = cai["data"];
    arg.ptr = reinterpret_cast<const void*>(py::cast<uintptr_t>(data[0]));
    arg.device = cuda::pointer_device(arg.ptr);
    if (arg.device < 0) fail(name, ": __cuda_array_interface__ does not point to CUDA device memory");
    adopt(arg.device, name);
    arg.on_device = true;
    return arg;
  }

  // Records that input `name` lives on `device`: all device inputs must share one device, and
  // the first one makes the call wait for the device (producers may still be writing on their
  // own streams; one wait covers every input).
  void adopt(int device, const std::string& name) {
    if (device_ >= 0 && device != device_)
      fail(name, ": is on CUDA device ", device, " but ", first_name_, " is on device ", device_);
    if (device_ >= 0) return;
    device_ = device;
    first_name_ = name;
    py::gil_scoped_release nogil;
    cuda::DeviceGuard guard(device_);
    cuda::synchronize();
  }

  void finite(const DeviceArg& a, const std::string& name, bool allow_inf = false) const {
    if (!a.on_device) return require_finite_values(a.meta, name, allow_inf);
    if (a.meta.dtype != DType::F32) return;
    cuda::DeviceGuard guard(a.device);
    const long long bad = cuda::first_invalid(a.as<float>(), count(a), allow_inf ? cuda::ValueCheck::NotNaN
                                                                                  : cuda::ValueCheck::Finite);
    if (bad >= 0)
      fail(name, ": contains ", std::isnan(cuda::read_float(a.as<float>(), bad)) ? "NaN" : "infinite",
           " values (first at flat index ", bad, ")");
  }

  void unit_interval(const DeviceArg& a, const std::string& name) const {
    if (!a.on_device) return require_unit_interval(a.meta, name);
    cuda::DeviceGuard guard(a.device);
    const long long bad = cuda::first_invalid(a.as<float>(), count(a), cuda::ValueCheck::UnitInterval);
    if (bad >= 0)
      fail(name, ": values must be in [0, 1], got ", cuda::read_float(a.as<float>(), bad), " at pixel (",
           bad / a.meta.w, ", ", bad % a.meta.w, ")");
  }

  // True when some input lives on the GPU (results then stay there).
  bool any_on_device() const { return device_ >= 0; }
  // The device of the call: the inputs' device, else the current one.
  int device() const { return device_ >= 0 ? device_ : cuda::current_device(); }

 private:
  static size_t count(const DeviceArg& a) { return static_cast<size_t>(a.meta.h) * a.meta.w * a.meta.c; }

  // The checks of as_image (validate.h) on an interface's typestr and shape, same messages.
  static void check_meta(DeviceArg& arg, const std::string& name, const ImageRules& rules, const std::string& typestr) {
    Image& im = arg.meta;
    const std::string kind = typestr.size() >= 2 ? typestr.substr(1) : typestr;
    if (kind == "u1") {
      if (!rules.allow_u8) fail(name, ": dtype uint8 is not accepted here (expected float32)");
      im.dtype = DType::U8;
    } else if (kind == "f4") {
      if (!rules.allow_f32) fail(name, ": dtype float32 is not accepted here (expected uint8)");
      im.dtype = DType::F32;
    } else {
      const std::string numpy_name = py::str(py::module_::import("numpy").attr("dtype")(typestr));
      fail(name, ": unsupported dtype ", numpy_name,
           rules.allow_u8 && rules.allow_f32 ? " (expected uint8 or float32)"
           : rules.allow_u8                 ? " (expected uint8)"
                                            : " (expected float32)");
    }
    const auto& s = arg.shape;
    if (s.size() != 2 && s.size() != 3) fail(name, ": expected an H x W or H x W x C array, got shape ", describe(s));
    im.h = static_cast<int>(s[0]);
    im.w = static_cast<int>(s[1]);
    im.c = s.size() == 3 ? static_cast<int>(s[2]) : 1;
    if (s[0] <= 0 || s[1] <= 0 || (s.size() == 3 && s[2] <= 0)) fail(name, ": empty array of shape ", describe(s));
    if (s[0] > (1 << 16) || s[1] > (1 << 16))
      fail(name, ": image of shape ", describe(s), " is too large (at most 65536 per side)");
    if (im.c > rules.max_channels) fail(name, ": ", im.c, " channels is too many (at most ", rules.max_channels, ")");
    if (rules.channels > 0 && im.c != rules.channels)
      fail(name, ": expected ", rules.channels, " channel(s), got shape ", describe(s));
  }

  static std::string describe(const std::vector<py::ssize_t>& s) {
    std::ostringstream o;
    o << "(";
    for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
    o << (s.size() == 1 ? ",)" : ")");
    return o.str();
  }

  int device_ = -1;
  std::string first_name_;
};

// Copies a host argument to `device` (no-op for device arguments). Call without the GIL held
// only via upload_all below.
inline void upload(DeviceArg& a) {
  if (a.on_device || a.ptr) return;
  const size_t bytes = a.meta.arr.nbytes();
  a.owned = std::make_shared<cuda::Buffer>(bytes);
  cuda::copy_to_device(a.owned->get(), a.meta.data(), bytes);
  a.ptr = a.owned->get();
}

// Output buffer of the given shape on `device`.
inline CudaArray device_output(const std::vector<py::ssize_t>& shape, Elem dtype, int device) {
  CudaArray out;
  out.shape = shape;
  out.dtype = dtype;
  out.device = device;
  size_t n = 1;
  for (auto s : shape) n *= static_cast<size_t>(s);
  out.buffer = std::make_shared<cuda::Buffer>(n * out.itemsize());
  return out;
}
inline CudaArray device_output(const std::vector<py::ssize_t>& shape, DType dtype, int device) {
  return device_output(shape, elem_of(dtype), device);
}

// The result as the caller expects it: on the device if any input was, else a numpy array.
inline py::object deliver(const CudaArray& out, const DeviceLoader& loader) {
  if (loader.any_on_device()) return py::cast(out);
  return out.to_host();
}

}  // namespace rerender::bindings
