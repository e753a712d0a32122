#pragma once
// Precondition checks shared by the CPU kernels, the CUDA launchers and nothing else.
// Violations throw std::invalid_argument naming the kernel and the bad value (ops/
// cannot see core's exception types; see ops/kernels.inc).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/geometry.h"

namespace dtrain::ops::detail {

[[noreturn]] inline void invalid(const char* kernel, const std::string& what) {
  throw std::invalid_argument(std::string("dtrain::ops::") + kernel + ": " + what);
}

// A size argument must be >= 0.
inline void check_size(const char* kernel, const char* name, int64_t value) {
  if (value < 0) invalid(kernel, std::string(name) + " must be >= 0, got " + std::to_string(value));
}

// A buffer of `count` elements must not be null unless it is empty.
inline void check_ptr(const char* kernel, const char* name, const void* p, int64_t count) {
  if (count > 0 && p == nullptr) {
    invalid(kernel, std::string(name) + " is null but holds " + std::to_string(count) + " elements");
  }
}

// A kernel window (convolution or pooling) over a padded input: sizes >= 0, window and
// stride >= 1, the window no larger than the padded input.
inline void check_window(const char* kernel, const char* what, int64_t h, int64_t w, int64_t kh, int64_t kw,
                         int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  check_size(kernel, "h", h);
  check_size(kernel, "w", w);
  check_size(kernel, "pad_h", pad_h);
  check_size(kernel, "pad_w", pad_w);
  auto dims = [](int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); };
  if (kh < 1 || kw < 1) invalid(kernel, std::string(what) + " size must be >= 1, got " + dims(kh, kw));
  if (stride_h < 1 || stride_w < 1) invalid(kernel, "stride must be >= 1, got " + dims(stride_h, stride_w));
  if (h + 2 * pad_h < kh || w + 2 * pad_w < kw) {
    invalid(kernel, std::string("the ") + what + " (" + dims(kh, kw) + ") is larger than the padded input (" +
                        dims(h + 2 * pad_h, w + 2 * pad_w) + ")");
  }
}

inline void check_conv_geom(const char* kernel, const Conv2dGeom& g) {
  check_size(kernel, "n", g.n);
  check_size(kernel, "c_in", g.c_in);
  check_size(kernel, "c_out", g.c_out);
  check_window(kernel, "kernel", g.h, g.w, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w);
}

inline void check_pool_geom(const char* kernel, const Pool2dGeom& g) {
  check_size(kernel, "n", g.n);
  check_size(kernel, "c", g.c);
  check_window(kernel, "window", g.h, g.w, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w);
}

inline void check_adaptive_geom(const char* kernel, const AdaptivePoolGeom& g) {
  check_size(kernel, "n", g.n);
  check_size(kernel, "c", g.c);
  check_size(kernel, "h", g.h);
  check_size(kernel, "w", g.w);
  auto dims = [](int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); };
  if (g.h_out < 1 || g.w_out < 1) invalid(kernel, "output size must be >= 1, got " + dims(g.h_out, g.w_out));
  if ((g.h == 0 || g.w == 0) && g.n * g.c > 0) invalid(kernel, "input planes are empty (" + dims(g.h, g.w) + ")");
}

}  // namespace dtrain::ops::detail
