// Argument parsing and result conversion of the synthesis bindings, written once for the CPU
// (csrc/bindings/synthesis.cpp) and CUDA (csrc/bindings/cuda/synthesis.cpp) entries so that both
// reject the same inputs with the same messages and return the same arrays.
//
// The Loader is HostLoader (bindings/ops_args.h: numpy only) or DeviceLoader
// (bindings/cuda/device_args.h: numpy or __cuda_array_interface__); `host_nnf(loader, obj, name, ht, wt)`
// brings a warm-start NNF to host memory for its bounds check (identity for HostLoader).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bindings/ops_args.h"
#include "core/synthesis.h"

namespace rerender::bindings {

namespace syn = rerender::synthesis;

// A Python integer (or numpy integer; bool and float are refused) in [lo, hi].
inline int64_t checked_int(const py::handle& obj, const std::string& name, int64_t lo, int64_t hi) {
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

inline double checked_float(const py::handle& obj, const std::string& name, double lo, double hi) {
  if (obj.is_none() || PyBool_Check(obj.ptr())) fail(name, ": expected a number, got ", std::string(py::repr(obj)));
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    fail(name, ": expected a number, got ", std::string(py::repr(obj)));
  }
  require_range(v, lo, hi, name);
  return v;
}

inline uint64_t checked_seed(const py::handle& seed) {
  if (seed.is_none() || PyBool_Check(seed.ptr()) || PyFloat_Check(seed.ptr()))
    fail("seed: expected a non-negative integer, got ", std::string(py::repr(seed)));
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
  return v;
}

// Numpy warm starts are already on the host (their checks follow in parse_synthesis_args).
inline py::object host_nnf(const HostLoader&, const py::object& obj, const std::string&, int, int) { return obj; }
inline size_t rank_of(const Image& im) { return static_cast<size_t>(im.arr.ndim()); }

// The validated arguments of one synthesis call. `Arg` keeps each array alive (and, for the
// CUDA entry, knows whether it lives on the device).
template <typename Arg>
struct SynthesisArgs {
  Arg style;
  std::vector<Arg> sources, targets;
  std::vector<float> weights;
  Arg mask;
  bool has_mask = false;
  py::array_t<int32_t, py::array::c_style> init_nnf;  // host memory; empty without a warm start
  bool has_init_nnf = false;
  py::array_t<uint8_t, py::array::c_style> init_active;  // host memory; empty when not given
  bool has_init_active = false;
  syn::Params params;
  int ht = 0, wt = 0;
  std::vector<py::ssize_t> image_shape;  // H_t x W_t (x C): the style's rank and channels

