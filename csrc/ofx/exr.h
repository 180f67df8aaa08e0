// A small OpenEXR scanline reader/writer for the plugin's own files, so that the plugin does not
// link OpenEXR into hosts that ship their own (symbol clashes). Written from the OpenEXR file
// layout (magic, version, attribute header, line offset table, scanline chunks).
//   write: float32 channels R,G,B[,A] (or any names), no compression (what the worker reads);
//   read:  half/float/uint channels, NO_COMPRESSION, ZIPS (1 line) and ZIP (16 lines) blocks:
//          what rerender writes (media/images.py: ZIP-compressed float or half EXR).
#pragma once

#include <string>
#include <vector>

namespace rr_ofx::exr {

struct Image {
  int width = 0, height = 0;
  std::vector<std::string> channels;  // in file order (sorted by name, as OpenEXR stores them)
  std::vector<float> pixels;          // width * height * channels.size(), interleaved, top row first

  int channel(const std::string& name) const;  // index in `channels`, -1 if absent
};

// Write `img` atomically enough for its readers: the caller writes to a temporary name and renames.
// Channels are stored sorted by name whatever their order in `img`. Returns false with `error` set.
bool write(const std::string& path, const Image& img, std::string& error);

bool read(const std::string& path, Image& img, std::string& error);

}  // namespace rr_ofx::exr
