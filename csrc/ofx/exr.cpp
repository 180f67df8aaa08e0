#include "exr.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <numeric>

namespace rr_ofx::exr {

namespace {

constexpr uint32_t kMagic = 20000630;  // 0x762f3101, little endian on disk
enum PixelType { kUint = 0, kHalf = 1, kFloat = 2 };
enum Compression { kNone = 0, kZips = 2, kZip = 3 };

void put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_float(std::string& out, float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  put32(out, v);
}
void attribute(std::string& out, const char* name, const char* type, const std::string& value) {
  out += name;
  out.push_back('\0');
  out += type;
  out.push_back('\0');
  put32(out, static_cast<uint32_t>(value.size()));
  out += value;
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Reader {
  const std::string& data;
  size_t pos = 0;
  bool ok = true;
  bool need(size_t n) {
    if (pos + n > data.size()) ok = false;
    return ok;
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(data[pos + i])) << (8 * i);
    pos += 4;
    return v;
  }
  uint64_t u64() {
    uint64_t lo = u32();
    return lo | (static_cast<uint64_t>(u32()) << 32);
  }
  std::string cstr() {
    size_t end = data.find('\0', pos);
    if (end == std::string::npos || end - pos > 255) {
      ok = false;
      return {};
    }
    std::string s = data.substr(pos, end - pos);
    pos = end + 1;
    return s;
  }
};

// ZIP blocks: zlib, then a byte predictor, then the two halves (even/odd bytes) interleaved back.
bool unzip_block(const char* src, size_t size, std::string& out, size_t expected) {
  std::string tmp(expected, '\0');
  uLongf len = static_cast<uLongf>(expected);
  if (uncompress(reinterpret_cast<Bytef*>(tmp.data()), &len, reinterpret_cast<const Bytef*>(src),
                 static_cast<uLong>(size)) != Z_OK || len != expected)
    return false;
  auto* t = reinterpret_cast<unsigned char*>(tmp.data());
  for (size_t i = 1; i < expected; ++i) t[i] = static_cast<unsigned char>(t[i - 1] + t[i] - 128);
  out.resize(expected);
  size_t half = (expected + 1) / 2;
  for (size_t i = 0; i < expected; ++i) out[i] = static_cast<char>(i % 2 == 0 ? t[i / 2] : t[half + i / 2]);
  return true;
}

}  // namespace

int Image::channel(const std::string& name) const {
  auto it = std::find(channels.begin(), channels.end(), name);
  return it == channels.end() ? -1 : static_cast<int>(it - channels.begin());
}

bool write(const std::string& path, const Image& img, std::string& error) {
  const size_t nc = img.channels.size();
  if (img.width <= 0 || img.height <= 0 || nc == 0 || img.pixels.size() != size_t(img.width) * img.height * nc) {
    error = path + ": bad image to write";
    return false;
  }
  std::vector<size_t> order(nc);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return img.channels[a] < img.channels[b]; });

  std::string out;
  put32(out, kMagic);
  put32(out, 2);  // version 2, single-part scanline, short names
  std::string chlist;
  for (size_t c : order) {
    chlist += img.channels[c];
    chlist.push_back('\0');
    put32(chlist, kFloat);
    chlist.append(4, '\0');  // pLinear + reserved
    put32(chlist, 1);
    put32(chlist, 1);
  }
  chlist.push_back('\0');
  std::string box;
  for (int v : {0, 0, img.width - 1, img.height - 1}) put32(box, static_cast<uint32_t>(v));
  std::string one_float, center;
  put_float(one_float, 1.0f);
  put_float(center, 0.0f);
  put_float(center, 0.0f);
  attribute(out, "channels", "chlist", chlist);
  attribute(out, "compression", "compression", std::string(1, static_cast<char>(kNone)));
  attribute(out, "dataWindow", "box2i", box);
  attribute(out, "displayWindow", "box2i", box);
  attribute(out, "lineOrder", "lineOrder", std::string(1, '\0'));
  attribute(out, "pixelAspectRatio", "float", one_float);
  attribute(out, "screenWindowCenter", "v2f", center);
  attribute(out, "screenWindowWidth", "float", one_float);
  out.push_back('\0');

  const size_t line_bytes = size_t(img.width) * nc * 4;
  const size_t table = out.size();
  const size_t first = table + size_t(img.height) * 8;
  for (int y = 0; y < img.height; ++y) put64(out, first + size_t(y) * (8 + line_bytes));
  std::vector<float> line(size_t(img.width) * nc);
  for (int y = 0; y < img.height; ++y) {
    put32(out, static_cast<uint32_t>(y));
    put32(out, static_cast<uint32_t>(line_bytes));
    const float* row = img.pixels.data() + size_t(y) * img.width * nc;
    for (size_t k = 0; k < nc; ++k)
      for (int x = 0; x < img.width; ++x) put_float(out, row[size_t(x) * nc + order[k]]);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) {
    error = path + ": cannot write the file";
    return false;
  }
  return true;
}

