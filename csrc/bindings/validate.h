// Argument validation shared by every binding: turn Python objects into checked, C-contiguous
// image views, or raise ValueError naming the argument (MemoryError where a needed copy cannot be
// had). Native code past this point may assume its inputs are well formed.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <sstream>
#include <string>

#include "bindings/memory.h"

namespace rerender::bindings {
namespace py = pybind11;

template <typename... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throw py::value_error(s.str());
}

enum class DType { U8, F32 };
inline const char* dtype_name(DType d) { return d == DType::U8 ? "uint8" : "float32"; }

// A validated H x W x C image (H x W arrays are read as C = 1). Keeps its array alive.
struct Image {
  py::array arr;
  int h = 0, w = 0, c = 0;
  DType dtype = DType::U8;
  const void* data() const { return arr.data(); }
  template <typename T> const T* as() const { return static_cast<const T*>(arr.data()); }
  std::string shape() const {
    std::ostringstream s;
    s << "(" << h << ", " << w << ", " << c << ")";
    return s.str();
  }
};

struct ImageRules {
  bool allow_u8 = true;
  bool allow_f32 = true;
  int channels = -1;       // required channel count, -1 = any
  int max_channels = 256;  // sanity bound
};

inline std::string describe_shape(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// `a` itself when C-contiguous, else a C-contiguous copy of it (a slice, a transpose, or a
// broadcast view whose few bytes stand for a huge array), counted in `budget`.
inline py::array contiguous(const py::array& a, const std::string& name, Budget& budget) {
  if (a.flags() & py::array::c_style) return a;
  const uint64_t bytes = static_cast<uint64_t>(a.size()) * static_cast<uint64_t>(a.itemsize());
  const std::string copying = name + ": copying the non-contiguous array of shape " + describe_shape(a);
  budget.need(copying, bytes);
  try {
    return py::module_::import("numpy").attr("ascontiguousarray")(a);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError)) throw;
    fail_memory(copying, ": not enough memory (", gib(bytes), "); pass a C-contiguous array or a smaller one");
  }
}

// Every dimension is checked as the 64-bit size numpy holds, before it is narrowed to int: a
// channel count of 2**32 + 3 must not pass as 3, nor 2**31 as "empty".
inline void check_dims(const std::string& name, py::ssize_t h, py::ssize_t w, py::ssize_t c, const std::string& shape,
                       const ImageRules& rules) {
  if (h <= 0 || w <= 0 || c <= 0) fail(name, ": empty array of shape ", shape);
  if (h > (1 << 16) || w > (1 << 16)) fail(name, ": image of shape ", shape, " is too large (at most 65536 per side)");
  if (c > rules.max_channels) fail(name, ": ", c, " channels is too many (at most ", rules.max_channels, ")");
}

// `budget` counts the copy of a non-contiguous array (e.g. a slice, a transpose, or a broadcast
// view whose few bytes stand for a huge array).
inline Image as_image(const py::handle& obj, const std::string& name, Budget& budget, ImageRules rules = {}) {
  if (obj.is_none()) fail(name, ": expected a numpy array, got None");
  if (!py::isinstance<py::array>(obj))
    fail(name, ": expected a numpy array, got ", std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  Image im;
  if (a.dtype().is(py::dtype::of<uint8_t>())) {
    if (!rules.allow_u8) fail(name, ": dtype uint8 is not accepted here (expected float32)");
    im.dtype = DType::U8;
  } else if (a.dtype().is(py::dtype::of<float>())) {
    if (!rules.allow_f32) fail(name, ": dtype float32 is not accepted here (expected uint8)");
    im.dtype = DType::F32;
  } else {
    fail(name, ": unsupported dtype ", std::string(py::str(a.dtype())),
         rules.allow_u8 && rules.allow_f32 ? " (expected uint8 or float32)"
         : rules.allow_u8                 ? " (expected uint8)"
                                          : " (expected float32)");
  }
  if (a.ndim() != 2 && a.ndim() != 3)
    fail(name, ": expected an H x W or H x W x C array, got shape ", describe_shape(a));
  check_dims(name, a.shape(0), a.shape(1), a.ndim() == 3 ? a.shape(2) : 1, describe_shape(a), rules);
  im.h = static_cast<int>(a.shape(0));
  im.w = static_cast<int>(a.shape(1));
  im.c = a.ndim() == 3 ? static_cast<int>(a.shape(2)) : 1;
  if (rules.channels > 0 && im.c != rules.channels)
    fail(name, ": expected ", rules.channels, " channel(s), got shape ", describe_shape(a));
  // Non-contiguous views (slices, transposes, broadcasts) are copied once; the dtype is already
  // the one wanted and never changes.
  im.arr = contiguous(a, name, budget);
  return im;
}

inline void require_same_size(const Image& a, const std::string& an, const Image& b, const std::string& bn) {
  if (a.h != b.h || a.w != b.w)
    fail(bn, ": size ", b.h, "x", b.w, " does not match ", an, " (", a.h, "x", a.w, ")");
}

inline void require_finite(double v, const std::string& name) {
  if (!std::isfinite(v)) fail(name, ": must be finite, got ", v);
}

inline void require_range(double v, double lo, double hi, const std::string& name) {
  require_finite(v, name);
  if (v < lo || v > hi) fail(name, ": must be in [", lo, ", ", hi, "], got ", v);
}

// threads = 0 means "OpenMP default"; anything else must be a sane positive count.
inline int checked_threads(int threads) {
  if (threads < 0 || threads > 1024) fail("threads: must be in [0, 1024], got ", threads);
  return threads;
}

}  // namespace rerender::bindings
