// Fletcher-32 as HDF5 computes it: see fletcher32.h.
#include "core/io/fletcher32.h"

namespace dtrain::io {

uint32_t fletcher32(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t a = 0, b = 0;
  size_t words = bytes / 2;
  while (words > 0) {
    // 360 words keep both sums below 2^32 before they are folded (as in Fletcher's paper
    // and HDF5's code).
    size_t n = words < 360 ? words : 360;
    words -= n;
    for (; n > 0; --n, p += 2) {
      a += (static_cast<uint32_t>(p[0]) << 8) | p[1];
      b += a;
    }
    a = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
  }
  if (bytes % 2 != 0) {
    a += static_cast<uint32_t>(*p) << 8;
    b += a;
    a = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
  }
  a = (a & 0xffff) + (a >> 16);
  b = (b & 0xffff) + (b >> 16);
  return (b << 16) | a;
}

bool fletcher32_matches(uint32_t sum, const unsigned char stored[4]) {
  const uint32_t le = static_cast<uint32_t>(stored[0]) | (static_cast<uint32_t>(stored[1]) << 8) |
                      (static_cast<uint32_t>(stored[2]) << 16) | (static_cast<uint32_t>(stored[3]) << 24);
  const uint32_t c0 = sum & 0xff, c1 = (sum >> 8) & 0xff, c2 = (sum >> 16) & 0xff, c3 = sum >> 24;
  const uint32_t old_form = (c1 << 24) | (c0 << 16) | (c3 << 8) | c2;
  return le == sum || le == old_form;
}

}  // namespace dtrain::io
