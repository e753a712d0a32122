#include "core/log.h"

#include <chrono>
#include <ctime>

namespace dtrain {

LogLevel Logger::parse_level(const std::string& name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  DT_THROW(ConfigError, "unknown log level '", name, "': use debug, info, warn or error");
}

void Logger::emit(LogLevel level, const std::string& msg) const {
  if (level < level_) return;
  if (level <= LogLevel::Info && !all_ranks_ && rank_ != 0) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&now));
  std::string prefix = world_ > 1 ? "[dtrain r" + std::to_string(rank_) + "/" + std::to_string(world_) + "]" : "[dtrain]";
  std::fprintf(stderr, "%s %s %s: %s\n", stamp, prefix.c_str(), kNames[static_cast<int>(level)], msg.c_str());
}

}  // namespace dtrain
