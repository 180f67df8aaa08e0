// Minimal non-owning views of interleaved H x W x C images, shared by the CPU kernels.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rerender {

template <typename T>
struct ImageView {
  T* data = nullptr;
  int h = 0, w = 0, c = 0;

  ImageView() = default;
  ImageView(T* d, int h_, int w_, int c_) : data(d), h(h_), w(w_), c(c_) {}
  T* pixel(int y, int x) const { return data + (static_cast<size_t>(y) * w + x) * c; }
  T& at(int y, int x, int ch = 0) const { return pixel(y, x)[ch]; }
  size_t pixels() const { return static_cast<size_t>(h) * w; }
  size_t size() const { return pixels() * c; }
  bool empty() const { return data == nullptr || h <= 0 || w <= 0 || c <= 0; }
  operator ImageView<const T>() const { return {data, h, w, c}; }
};

}  // namespace rerender
