// Host implementation of cuda/runtime.h for the emulated kernels: "device" memory is host memory.
#include <cstdlib>
#include <cstring>

#include "cuda/runtime.h"

namespace rerender::cuda {
std::pair<int, std::string> device_count() noexcept { return {1, std::string()}; }
std::string device_name(int) { return "host emulation"; }
int pointer_device(const void*) noexcept { return 0; }
int current_device() { return 0; }
void set_device(int) {}
void* device_alloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
void device_free(void* ptr) noexcept { std::free(ptr); }
void copy_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_device_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void synchronize() {}
}  // namespace rerender::cuda
