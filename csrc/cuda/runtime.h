// Host-side interface of the CUDA backend's runtime helpers: device probing, device memory and
// copies. Plain C++ (no CUDA headers), so that the pybind11 bindings compile with the host
// compiler. Functions throw rerender::cuda::Error (a std::runtime_error) on CUDA failures.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace rerender::cuda {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A device allocation that failed for want of memory (the bindings raise MemoryError).
struct OutOfMemory : Error {
  using Error::Error;
};

// Usable device count and, when 0, the reason (never throws: without a driver the count is 0).
std::pair<int, std::string> device_count() noexcept;

// Name of device `device` (e.g. "NVIDIA H100 80GB HBM3"); throws when it cannot be queried.
std::string device_name(int device);

// Device ordinal of a device (or managed) pointer; -1 for host or unknown memory.
int pointer_device(const void* ptr) noexcept;

int current_device();
void set_device(int device);

void* device_alloc(size_t bytes);
void device_free(void* ptr) noexcept;
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
void synchronize();  // the current device; rethrows asynchronous kernel errors

// Owning device buffer (move-only).
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes) : ptr_(bytes ? device_alloc(bytes) : nullptr), bytes_(bytes) {}
  ~Buffer() { device_free(ptr_); }
  Buffer(Buffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* get() const { return ptr_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Selects a device for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : previous_(current_device()) {
    if (device != previous_) set_device(device);
  }
  ~DeviceGuard() {
    try {
      set_device(previous_);
    } catch (...) {
    }
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

// Value checks on device data, returning the flat index of the first offending element or -1.
// (FiniteBounded: finite and at most synthesis::kMaxInputValue in magnitude)
enum class ValueCheck { Finite, NotNaN, UnitInterval, FiniteBounded };
long long first_invalid(const float* data, size_t n, ValueCheck check);
float read_float(const float* data, size_t index);  // one element back to the host (for messages)

}  // namespace rerender::cuda
