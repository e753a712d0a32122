#pragma once
// Precondition checks shared by the CPU kernels, the CUDA launchers and nothing else.
// Violations throw std::invalid_argument naming the kernel and the bad value (ops/
// cannot see core's exception types; see ops/kernels.inc).
#include <cstdint>
#include <stdexcept>
#include <string>

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

}  // namespace dtrain::ops::detail
