// The recipe table: see registry.h.
#include "launcher/train/registry.h"

#include "core/error.h"
#include "core/models/image_classifier.h"

namespace dtrain::launcher {

// Each recipe's factory, defined in its file under recipes/.
std::unique_ptr<Recipe> make_classifier_recipe(const Config& cfg);
std::unique_ptr<Recipe> make_seq2seq_recipe(const Config& cfg);
std::unique_ptr<Recipe> make_dcgan_recipe(const Config& cfg);

const std::vector<RecipeEntry>& recipe_table() {
  static const std::vector<RecipeEntry> table = {
      {"classifier", models::image_classifier_names(), make_classifier_recipe},
      {"dcgan", {"dcgan"}, make_dcgan_recipe},
      {"seq2seq", {"seq2seq"}, make_seq2seq_recipe},
  };
  return table;
}

const RecipeEntry* find_recipe(const std::string& model_name) {
  for (const RecipeEntry& e : recipe_table()) {
    for (const std::string& n : e.model_names) {
      if (n == model_name) return &e;
    }
  }
  return nullptr;
}

std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const RecipeEntry& e : recipe_table()) out.insert(out.end(), e.model_names.begin(), e.model_names.end());
  return out;
}

std::unique_ptr<Recipe> make_recipe(const Config& cfg) {
  const RecipeEntry* e = find_recipe(cfg.model.name);
  if (e == nullptr) {
    std::string names;
    for (const std::string& n : model_names()) names += (names.empty() ? "" : ", ") + n;
    DT_THROW(ConfigError, "model.name = '", cfg.model.name, "' names no recipe; one of ", names);
  }
  return e->make(cfg);
}

}  // namespace dtrain::launcher
