#include "image.h"

#include <cstdio>
#include <sstream>
#include <vector>

#include "exr.h"

namespace rr_ofx {

bool fetch(OfxImageClipHandle clip, const char* clip_name, OfxTime t, Image& img, std::string& error) {
  std::ostringstream where;
  where << clip_name << " at frame " << t;
  if (g.effect->clipGetImage(clip, t, nullptr, &img.handle) != kOfxStatOK || !img.handle) {
    img.handle = nullptr;
    error = where.str() + ": the host gave no image";
    return false;
  }
  img.data = static_cast<unsigned char*>(get_pointer(img.handle, kOfxImagePropData));
  int b[4] = {0, 0, 0, 0};
  g.prop->propGetIntN(img.handle, kOfxImagePropBounds, 4, b);
  img.bounds = OfxRectI{b[0], b[1], b[2], b[3]};
  img.row_bytes = get_int(img.handle, kOfxImagePropRowBytes);
  img.depth = get_string(img.handle, kOfxImageEffectPropPixelDepth);
  img.components = get_string(img.handle, kOfxImageEffectPropComponents);
  img.premult = get_string(img.handle, kOfxImageEffectPropPreMultiplication);
  img.bytes = img.depth == kOfxBitDepthFloat ? 4 : img.depth == kOfxBitDepthShort ? 2 : img.depth == kOfxBitDepthByte ? 1 : 0;
  img.nc = img.components == kOfxImageComponentRGBA ? 4 : img.components == kOfxImageComponentRGB ? 3
           : img.components == kOfxImageComponentAlpha ? 1 : 0;
  if (!img.data || img.bytes == 0 || img.nc == 0 || img.width() <= 0 || img.height() <= 0) {
    error = where.str() + ": unsupported image (depth " + img.depth + ", components " + img.components + ")";
    return false;
  }
  return true;
}

void hash_image(const Image& img, Hasher& h) {
  h.value(img.bounds);
  h.value(img.bytes);
  h.value(img.nc);
  if (img.nc == 4 && img.premult == kOfxImageOpaque) h.update(img.premult);  // an opaque matte's alpha is not read
  const size_t row = static_cast<size_t>(img.width()) * img.nc * img.bytes;
  for (int y = img.bounds.y1; y < img.bounds.y2; ++y) h.update(img.pixel(img.bounds.x1, y), row);
}


float srgb_to_linear(float v) { return v <= 0.04045f ? v / 12.92f : std::pow((v + 0.055f) / 1.055f, 2.4f); }
float linear_to_srgb(float v) {
  return v <= 0.0031308f ? 12.92f * v : 1.055f * std::pow(v, 1.0f / 2.4f) - 0.055f;
}

bool write_plate(const Image& img, Plate kind, const std::string& path, std::string& error) {
  exr::Image out;
  out.width = img.width();
  out.height = img.height();
  const bool alpha_only = img.nc == 1;
  const bool opaque = img.nc == 4 && img.premult == kOfxImageOpaque;
  const int nc = kind == Plate::Colour || opaque ? 3 : alpha_only ? 4 : img.nc;
  out.channels = nc == 4 ? std::vector<std::string>{"R", "G", "B", "A"} : std::vector<std::string>{"R", "G", "B"};
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * nc);
  const bool linearise = kind == Plate::Colour && img.bytes != 4;
  float* dst = out.pixels.data();
  for (int row = 0; row < out.height; ++row) {
    const int y = img.bounds.y2 - 1 - row;
    for (int x = img.bounds.x1; x < img.bounds.x2; ++x) {
      for (int c = 0; c < nc; ++c) {
        float v = img.get(x, y, alpha_only ? 0 : c);
        *dst++ = linearise ? srgb_to_linear(v) : v;
      }
    }
  }
  std::string tmp = path + ".tmp";
  if (!exr::write(tmp, out, error)) return false;
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": cannot write";
    return false;
  }
  return true;
}

std::string frame_file(const std::string& dir, const char* stem, int frame) {
  char name[64];
  std::snprintf(name, sizeof(name), "/%s.%04d.exr", stem, frame);
  return dir + name;
}

}  // namespace rr_ofx
