// The host's images as the plugin reads and writes them, and the EXR frames it hands the worker.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "hash.h"
#include "host.h"

namespace rr_ofx {

// An image from clipGetImage, released when it goes out of scope.
struct Image {
  OfxPropertySetHandle handle = nullptr;
  unsigned char* data = nullptr;
  OfxRectI bounds{};
  long row_bytes = 0;
  int bytes = 0;  // per channel: 1 (byte), 2 (short), 4 (float)
  int nc = 0;     // channels: 4 RGBA, 3 RGB, 1 Alpha
  std::string depth, components, premult;

  Image() = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  ~Image() {
    if (handle) g.effect->clipReleaseImage(handle);
  }
  int width() const { return bounds.x2 - bounds.x1; }
  int height() const { return bounds.y2 - bounds.y1; }
  unsigned char* pixel(int x, int y) const {
    return data + (y - bounds.y1) * row_bytes + static_cast<long>(x - bounds.x1) * nc * bytes;
  }
  // channel c of pixel (x, y) in [0, 1] for integer depths, as stored for float
  float get(int x, int y, int c) const {
    const unsigned char* p = pixel(x, y) + c * bytes;
    if (bytes == 4) {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    if (bytes == 2) {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v / 65535.0f;
    }
    return *p / 255.0f;
  }
  void set(int x, int y, int c, float v) const {
    unsigned char* p = pixel(x, y) + c * bytes;
    if (bytes == 4) {
      std::memcpy(p, &v, 4);
    } else if (bytes == 2) {
      auto q = static_cast<uint16_t>(std::lround(std::min(std::max(v, 0.0f), 1.0f) * 65535.0f));
      std::memcpy(p, &q, 2);
    } else {
      *p = static_cast<unsigned char>(std::lround(std::min(std::max(v, 0.0f), 1.0f) * 255.0f));
    }
  }
};

// clipGetImage at `t`; false with `error` naming the clip and frame.
bool fetch(OfxImageClipHandle clip, const char* clip_name, OfxTime t, Image& img, std::string& error);

// The image's bounds, depth, components and pixel rows (not its padding).
void hash_image(const Image& img, Hasher& h);

// Integer plates are display-referred; the worker reads float EXR as scene-linear through the sRGB
// curve, so integer pixels are linearised on the way out and encoded on the way back (the round
// trip returns the same integers where the worker leaves pixels alone).
float srgb_to_linear(float v);
float linear_to_srgb(float v);

enum class Plate { Colour, Matte };

// A host image as an EXR frame (top row first): Colour -> R,G,B; Matte -> as given (R,G,B[,A]; an
// Alpha matte as R=G=B=A) so that the worker applies its own matte rule (alpha, else luminance). An
// opaque RGBA matte (kOfxImageOpaque: its alpha carries nothing, as hosts that give every clip as
// RGBA mark an RGB one) is written as R,G,B: its luminance is the matte, as for an RGB file.
// Written beside `path` and renamed into place.
bool write_plate(const Image& img, Plate kind, const std::string& path, std::string& error);

// DIR/STEM.FFFF.exr
std::string frame_file(const std::string& dir, const char* stem, int frame);

}  // namespace rr_ofx
