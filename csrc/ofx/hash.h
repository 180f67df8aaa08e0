// A fast 128-bit hash of byte streams for the job digests (cache keys of frames and parameters, not
// a cryptographic hash): two 64-bit lanes over 16-byte blocks with multiply-rotate mixing, and the
// 64-bit finaliser of MurmurHash3 at the end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace rr_ofx {

class Hasher {
 public:
  void update(const void* data, size_t n) {
    auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (buffered_) {
      size_t take = std::min(n, sizeof(buf_) - buffered_);
      std::memcpy(buf_ + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (buffered_ < sizeof(buf_)) return;
      block(buf_);
      buffered_ = 0;
    }
    for (; n >= 16; p += 16, n -= 16) block(p);
    std::memcpy(buf_, p, n);
    buffered_ = n;
  }
  void update(const std::string& s) {
    uint64_t n = s.size();
    update(&n, sizeof(n));
    update(s.data(), s.size());
  }
  template <class T>
  void value(const T& v) { update(&v, sizeof(v)); }

  std::string hex() const {
    Hasher h = *this;
    unsigned char tail[16] = {};
    std::memcpy(tail, h.buf_, h.buffered_);
    h.block(tail);
    uint64_t a = fmix(h.a_ ^ h.total_), b = fmix(h.b_ ^ (h.total_ * kC1));
    a += b;
    b += a;
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (uint64_t v : {a, b})
      for (int i = 60; i >= 0; i -= 4) out.push_back(digits[(v >> i) & 0xf]);
    return out.substr(0, 24);
  }

 private:
  static constexpr uint64_t kC1 = 0x87c37b91114253d5ULL, kC2 = 0x4cf5ad432745937fULL;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t fmix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
  }
  void block(const unsigned char* p) {
    uint64_t k1, k2;
    std::memcpy(&k1, p, 8);
    std::memcpy(&k2, p + 8, 8);
    a_ ^= rotl(k1 * kC1, 31) * kC2;
    a_ = rotl(a_, 27) + b_;
    a_ = a_ * 5 + 0x52dce729;
    b_ ^= rotl(k2 * kC2, 33) * kC1;
    b_ = rotl(b_, 31) + a_;
    b_ = b_ * 5 + 0x38495ab5;
  }
  uint64_t a_ = 0x9e3779b97f4a7c15ULL, b_ = 0x6a09e667f3bcc909ULL, total_ = 0;
  unsigned char buf_[16] = {};
  size_t buffered_ = 0;
};

}  // namespace rr_ofx
