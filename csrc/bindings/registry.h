// Each binding file registers its functions with one static RegisterBindings object, so that
// the module is assembled from whatever binding files are compiled in (CPU always, CUDA when
// built) without a central list to keep in sync.
#pragma once
#include <pybind11/pybind11.h>

#include <functional>
#include <vector>

namespace rerender::bindings {

using Registrar = void (*)(pybind11::module_&);

inline std::vector<Registrar>& registrars() {
  static std::vector<Registrar> list;
  return list;
}

struct RegisterBindings {
  explicit RegisterBindings(Registrar f) { registrars().push_back(f); }
};

}  // namespace rerender::bindings
