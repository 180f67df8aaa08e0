// Helpers shared by the warp / occlusion / histogram-blend bindings (CPU and CUDA): views of
// validated images, outputs shaped like an input, and the extra value checks these ops need.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bindings/validate.h"
#include "core/image.h"
#include "core/warp.h"

namespace rerender::bindings {

template <typename T>
ImageView<const T> view(const Image& im) {
  return {im.as<T>(), im.h, im.w, im.c};
}

template <typename T>
ImageView<T> mutable_view(py::array& arr, const Image& like) {
  return {static_cast<T*>(arr.mutable_data()), like.h, like.w, like.c};
}

// A new result array with the dtype and the exact shape (H x W or H x W x C) of `like`.
inline py::array empty_like(Budget& budget, const Image& like, const std::string& what = "result") {
  std::vector<py::ssize_t> shape(like.arr.shape(), like.arr.shape() + like.arr.ndim());
  return new_array(budget, budget.call() + " " + what, like.arr.dtype(), shape);
}

// A new uint8 H x W result.
inline py::array_t<uint8_t> empty_mask(Budget& budget, int h, int w, const std::string& what) {
  return py::reinterpret_borrow<py::array_t<uint8_t>>(
      new_array(budget, budget.call() + " " + what, py::dtype::of<uint8_t>(), {h, w}));
}

[[noreturn]] inline void fail_out_of_bound(const std::string& name, float bound, float value, size_t index) {
  fail(name, ": values must be at most ", bound, " in magnitude (float32 images belong on a 0-255 scale), got ", value,
       " at flat index ", index);
}

// NaN / inf would make sampling positions, ranks and comparisons meaningless: reject them here.
inline void require_finite_values(const Image& im, const std::string& name, bool allow_inf = false) {
  if (im.dtype != DType::F32) return;
  const float* p = im.as<float>();
  const size_t n = static_cast<size_t>(im.h) * im.w * im.c;
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(p[i]) || (!allow_inf && std::isinf(p[i])))
      fail(name, ": contains ", std::isnan(p[i]) ? "NaN" : "infinite", " values (first at flat index ", i, ")");
}

// Float values beyond +-bound (after the finiteness check), with the argument named.
inline void require_bounded_values(const Image& im, const std::string& name, float bound) {
  require_finite_values(im, name);
  if (im.dtype != DType::F32) return;
  const float* p = im.as<float>();
  const size_t n = static_cast<size_t>(im.h) * im.w * im.c;
  for (size_t i = 0; i < n; ++i)
    if (std::fabs(p[i]) > bound) fail_out_of_bound(name, bound, p[i], i);
}

inline void require_same_dtype(const Image& a, const std::string& an, const Image& b, const std::string& bn) {
  if (a.dtype != b.dtype)
    fail(bn, ": dtype ", dtype_name(b.dtype), " does not match ", an, " (", dtype_name(a.dtype), ")");
}

inline void require_same_shape(const Image& a, const std::string& an, const Image& b, const std::string& bn) {
  if (a.h != b.h || a.w != b.w || a.c != b.c)
    fail(bn, ": shape ", b.shape(), " does not match ", an, " ", a.shape());
}

inline WarpMode parse_warp_mode(const std::string& mode) {
  if (mode == "bilinear") return WarpMode::Bilinear;
  if (mode == "nearest") return WarpMode::Nearest;
  fail("mode: expected 'bilinear' or 'nearest', got '", mode, "'");
}

inline ImageRules flow_rules() {
  ImageRules r;
  r.allow_u8 = false;
  r.channels = 2;
  return r;
}

inline ImageRules scalar_map_rules() {
  ImageRules r;
  r.allow_u8 = false;
  r.channels = 1;
  return r;
}

}  // namespace rerender::bindings