  const int32_t* nnf_ptr() const { return has_init_nnf ? init_nnf.data() : nullptr; }
  const uint8_t* active_ptr() const { return has_init_active ? init_active.data() : nullptr; }
};

// ---- SynthesisParams: the options of one synthesis call, named once ---------------------------
//
// One row per field of syn::Params (core/synthesis.h holds the defaults): its Python name, how a
// value is checked and stored, and how it is read back. The Python class SynthesisParams
// (bindings/synthesis.cpp), its keyword arguments, properties, repr and equality all come from
// this table; both synthesis entries take such an object.
struct ParamField {
  const char* name;
  void (*set)(syn::Params&, const py::handle&);
  py::object (*get)(const syn::Params&);
};

inline const std::vector<ParamField>& param_fields() {
  static const std::vector<ParamField> fields = {
      {"style_weight",
       [](syn::Params& p, const py::handle& v) { p.style_weight = static_cast<float>(checked_float(v, "style_weight", 0.0, 1e12)); },
       [](const syn::Params& p) -> py::object { return py::float_(p.style_weight); }},
      {"patch_size",
       [](syn::Params& p, const py::handle& v) {
         p.patch_size = static_cast<int>(checked_int(v, "patch_size", 3, 31));
         if (p.patch_size % 2 == 0) fail("patch_size: must be odd, got ", p.patch_size);
       },
       [](const syn::Params& p) -> py::object { return py::int_(p.patch_size); }},
      {"pyramid_levels",  // None = automatic (0 in the core)
       [](syn::Params& p, const py::handle& v) {
         p.pyramid_levels = v.is_none() ? 0 : static_cast<int>(checked_int(v, "pyramid_levels", 1, 16));
       },
       [](const syn::Params& p) -> py::object { return p.pyramid_levels > 0 ? py::object(py::int_(p.pyramid_levels)) : py::none(); }},
      {"search_vote_iters",
       [](syn::Params& p, const py::handle& v) { p.search_vote_iters = static_cast<int>(checked_int(v, "search_vote_iters", 1, 10000)); },
       [](const syn::Params& p) -> py::object { return py::int_(p.search_vote_iters); }},
      {"patchmatch_iters",
       [](syn::Params& p, const py::handle& v) { p.patchmatch_iters = static_cast<int>(checked_int(v, "patchmatch_iters", 0, 10000)); },
       [](const syn::Params& p) -> py::object { return py::int_(p.patchmatch_iters); }},
      {"uniformity",
       [](syn::Params& p, const py::handle& v) { p.uniformity = static_cast<float>(checked_float(v, "uniformity", 0.0, 1e12)); },
       [](const syn::Params& p) -> py::object { return py::float_(p.uniformity); }},
      {"search_radius",  // 0 = the exemplar's size
       [](syn::Params& p, const py::handle& v) { p.search_radius = static_cast<int>(checked_int(v, "search_radius", 0, 1 << 20)); },
       [](const syn::Params& p) -> py::object { return py::int_(p.search_radius); }},
      {"stop_threshold",
       [](syn::Params& p, const py::handle& v) { p.stop_threshold = static_cast<float>(checked_float(v, "stop_threshold", 0.0, 1e12)); },
       [](const syn::Params& p) -> py::object { return py::float_(p.stop_threshold); }},
      {"seed", [](syn::Params& p, const py::handle& v) { p.seed = checked_seed(v); },
       [](const syn::Params& p) -> py::object { return py::int_(p.seed); }},
      {"threads",
       [](syn::Params& p, const py::handle& v) {
         p.threads = checked_threads(static_cast<int>(checked_int(v, "threads", -(1ll << 31), (1ll << 31) - 1)));
       },
       [](const syn::Params& p) -> py::object { return py::int_(p.threads); }},
  };
  return fields;
}

// `base` with the fields named in `changes` (a dict) checked and set; an unknown name is refused.
inline syn::Params with_changes(syn::Params base, const py::dict& changes) {
  for (const auto& item : changes) {
    const std::string key = py::str(item.first);
    const ParamField* field = nullptr;
    for (const ParamField& f : param_fields())
      if (key == f.name) field = &f;
    if (!field) {
      std::string names;
      for (const ParamField& f : param_fields()) names += std::string(names.empty() ? "" : ", ") + f.name;
      fail("SynthesisParams: unknown option '", key, "' (options: ", names, ")");
    }
    field->set(base, item.second);
  }
  return base;
}

inline syn::Params checked_params(const py::object& params) {
  if (params.is_none()) return syn::Params{};
  try {
    return params.cast<syn::Params>();
  } catch (const py::cast_error&) {
    fail("params: expected a SynthesisParams, got ", std::string(py::str(params.get_type().attr("__name__"))));
  }
}

// The synthesis arguments as the Python API documents them (see python/rerender/synthesis.py).
template <typename Loader>
auto parse_synthesis_args(Loader& load, const py::object& style_obj, const py::object& guides_obj,
                          const py::object& params, const py::object& init_nnf, const py::object& target_mask,
                          const py::object& init_active = py::none()) {
  using Arg = decltype(load.load(style_obj, ""));
  SynthesisArgs<Arg> r;
  r.params = checked_params(params);
  r.style = load.load(style_obj, "style");
  const Image& style = meta(r.style);
  load.bounded(r.style, "style", syn::kMaxInputValue);

  if (!py::isinstance<py::sequence>(guides_obj) || py::isinstance<py::str>(guides_obj))
    fail("guides: expected a list of (source, target, weight) tuples, got ",
         std::string(py::str(guides_obj.get_type().attr("__name__"))));
  const auto guide_seq = py::reinterpret_borrow<py::sequence>(guides_obj);
  if (guide_seq.size() == 0) fail("guides: at least one (source, target, weight) guide is required");
  int total_channels = style.c;
  for (size_t gi = 0; gi < guide_seq.size(); ++gi) {
    const std::string name = "guides[" + std::to_string(gi) + "]";
    py::object item = guide_seq[gi];
    if (!py::isinstance<py::sequence>(item) || py::isinstance<py::str>(item) || py::len(item) != 3)
      fail(name, ": expected a (source, target, weight) tuple, got ", std::string(py::repr(item)).substr(0, 80));
    auto tup = py::reinterpret_borrow<py::sequence>(item);
    r.sources.push_back(load.load(tup[0], name + ".source"));
    r.targets.push_back(load.load(tup[1], name + ".target"));
    const Image& src = meta(r.sources.back());
    const Image& tgt = meta(r.targets.back());
    load.bounded(r.sources.back(), name + ".source", syn::kMaxInputValue);
    load.bounded(r.targets.back(), name + ".target", syn::kMaxInputValue);
    require_same_size(style, "style", src, name + ".source");
    if (gi > 0) require_same_size(meta(r.targets[0]), "guides[0].target", tgt, name + ".target");
    if (src.c != tgt.c) fail(name, ": source has ", src.c, " channel(s) but target has ", tgt.c);
    if (src.dtype != tgt.dtype)
      fail(name, ": source is ", dtype_name(src.dtype), " but target is ", dtype_name(tgt.dtype));
    r.weights.push_back(static_cast<float>(checked_float(tup[2], name + ".weight", 0.0, 1e12)));
    total_channels += src.c;
  }
  if (total_channels > 1024) fail("guides: ", total_channels, " feature channels in all is too many (at most 1024)");
  r.ht = meta(r.targets[0]).h;
  r.wt = meta(r.targets[0]).w;
  const int ht = r.ht, wt = r.wt;
  r.image_shape = {ht, wt};
  if (rank_of(r.style) == 3) r.image_shape.push_back(style.c);

  // the options' checks that depend on the images
  const syn::Params& prm = r.params;
  if (std::min(style.h, style.w) < prm.patch_size)
    fail("patch_size: ", prm.patch_size, " does not fit in the style image of size ", style.h, "x", style.w);
  if (prm.pyramid_levels > 0) {
    const int l = prm.pyramid_levels - 1;
    const int hs = syn::level_size(style.h, l), ws = syn::level_size(style.w, l);
    if (std::min(hs, ws) < prm.patch_size) {
      int most = 1;
      while (std::min(syn::level_size(style.h, most), syn::level_size(style.w, most)) >= prm.patch_size) ++most;
      fail("pyramid_levels: ", prm.pyramid_levels, " levels shrink the style image to ", hs, "x", ws,
           ", smaller than patch_size ", prm.patch_size, " (at most ", most, " levels here)");
    }
  }

  if (!target_mask.is_none()) {
    ImageRules rules;
    rules.allow_f32 = false;
    rules.channels = 1;
    r.mask = load.load(target_mask, "target_mask", rules);
    const Image& m = meta(r.mask);
    if (m.h != ht || m.w != wt)
      fail("target_mask: size ", m.h, "x", m.w, " does not match the target size ", ht, "x", wt);
    r.has_mask = true;
  }

  if (!init_nnf.is_none()) {
    const py::object nnf_obj = host_nnf(load, init_nnf, "init_nnf", ht, wt);
    if (!py::isinstance<py::array>(nnf_obj))
      fail("init_nnf: expected a numpy int32 array, got ", std::string(py::str(nnf_obj.get_type().attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(nnf_obj);
    if (!a.dtype().is(py::dtype::of<int32_t>()))
      fail("init_nnf: unsupported dtype ", std::string(py::str(a.dtype())), " (expected int32)");
    if (a.ndim() != 3 || a.shape(0) != ht || a.shape(1) != wt || a.shape(2) != 2)
      fail("init_nnf: expected shape (", ht, ", ", wt, ", 2) (target H x W x (x, y)), got ", describe_shape(a));
    r.init_nnf = py::reinterpret_borrow<py::array_t<int32_t, py::array::c_style>>(contiguous(a, "init_nnf", load.budget));
    r.has_init_nnf = true;
    const int32_t* p = r.init_nnf.data();
    const size_t n = static_cast<size_t>(ht) * wt;
    for (size_t i = 0; i < n; ++i) {
      const int32_t x = p[2 * i], y = p[2 * i + 1];
      if (x == -1 && y == -1) continue;  // "no guess"
      if (x < 0 || x >= style.w || y < 0 || y >= style.h)
        fail("init_nnf: entry (", x, ", ", y, ") at pixel (", i % wt, ", ", i / wt,
             ") lies outside the style image (width ", style.w, ", height ", style.h, "); use (-1, -1) for no guess");
    }
  }

  // (host numpy only: the CUDA entry does not take it)
  if (!init_active.is_none()) {
    if (!r.has_init_nnf) fail("init_active: needs init_nnf (it marks pixels whose warm-start guess needs no search)");
    if (!py::isinstance<py::array>(init_active))
      fail("init_active: expected a numpy uint8 or bool array, got ",
           std::string(py::str(init_active.get_type().attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(init_active);
    if (!a.dtype().is(py::dtype::of<uint8_t>()) && !a.dtype().is(py::dtype::of<bool>()))
      fail("init_active: unsupported dtype ", std::string(py::str(a.dtype())), " (expected uint8 or bool)");
    if (a.ndim() != 2 || a.shape(0) != ht || a.shape(1) != wt)
      fail("init_active: expected shape (", ht, ", ", wt, ") (target H x W), got ", describe_shape(a));
    r.init_active = py::reinterpret_borrow<py::array_t<uint8_t, py::array::c_style>>(
        contiguous(a.dtype().is(py::dtype::of<bool>()) ? py::array(a.attr("view")("uint8")) : a, "init_active", load.budget));
    r.has_init_active = true;
  }
  return r;
}

// A plane of the core's interface over `data` (host or device memory) with the shape of `im`.
inline syn::Plane plane_of(const Image& im, const void* data) {
  return {data, im.h, im.w, im.c, im.dtype == DType::F32};
}

// The core's result as numpy arrays (image, nnf, error); the image gets the style's dtype
// (uint8: rounded and clamped) and rank.
inline py::tuple result_arrays(Budget& budget, const syn::Result& res, const std::vector<py::ssize_t>& image_shape,
                               DType dtype) {
  const size_t n = static_cast<size_t>(image_shape[0]) * image_shape[1];
  const size_t values = res.image.size();
  py::array image = new_array(budget, "synthesize image", dtype == DType::U8 ? py::dtype::of<uint8_t>() : py::dtype::of<float>(),
                              image_shape);
  if (dtype == DType::U8) {
    auto* o = static_cast<uint8_t*>(image.mutable_data());
    for (size_t i = 0; i < values; ++i) o[i] = static_cast<uint8_t>(std::lround(std::clamp(res.image[i], 0.f, 255.f)));
  } else {
    std::memcpy(image.mutable_data(), res.image.data(), values * sizeof(float));
  }
  py::array nnf = new_array(budget, "synthesize nnf", py::dtype::of<int32_t>(), {image_shape[0], image_shape[1], 2});
  std::memcpy(nnf.mutable_data(), res.nnf.data(), n * 2 * sizeof(int32_t));
  py::array err = new_array(budget, "synthesize error", py::dtype::of<float>(), {image_shape[0], image_shape[1]});
  std::memcpy(err.mutable_data(), res.error.data(), n * sizeof(float));
  return py::make_tuple(image, nnf, err);
}

// The working memory of one synthesis call (see synthesis::working_bytes).
template <typename Arg>
uint64_t synthesis_bytes(const SynthesisArgs<Arg>& args) {
  const Image& style = meta(args.style);
  int channels = style.c;
  for (const Arg& s : args.sources) channels += meta(s).c;
  return syn::working_bytes(style.h, style.w, args.ht, args.wt, style.c, channels, args.params.patch_size,
                            args.params.threads);
}

}  // namespace rerender::bindings
