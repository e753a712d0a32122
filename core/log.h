#pragma once
// Rank-aware logging. A Logger knows its rank and world size; messages are prefixed
// with "[dtrain r<rank>/<world>]" when the world has more than one rank, and
// info-level messages can be restricted to rank 0 so N ranks do not print N copies.
#include <cstdio>
#include <string>

#include "core/error.h"

namespace dtrain {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

class Logger {
 public:
  Logger(int rank = 0, int world = 1, LogLevel level = LogLevel::Info, bool all_ranks = false)
      : rank_(rank), world_(world), level_(level), all_ranks_(all_ranks) {}

  template <typename... Args> void debug(const Args&... a) const { emit(LogLevel::Debug, detail::concat(a...)); }
  template <typename... Args> void info(const Args&... a) const { emit(LogLevel::Info, detail::concat(a...)); }
  template <typename... Args> void warn(const Args&... a) const { emit(LogLevel::Warn, detail::concat(a...)); }
  template <typename... Args> void error(const Args&... a) const { emit(LogLevel::Error, detail::concat(a...)); }

  int rank() const { return rank_; }
  int world() const { return world_; }
  void set_level(LogLevel level) { level_ = level; }

  // Parses "debug", "info", "warn", "error"; throws ConfigError otherwise.
  static LogLevel parse_level(const std::string& name);

 private:
  void emit(LogLevel level, const std::string& msg) const;
  int rank_, world_;
  LogLevel level_;
  bool all_ranks_;  // false: debug/info only on rank 0 (warnings and errors always)
};

}  // namespace dtrain
