#pragma once
// The config keys' table entries and the validation helpers, for config.cpp and for the
// recipes that declare their own keys (RecipeEntry::keys, registry.h).
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "launcher/train/config.h"

namespace dtrain::launcher {

enum class KeyType { Int, Float, Bool, String, FloatList };

struct ConfigKey {
  std::string name;  // dotted: "optimizer.lr"
  KeyType type;
  std::string help;
  std::function<void*(Config&)> ref;  // the member this key sets
  std::string recipe = "";            // the recipe that declares it; "" for every recipe's keys
};

#define DT_CONFIG_KEY(name, type, member, help) \
  ::dtrain::launcher::ConfigKey { name, ::dtrain::launcher::KeyType::type, help, [](::dtrain::launcher::Config& c) -> void* { return &c.member; } }

// The seven keys of the OptimizerConfig `member` under `table` ("optimizer.name", ...);
// every help text starts with `who` ("" or "dcgan generator's optimizer: "), and `lr` says
// what the learning rate is.
std::vector<ConfigKey> optimizer_keys(const std::string& table, OptimizerConfig Config::*member, const std::string& who,
                                      const std::string& lr);

// Validation: throws ConfigError naming the key and where its value came from (the file,
// a --set, or "the default").
class ConfigCheck {
 public:
  explicit ConfigCheck(const std::map<std::string, std::string>& origin) : origin_(origin) {}
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  void one_of(const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) const;
  // Every key of an OptimizerConfig under `table` ("optimizer", "optimizer_g").
  void optimizer(const std::string& table, const OptimizerConfig& o) const;

 private:
  const std::map<std::string, std::string>& origin_;
};

}  // namespace dtrain::launcher
