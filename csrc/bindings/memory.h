// Memory at the bindings: every allocation a call makes (copies of non-contiguous inputs, results,
// the core's working buffers) is counted against the machine's physical memory before it is made,
// and an allocation that fails anyway (an address-space limit, other processes) raises
// MemoryError naming what it was for. Nothing is ever used unchecked: a call either returns its
// results or raises.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <iomanip>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#if defined(_WIN32)
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace rerender::bindings {
namespace py = pybind11;

template <typename... Parts>
[[noreturn]] inline void fail_memory(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  PyErr_SetString(PyExc_MemoryError, s.str().c_str());
  throw py::error_already_set();
}

inline std::string gib(uint64_t bytes) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(bytes < (1ull << 30) ? 2 : 1) << static_cast<double>(bytes) / (1ull << 30)
    << " GiB";
  return s.str();
}

// Physical memory of this machine in bytes (0 when unknown).
inline uint64_t physical_memory() {
#if defined(_WIN32)
  MEMORYSTATUSEX status;
  status.dwLength = sizeof status;
  return GlobalMemoryStatusEx(&status) ? static_cast<uint64_t>(status.ullTotalPhys) : 0;
#elif defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
#else
  return 0;
#endif
}

// The memory one call has asked for so far. A call whose total would exceed the physical memory
// is refused before anything is allocated (such a request can only end in an allocation failure,
// or, where the system overcommits, in the process being killed).
class Budget {
 public:
  explicit Budget(std::string call) : call_(std::move(call)) {}
  void need(const std::string& what, uint64_t bytes) {
    total_ += bytes;
    const uint64_t limit = physical_memory();
    if (limit > 0 && total_ > limit)
      fail_memory(what, ": needs ", gib(bytes), total_ > bytes ? " (" + gib(total_) + " for this " + call_ + " call in all)" : "",
                  ", more than this machine's memory (", gib(limit), ")");
  }
  const std::string& call() const { return call_; }

 private:
  std::string call_;
  uint64_t total_ = 0;
};

inline uint64_t element_count(const std::vector<py::ssize_t>& shape) {
  uint64_t n = 1;
  for (py::ssize_t s : shape) n *= static_cast<uint64_t>(s);  // shapes are validated: no overflow
  return n;
}

inline std::string describe(const std::vector<py::ssize_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << (shape.size() == 1 ? ",)" : ")");
  return s.str();
}

// A new array for a result (`what` names it in errors), counted in `budget`.
inline py::array new_array(Budget& budget, const std::string& what, const py::dtype& dtype,
                           const std::vector<py::ssize_t>& shape) {
  const uint64_t bytes = element_count(shape) * static_cast<uint64_t>(dtype.itemsize());
  budget.need(what, bytes);
  try {
    return py::array(dtype, shape);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError)) throw;
    fail_memory(what, ": not enough memory for the result of shape ", describe(shape), " (", gib(bytes), ")");
  }
}

// Runs the core without the GIL. The core allocates its working buffers itself; if one cannot be
// had, the call raises MemoryError naming `what` (the call).
template <typename F>
void without_gil(const std::string& what, F&& work) {
  bool out_of_memory = false;
  {
    py::gil_scoped_release nogil;
    try {
      work();
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
    }
  }
  if (out_of_memory) fail_memory(what, ": not enough memory for the working buffers of this call");
}

}  // namespace rerender::bindings
