#pragma once
// Typed exceptions and the check macros of dtrain.
//
// Library code throws; only launcher/main.cpp turns an exception into an exit code.
// Every message says what was wrong and what to do about it. The macros record the file
// and line, so a report from a user names the failing check.
#include <sstream>
#include <stdexcept>
#include <string>

namespace dtrain {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad argument or shape passed to an API.
class ValueError : public Error { using Error::Error; };
// Bad user configuration: CLI flag, config key, subcommand.
class ConfigError : public Error { using Error::Error; };
// A file that cannot be read or written, or whose contents are malformed.
class IoError : public Error { using Error::Error; };
// A CUDA, cuBLAS, cuDNN or NCCL call failed, or no usable device.
class DeviceError : public Error { using Error::Error; };
// A feature this binary was built without (e.g. CUDA).
class NotBuiltError : public Error { using Error::Error; };
// Ranks disagree or a collective failed.
class DistributedError : public Error { using Error::Error; };

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
template <typename E, typename... Args>
[[noreturn]] void throw_at(const char* file, int line, const Args&... args) {
  throw E(concat(args..., " [", file, ":", line, "]"));
}
}  // namespace detail

}  // namespace dtrain

// DT_CHECK(cond, ErrorType, message parts...): throws ErrorType with the message and the
// source location when cond is false. Never compiled out (unlike assert).
#define DT_CHECK_AS(cond, Type, ...)                                                 \
  do {                                                                               \
    if (!(cond)) ::dtrain::detail::throw_at<Type>(__FILE__, __LINE__, __VA_ARGS__);   \
  } while (0)
#define DT_CHECK(cond, ...) DT_CHECK_AS(cond, ::dtrain::ValueError, __VA_ARGS__)
#define DT_THROW(Type, ...) ::dtrain::detail::throw_at<Type>(__FILE__, __LINE__, __VA_ARGS__)
