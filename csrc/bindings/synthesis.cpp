// Python binding of the guided patch-based synthesis (CPU). Every argument is validated here;
// the core (csrc/core/synthesis*.cpp) assumes well-formed input.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bindings/registry.h"
#include "bindings/validate.h"
#include "core/synthesis.h"

namespace rerender::bindings {
namespace {

namespace syn = rerender::synthesis;

// A Python integer (or numpy integer; bool is refused) in [lo, hi].
int64_t checked_int(const py::handle& obj, const std::string& name, int64_t lo, int64_t hi) {
  if (obj.is_none() || PyBool_Check(obj.ptr()) || PyFloat_Check(obj.ptr()))
    fail(name, ": expected an integer, got ", std::string(py::repr(obj)));
  PyObject* idx = PyNumber_Index(obj.ptr());
  if (!idx) {
    PyErr_Clear();
    fail(name, ": expected an integer, got ", std::string(py::repr(obj)));
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
  Py_DECREF(idx);
  if (overflow || v < lo || v > hi) fail(name, ": must be an integer in [", lo, ", ", hi, "], got ", std::string(py::repr(obj)));
  return v;
}

double checked_float(const py::handle& obj, const std::string& name, double lo, double hi) {
  if (obj.is_none() || PyBool_Check(obj.ptr())) fail(name, ": expected a number, got ", std::string(py::repr(obj)));
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    fail(name, ": expected a number, got ", std::string(py::repr(obj)));
  }
  require_range(v, lo, hi, name);
  return v;
}

syn::Plane plane(const Image& im) { return {im.data(), im.h, im.w, im.c, im.dtype == DType::F32}; }

void require_finite_image(const Image& im, const std::string& name) {
  if (im.dtype != DType::F32) return;
  const float* p = im.as<float>();
  const size_t n = static_cast<size_t>(im.h) * im.w * im.c;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) fail(name, ": contains non-finite values (NaN or inf)");
}

py::object synthesize_binding(const py::object& style_obj, const py::object& guides_obj,
                              const py::object& style_weight, const py::object& patch_size,
                              const py::object& pyramid_levels, const py::object& search_vote_iters,
                              const py::object& patchmatch_iters, const py::object& uniformity,
                              const py::object& stop_threshold, const py::object& init_nnf,
                              const py::object& target_mask, const py::object& seed, const py::object& threads) {
  const Image style = as_image(style_obj, "style");
  require_finite_image(style, "style");

  if (!py::isinstance<py::sequence>(guides_obj) || py::isinstance<py::str>(guides_obj))
    fail("guides: expected a list of (source, target, weight) tuples, got ",
         std::string(py::str(guides_obj.get_type().attr("__name__"))));
  const auto guide_seq = py::reinterpret_borrow<py::sequence>(guides_obj);
  if (guide_seq.size() == 0) fail("guides: at least one (source, target, weight) guide is required");
  std::vector<Image> keep;  // keeps validated arrays alive
  keep.reserve(2 * guide_seq.size());
  std::vector<syn::Guide> guides;
  int total_channels = style.c;
  for (size_t gi = 0; gi < guide_seq.size(); ++gi) {
    const std::string name = "guides[" + std::to_string(gi) + "]";
    py::object item = guide_seq[gi];
    if (!py::isinstance<py::sequence>(item) || py::isinstance<py::str>(item) || py::len(item) != 3)
      fail(name, ": expected a (source, target, weight) tuple, got ", std::string(py::repr(item)).substr(0, 80));
    auto tup = py::reinterpret_borrow<py::sequence>(item);
    keep.push_back(as_image(tup[0], name + ".source"));
    const Image& src = keep.back();
    keep.push_back(as_image(tup[1], name + ".target"));
    const Image& tgt = keep.back();
    require_finite_image(src, name + ".source");
    require_finite_image(tgt, name + ".target");
    require_same_size(style, "style", src, name + ".source");
    if (!guides.empty()) {
      const syn::Plane& t0 = guides[0].target;
      if (tgt.h != t0.h || tgt.w != t0.w)
        fail(name, ".target: size ", tgt.h, "x", tgt.w, " does not match guides[0].target (", t0.h, "x", t0.w, ")");
    }
    if (src.c != tgt.c)
      fail(name, ": source has ", src.c, " channel(s) but target has ", tgt.c);
    if (src.dtype != tgt.dtype)
      fail(name, ": source is ", dtype_name(src.dtype), " but target is ", dtype_name(tgt.dtype));
    const double w = checked_float(tup[2], name + ".weight", 0.0, 1e12);
    total_channels += src.c;
    guides.push_back({plane(src), plane(tgt), static_cast<float>(w)});
  }
  if (total_channels > 1024) fail("guides: ", total_channels, " feature channels in all is too many (at most 1024)");
  const int ht = guides[0].target.h, wt = guides[0].target.w;

  syn::Params prm;
  prm.style_weight = static_cast<float>(checked_float(style_weight, "style_weight", 0.0, 1e12));
  prm.patch_size = static_cast<int>(checked_int(patch_size, "patch_size", 3, 31));
  if (prm.patch_size % 2 == 0) fail("patch_size: must be odd, got ", prm.patch_size);
  if (std::min(style.h, style.w) < prm.patch_size)
    fail("patch_size: ", prm.patch_size, " does not fit in the style image of size ", style.h, "x", style.w);
  if (!pyramid_levels.is_none()) {
    prm.pyramid_levels = static_cast<int>(checked_int(pyramid_levels, "pyramid_levels", 1, 16));
    const int l = prm.pyramid_levels - 1;
    const int hs = syn::level_size(style.h, l), ws = syn::level_size(style.w, l);
    if (std::min(hs, ws) < prm.patch_size) {
      int most = 1;
      while (std::min(syn::level_size(style.h, most), syn::level_size(style.w, most)) >= prm.patch_size) ++most;
      fail("pyramid_levels: ", prm.pyramid_levels, " levels shrink the style image to ", hs, "x", ws,
           ", smaller than patch_size ", prm.patch_size, " (at most ", most, " levels here)");
    }
  }
  prm.search_vote_iters = static_cast<int>(checked_int(search_vote_iters, "search_vote_iters", 1, 10000));
  prm.patchmatch_iters = static_cast<int>(checked_int(patchmatch_iters, "patchmatch_iters", 0, 10000));
  prm.uniformity = static_cast<float>(checked_float(uniformity, "uniformity", 0.0, 1e12));
  prm.stop_threshold = static_cast<float>(checked_float(stop_threshold, "stop_threshold", 0.0, 1e12));
  {
    if (seed.is_none() || PyBool_Check(seed.ptr())) fail("seed: expected a non-negative integer, got ", std::string(py::repr(seed)));
    PyObject* idx = PyNumber_Index(seed.ptr());
    if (!idx) {
      PyErr_Clear();
      fail("seed: expected a non-negative integer, got ", std::string(py::repr(seed)));
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(idx);
    Py_DECREF(idx);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      fail("seed: must be an integer in [0, 2**64), got ", std::string(py::repr(seed)));
    }
    prm.seed = v;
  }
  prm.threads = checked_threads(static_cast<int>(checked_int(threads, "threads", -(1ll << 31), (1ll << 31) - 1)));

  std::vector<uint8_t> mask_copy;
  const uint8_t* mask_ptr = nullptr;
  if (!target_mask.is_none()) {
    ImageRules rules;
    rules.allow_f32 = false;
    rules.channels = 1;
    const Image m = as_image(target_mask, "target_mask", rules);
    if (m.h != ht || m.w != wt)
      fail("target_mask: size ", m.h, "x", m.w, " does not match the target size ", ht, "x", wt);
    mask_copy.assign(m.as<uint8_t>(), m.as<uint8_t>() + static_cast<size_t>(ht) * wt);
    mask_ptr = mask_copy.data();
  }

  py::array_t<int32_t, py::array::c_style | py::array::forcecast> nnf_in;
  const int32_t* nnf_ptr = nullptr;
  if (!init_nnf.is_none()) {
    if (!py::isinstance<py::array>(init_nnf))
      fail("init_nnf: expected a numpy int32 array, got ", std::string(py::str(init_nnf.get_type().attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(init_nnf);
    if (!a.dtype().is(py::dtype::of<int32_t>()))
      fail("init_nnf: unsupported dtype ", std::string(py::str(a.dtype())), " (expected int32)");
    if (a.ndim() != 3 || a.shape(0) != ht || a.shape(1) != wt || a.shape(2) != 2)
      fail("init_nnf: expected shape (", ht, ", ", wt, ", 2) (target H x W x (x, y)), got ", describe_shape(a));
    nnf_in = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(a);
    nnf_ptr = nnf_in.data();
    const size_t n = static_cast<size_t>(ht) * wt;
    for (size_t i = 0; i < n; ++i) {
      const int32_t x = nnf_ptr[2 * i], y = nnf_ptr[2 * i + 1];
      if (x == -1 && y == -1) continue;  // "no guess"
      if (x < 0 || x >= style.w || y < 0 || y >= style.h)
        fail("init_nnf: entry (", x, ", ", y, ") at pixel (", i % wt, ", ", i / wt,
             ") lies outside the style image (width ", style.w, ", height ", style.h, "); use (-1, -1) for no guess");
    }
  }

  syn::Result res;
  {
    py::gil_scoped_release nogil;
    res = syn::synthesize(plane(style), guides, ht, wt, nnf_ptr, mask_ptr, prm);
  }

  const size_t n = static_cast<size_t>(ht) * wt;
  std::vector<py::ssize_t> img_shape = {ht, wt};
  if (style.arr.ndim() == 3) img_shape.push_back(style.c);
  py::array image;
  if (style.dtype == DType::U8) {
    py::array_t<uint8_t> out(img_shape);
    uint8_t* o = out.mutable_data();
    for (size_t i = 0; i < n * style.c; ++i)
      o[i] = static_cast<uint8_t>(std::lround(std::clamp(res.image[i], 0.f, 255.f)));
    image = out;
  } else {
    py::array_t<float> out(img_shape);
    std::memcpy(out.mutable_data(), res.image.data(), n * style.c * sizeof(float));
    image = out;
  }
  py::array_t<int32_t> nnf({static_cast<py::ssize_t>(ht), static_cast<py::ssize_t>(wt), py::ssize_t(2)});
  std::memcpy(nnf.mutable_data(), res.nnf.data(), n * 2 * sizeof(int32_t));
  py::array_t<float> err({static_cast<py::ssize_t>(ht), static_cast<py::ssize_t>(wt)});
  std::memcpy(err.mutable_data(), res.error.data(), n * sizeof(float));
  return py::make_tuple(image, nnf, err);
}

const RegisterBindings reg([](py::module_& m) {
  m.def("synthesize", &synthesize_binding, py::arg("style"), py::arg("guides"), py::arg("style_weight") = 1.0,
        py::arg("patch_size") = 5, py::arg("pyramid_levels") = py::none(), py::arg("search_vote_iters") = 12,
        py::arg("patchmatch_iters") = 6, py::arg("uniformity") = 3500.0, py::arg("stop_threshold") = 5.0,
        py::arg("init_nnf") = py::none(), py::arg("target_mask") = py::none(), py::arg("seed") = 0,
        py::arg("threads") = 0,
        "Guided patch-based synthesis (CPU). Returns (image, nnf int32 H x W x 2 (x, y), error float32 H x W).");
});

}  // namespace
}  // namespace rerender::bindings
