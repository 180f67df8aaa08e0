#include <climits>
#include <string>

#include "core/synthesis.h"  // kMaxInputValue
#include "cuda/check.cuh"
#include "cuda/runtime.h"

namespace rerender::cuda {

std::pair<int, std::string> device_count() noexcept {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return {0, cudaGetErrorString(status)};
  }
  if (n <= 0) return {0, "no CUDA device found"};
  return {n, std::string()};
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

int pointer_device(const void* ptr) noexcept {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? attr.device : -1;
}

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // (not sticky: clear it)
    throw OutOfMemory("CUDA out of memory: cannot allocate " + std::to_string(bytes) + " bytes on the device");
  }
  check(status, "cudaMalloc");
  return p;
}

void device_free(void* ptr) noexcept {
  if (ptr) cudaFree(ptr);
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
void copy_device_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy on device");
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

namespace {

__device__ bool is_invalid(float v, ValueCheck check) {
  switch (check) {
    case ValueCheck::Finite: return !isfinite(v);
    case ValueCheck::NotNaN: return isnan(v);
    case ValueCheck::FiniteBounded: return !(fabsf(v) <= synthesis::kMaxInputValue);
    default: return !(v >= 0.0f && v <= 1.0f);
  }
}

__global__ void first_invalid_kernel(const float* data, size_t n, ValueCheck check,
                                     unsigned long long* first) {
  for (size_t i = global_index(); i < n; i += grid_stride())
    if (is_invalid(data[i], check)) atomicMin(first, static_cast<unsigned long long>(i));
}

}  // namespace

long long first_invalid(const float* data, size_t n, ValueCheck value_check) {
  Buffer first(sizeof(unsigned long long));
  const unsigned long long none = ULLONG_MAX;
  copy_to_device(first.get(), &none, sizeof none);
  RR_LAUNCH(first_invalid_kernel, n, data, n, value_check, first.as<unsigned long long>());
  unsigned long long result = none;
  copy_to_host(&result, first.get(), sizeof result);  // synchronises with the kernel
  return result == none ? -1 : static_cast<long long>(result);
}

float read_float(const float* data, size_t index) {
  float v = 0.0f;
  copy_to_host(&v, data + index, sizeof v);
  return v;
}

}  // namespace rerender::cuda