bool read(const std::string& path, Image& img, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = path + ": cannot open";
    return false;
  }
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Reader r{data};
  auto fail = [&](const std::string& why) {
    error = path + ": " + why;
    return false;
  };
  if (r.u32() != kMagic) return fail("not an OpenEXR file");
  uint32_t version = r.u32();
  if ((version & 0xff) != 2 || (version & 0x1a00) != 0)  // tiled, deep, multi-part
    return fail("unsupported OpenEXR layout (only single-part scanline images)");
  struct Channel {
    std::string name;
    int type;
  };
  std::vector<Channel> channels;
  int compression = -1, x0 = 0, y0 = 0, x1 = -1, y1 = -1;
  while (r.ok) {
    std::string name = r.cstr();
    if (name.empty()) break;
    std::string type = r.cstr();
    uint32_t size = r.u32();
    if (!r.need(size)) break;
    Reader a{data, r.pos};
    if (name == "channels") {
      while (a.ok && a.pos < r.pos + size) {
        std::string ch = a.cstr();
        if (ch.empty()) break;
        int t = static_cast<int>(a.u32());
        a.u32();
        uint32_t xs = a.u32(), ys = a.u32();
        if (xs != 1 || ys != 1) return fail("subsampled channels are not supported");
        channels.push_back({ch, t});
      }
    } else if (name == "compression") {
      compression = static_cast<unsigned char>(data[r.pos]);
    } else if (name == "dataWindow") {
      x0 = static_cast<int>(a.u32());
      y0 = static_cast<int>(a.u32());
      x1 = static_cast<int>(a.u32());
      y1 = static_cast<int>(a.u32());
    }
    r.pos += size;
  }
  if (!r.ok || channels.empty() || x1 < x0 || y1 < y0) return fail("truncated or invalid header");
  if (compression != kNone && compression != kZips && compression != kZip)
    return fail("unsupported compression " + std::to_string(compression) + " (none, ZIPS and ZIP are read)");
  img.width = x1 - x0 + 1;
  img.height = y1 - y0 + 1;
  img.channels.clear();
  for (auto& c : channels) {
    if (c.type < 0 || c.type > 2) return fail("bad channel type");
    img.channels.push_back(c.name);
  }
  const size_t nc = channels.size();
  size_t line_bytes = 0;
  for (auto& c : channels) line_bytes += size_t(img.width) * (c.type == kHalf ? 2 : 4);
  const int lines_per_chunk = compression == kZip ? 16 : 1;
  const int chunks = (img.height + lines_per_chunk - 1) / lines_per_chunk;
  img.pixels.assign(size_t(img.width) * img.height * nc, 0.0f);
  std::vector<uint64_t> offsets(chunks);
  for (auto& o : offsets) o = r.u64();
  std::string block;
  for (int c = 0; c < chunks && r.ok; ++c) {
    Reader ch{data, static_cast<size_t>(offsets[c])};
    int y = static_cast<int>(ch.u32()) - y0;
    uint32_t size = ch.u32();
    if (!ch.ok || y < 0 || y >= img.height || !ch.need(size)) return fail("corrupt chunk " + std::to_string(c));
    int lines = std::min(lines_per_chunk, img.height - y);
    size_t expected = line_bytes * lines;
    const char* src = data.data() + ch.pos;
    if (size < expected) {
      if (compression == kNone || !unzip_block(src, size, block, expected)) return fail("corrupt ZIP block");
      src = block.data();
    } else if (size != expected) {
      return fail("chunk of unexpected size");
    }
    for (int l = 0; l < lines; ++l) {
      float* row = img.pixels.data() + size_t(y + l) * img.width * nc;
      for (size_t k = 0; k < nc; ++k) {
        for (int x = 0; x < img.width; ++x) {
          float v;
          if (channels[k].type == kHalf) {
            uint16_t h;
            std::memcpy(&h, src, 2);
            v = half_to_float(h);
            src += 2;
          } else if (channels[k].type == kFloat) {
            std::memcpy(&v, src, 4);
            src += 4;
          } else {
            uint32_t u;
            std::memcpy(&u, src, 4);
            v = static_cast<float>(u);
            src += 4;
          }
          row[size_t(x) * nc + k] = v;
        }
      }
    }
  }
  return true;
}

}  // namespace rr_ofx::exr
