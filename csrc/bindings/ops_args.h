// Argument parsing of warp / occlusion / histogram_blend / min_error_combine, written once for
// the CPU and CUDA bindings so that both reject the same inputs with the same messages.
//
// A Loader turns a Python object into a validated argument (`load`), and checks values
// (`finite`, `unit_interval`); `meta(arg)` gives the argument's shape/dtype as an Image.
// HostLoader (below) handles numpy arrays; the CUDA bindings add one for device arrays.
#pragma once
#include <cstdint>
#include <string>

#include "bindings/ops_common.h"

namespace rerender::bindings {

inline const Image& meta(const Image& im) { return im; }

inline void require_unit_interval(const Image& w, const std::string& name) {
  const float* p = w.as<float>();
  const size_t n = static_cast<size_t>(w.h) * w.w;
  for (size_t i = 0; i < n; ++i)
    if (!(p[i] >= 0.0f && p[i] <= 1.0f))
      fail(name, ": values must be in [0, 1], got ", p[i], " at pixel (", i / w.w, ", ", i % w.w, ")");
}

struct HostLoader {
  Budget budget;  // this call's host memory
  explicit HostLoader(const std::string& call) : budget(call) {}
  Image load(const py::handle& obj, const std::string& name, ImageRules rules = {}) {
    return as_image(obj, name, budget, rules);
  }
  void finite(const Image& im, const std::string& name, bool allow_inf = false) const {
    require_finite_values(im, name, allow_inf);
  }
  void unit_interval(const Image& im, const std::string& name) const { require_unit_interval(im, name); }
  void bounded(const Image& im, const std::string& name, float bound) const { require_bounded_values(im, name, bound); }
};

// ---- warp / occlusion ------------------------------------------------------------------------

template <typename Arg>
struct WarpArgs {
  Arg image, flow;
  WarpMode mode;
};

template <typename Loader>
auto parse_warp_args(Loader& load, const py::object& image, const py::object& flow, const std::string& mode,
                     int threads) {
  using Arg = decltype(load.load(image, ""));
  WarpArgs<Arg> r{load.load(image, "image"), load.load(flow, "flow", flow_rules()), WarpMode::Bilinear};
  require_same_size(meta(r.image), "image", meta(r.flow), "flow");
  load.finite(r.flow, "flow");
  r.mode = parse_warp_mode(mode);
  checked_threads(threads);
  return r;
}

template <typename Arg>
struct OcclusionArgs {
  Arg forward, backward;
};

template <typename Loader>
auto parse_occlusion_args(Loader& load, const py::object& flow_ab, const py::object& flow_ba, double alpha1,
                          double alpha2, int threads) {
  using Arg = decltype(load.load(flow_ab, ""));
  OcclusionArgs<Arg> r{load.load(flow_ab, "flow_ab", flow_rules()), load.load(flow_ba, "flow_ba", flow_rules())};
  require_same_size(meta(r.forward), "flow_ab", meta(r.backward), "flow_ba");
  load.finite(r.forward, "flow_ab");
  load.finite(r.backward, "flow_ba");
  require_range(alpha1, 0.0, 1.0, "alpha1");
  require_range(alpha2, 0.0, 1e4, "alpha2");
  checked_threads(threads);
  return r;
}

// ---- histogram_blend / min_error_combine -----------------------------------------------------

template <typename Arg>
struct BlendArgs {
  Arg a, b, weight_map, reference;
  bool has_weight_map = false, has_reference = false;
  float weight_scalar = 0.5f;
};

// A Python int/float, a numpy scalar or a 0-d numpy array (bools are rejected: almost surely a
// mistake).
inline bool is_scalar_number(const py::handle& obj) {
  if (py::isinstance<py::bool_>(obj)) fail("weight_a: expected a number in [0, 1] or a float32 H x W array, got bool");
  if (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj)) return true;
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj).ndim() == 0;
  return py::isinstance(obj, py::module_::import("numpy").attr("number"));
}

inline void require_pixel_count(const Image& im, const std::string& name, uint64_t limit) {
  if (im.dtype == DType::F32 && static_cast<uint64_t>(im.h) * im.w > limit)
    fail(name, ": ", im.h, "x", im.w, " pixels is too many for a float32 blend (at most ", limit, ")");
}

// max_pixels bounds float32 images (rank indices are 32-bit; the CUDA sort takes int counts).
template <typename Loader>
auto parse_blend_args(Loader& load, const py::object& a_obj, const py::object& b_obj, const py::object& weight_obj,
                      const py::object& ref_obj, int threads, uint64_t max_pixels = 0xFFFFFFFFull) {
  using Arg = decltype(load.load(a_obj, ""));
  BlendArgs<Arg> r;
  r.a = load.load(a_obj, "a");
  r.b = load.load(b_obj, "b");
  require_same_dtype(meta(r.a), "a", meta(r.b), "b");
  require_same_shape(meta(r.a), "a", meta(r.b), "b");
  require_pixel_count(meta(r.a), "a", max_pixels);
  load.finite(r.a, "a");
  load.finite(r.b, "b");
  if (weight_obj.is_none()) fail("weight_a: expected a number in [0, 1] or a float32 H x W array, got None");
  if (is_scalar_number(weight_obj)) {
    const double w = py::cast<double>(py::float_(weight_obj));
    require_range(w, 0.0, 1.0, "weight_a");
    r.weight_scalar = static_cast<float>(w);
  } else {
    r.weight_map = load.load(weight_obj, "weight_a", scalar_map_rules());
    require_same_size(meta(r.a), "a", meta(r.weight_map), "weight_a");
    load.unit_interval(r.weight_map, "weight_a");
    r.has_weight_map = true;
  }
  if (!ref_obj.is_none()) {
    r.reference = load.load(ref_obj, "reference");
    const Image& ref = meta(r.reference);
    require_same_dtype(meta(r.a), "a", ref, "reference");
    if (ref.c != meta(r.a).c)
      fail("reference: ", ref.c, " channel(s) do not match a's ", meta(r.a).c, " (shape ", ref.shape(), " vs ",
           meta(r.a).shape(), ")");
    require_pixel_count(ref, "reference", max_pixels);
    load.finite(r.reference, "reference");
    r.has_reference = true;
  }
  checked_threads(threads);
  return r;
}

template <typename Arg>
struct CombineArgs {
  Arg a, b, error_a, error_b;
};

template <typename Loader>
auto parse_combine_args(Loader& load, const py::object& a_obj, const py::object& b_obj, const py::object& ea_obj,
                        const py::object& eb_obj, int threads) {
  using Arg = decltype(load.load(a_obj, ""));
  CombineArgs<Arg> r;
  r.a = load.load(a_obj, "a");
  r.b = load.load(b_obj, "b");
  require_same_dtype(meta(r.a), "a", meta(r.b), "b");
  require_same_shape(meta(r.a), "a", meta(r.b), "b");
  r.error_a = load.load(ea_obj, "error_a", scalar_map_rules());
  r.error_b = load.load(eb_obj, "error_b", scalar_map_rules());
  require_same_size(meta(r.a), "a", meta(r.error_a), "error_a");
  require_same_size(meta(r.a), "a", meta(r.error_b), "error_b");
  // +inf is a legitimate "never take this one"; NaN has no order.
  load.finite(r.error_a, "error_a", /*allow_inf=*/true);
  load.finite(r.error_b, "error_b", /*allow_inf=*/true);
  checked_threads(threads);
  return r;
}

}  // namespace rerender::bindings
