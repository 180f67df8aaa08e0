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
  std::string name;  // the argument's (for errors)
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
    Budget budget("CudaArray.get");
    py::array out = new_array(budget, "CudaArray.get", numpy_dtype(dtype), shape);
    void* dst = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      cuda::DeviceGuard guard(device);
      cuda::copy_to_host(dst, buffer->get(), out.nbytes());
    }
    return out;
  }
};

// The fields of a __cuda_array_interface__ (version 3) that the bindings use, read without
// trusting the object: anything malformed is a ValueError naming the argument.
struct ArrayInterface {
  std::string typestr;
  std::vector<py::ssize_t> shape;
  std::vector<py::ssize_t> strides;  // empty: C-contiguous
  uintptr_t data = 0;
};

inline ArrayInterface read_interface(const py::handle& obj, const std::string& name) {
  ArrayInterface ai;
  try {
    const py::dict cai = obj.attr("__cuda_array_interface__");
    ai.typestr = py::cast<std::string>(cai["typestr"]);
    for (auto s : py::tuple(cai["shape"])) ai.shape.push_back(py::cast<py::ssize_t>(s));
    if (cai.contains("strides") && !cai["strides"].is_none())
      for (auto s : py::tuple(cai["strides"])) ai.strides.push_back(py::cast<py::ssize_t>(s));
    ai.data = py::cast<uintptr_t>(py::tuple(cai["data"])[0]);
  } catch (const py::error_already_set& e) {
    fail(name, ": malformed __cuda_array_interface__ (", e.what(), ")");
  } catch (const py::cast_error& e) {
    fail(name, ": malformed __cuda_array_interface__ (", e.what(), ")");
  }
  if (!ai.strides.empty() && ai.strides.size() != ai.shape.size())
    fail(name, ": malformed __cuda_array_interface__ (", ai.strides.size(), " strides for ", ai.shape.size(), " dimensions)");
  return ai;
}

// True when strides (bytes) describe a C-contiguous layout of `shape` with elements of `itemsize`.
inline bool c_contiguous(const ArrayInterface& ai, py::ssize_t itemsize) {
  py::ssize_t expected = itemsize;
  for (size_t i = ai.strides.size(); i-- > 0;) {
    if (ai.shape[i] > 1 && ai.strides[i] != expected) return false;
    expected *= ai.shape[i];
  }
  return true;
}

// Parses and checks device inputs; remembers their (common) device.
class DeviceLoader {
 public:
  Budget budget;  // this call's host memory (copies of non-contiguous numpy inputs)
  explicit DeviceLoader(const std::string& call) : budget(call) {}

  DeviceArg load(const py::handle& obj, const std::string& name, ImageRules rules = {}) {
    DeviceArg arg;
    if (obj.is_none() || !py::hasattr(obj, "__cuda_array_interface__")) {
      arg.meta = as_image(obj, name, budget, rules);  // numpy: the CPU path's checks and messages
      arg.shape.assign(arg.meta.arr.shape(), arg.meta.arr.shape() + arg.meta.arr.ndim());
      arg.name = name;
      return arg;
    }
    const ArrayInterface ai = read_interface(obj, name);
    arg.shape = ai.shape;
    check_meta(arg, name, rules, ai.typestr);
    if (!c_contiguous(ai, arg.meta.dtype == DType::U8 ? 1 : 4))
      fail(name, ": GPU arrays must be C-contiguous (e.g. call .contiguous() first)");
    arg.ptr = reinterpret_cast<const void*>(ai.data);
    arg.name = name;
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

  void bounded(const DeviceArg& a, const std::string& name, float bound) const {
    if (!a.on_device) return require_bounded_values(a.meta, name, bound);
    finite(a, name);
    if (a.meta.dtype != DType::F32) return;
    cuda::DeviceGuard guard(a.device);
    const long long bad = cuda::first_invalid(a.as<float>(), count(a), cuda::ValueCheck::FiniteBounded);
    if (bad >= 0) fail_out_of_bound(name, bound, cuda::read_float(a.as<float>(), bad), static_cast<size_t>(bad));
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

  // The checks of as_image (validate.h) on an interface's typestr and shape, same messages
  // (describe: memory.h).
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
    check_dims(name, s[0], s[1], s.size() == 3 ? s[2] : 1, describe(s), rules);
    im.h = static_cast<int>(s[0]);
    im.w = static_cast<int>(s[1]);
    im.c = s.size() == 3 ? static_cast<int>(s[2]) : 1;
    if (rules.channels > 0 && im.c != rules.channels)
      fail(name, ": expected ", rules.channels, " channel(s), got shape ", describe(s));
  }


  int device_ = -1;
  std::string first_name_;
};

// The name of a device allocation that failed, as cuda::OutOfMemory (the bindings' exception
// translator raises it as MemoryError).
[[noreturn]] inline void device_out_of_memory(const std::string& what, size_t bytes) {
  throw cuda::OutOfMemory(what + ": not enough CUDA device memory for " + gib(bytes));
}

// Copies a host argument to the current device (no-op for device arguments); may run without
// the GIL.
inline void upload(DeviceArg& a) {
  if (a.on_device || a.ptr) return;
  const size_t bytes = a.meta.arr.nbytes();
  try {
    a.owned = std::make_shared<cuda::Buffer>(bytes);
  } catch (const cuda::OutOfMemory&) {
    device_out_of_memory(a.name + ": copying to the GPU", bytes);
  }
  cuda::copy_to_device(a.owned->get(), a.meta.data(), bytes);
  a.ptr = a.owned->get();
}

// Output buffer of the given shape on `device`; `what` names it in errors.
inline CudaArray device_output(const std::vector<py::ssize_t>& shape, Elem dtype, int device, const std::string& what) {
  CudaArray out;
  out.shape = shape;
  out.dtype = dtype;
  out.device = device;
  const size_t bytes = element_count(shape) * out.itemsize();
  try {
    out.buffer = std::make_shared<cuda::Buffer>(bytes);
  } catch (const cuda::OutOfMemory&) {
    device_out_of_memory(what + " of shape " + describe(shape), bytes);
  }
  return out;
}
inline CudaArray device_output(const std::vector<py::ssize_t>& shape, DType dtype, int device, const std::string& what) {
  return device_output(shape, elem_of(dtype), device, what);
}

// The result as the caller expects it: on the device if any input was, else a numpy array.
inline py::object deliver(const CudaArray& out, const DeviceLoader& loader) {
  if (loader.any_on_device()) return py::cast(out);
  return out.to_host();
}

}  // namespace rerender::bindings
