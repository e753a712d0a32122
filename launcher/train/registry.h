#pragma once
// The recipes `dtrain train` knows, in one table (registry.cpp): model.name selects the
// recipe whose entry lists it. Adding a recipe is one file (launcher/train/recipes/) and
// one line in that table.
#include <memory>
#include <string>
#include <vector>

#include "launcher/train/config.h"
#include "launcher/train/config_keys.h"
#include "launcher/train/recipe.h"

namespace dtrain::launcher {

struct RecipeEntry {
  const char* name;                      // "classifier"
  std::vector<std::string> model_names;  // the model.name values it trains
  const char* doc;                       // where users read about it: "docs/GAN.md"
  std::unique_ptr<Recipe> (*make)(const Config& cfg);
  // The config keys only this recipe reads (listed under its name in --help), or null.
  std::vector<ConfigKey> (*keys)() = nullptr;
  // Checks of its keys, and of what its model names need of the others; called for
  // every config (whatever model.name), or null.
  void (*validate)(const Config& cfg, const ConfigCheck& check) = nullptr;
};

const std::vector<RecipeEntry>& recipe_table();
// The entry whose model_names hold `model_name`; null for none.
const RecipeEntry* find_recipe(const std::string& model_name);
// Every model.name any recipe trains, in table order.
std::vector<std::string> model_names();
// The recipe for cfg.model.name; ConfigError when no recipe trains it.
std::unique_ptr<Recipe> make_recipe(const Config& cfg);

}  // namespace dtrain::launcher
