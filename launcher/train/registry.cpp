// The recipe table: see registry.h.
#include "launcher/train/registry.h"

#include "core/error.h"

namespace dtrain::launcher {

// Each recipe's entry, defined at the end of its file under recipes/.
RecipeEntry autoencoder_recipe();
RecipeEntry captioning_recipe();
RecipeEntry classifier_recipe();
RecipeEntry dcgan_recipe();
RecipeEntry seq2seq_recipe();
RecipeEntry text_classifier_recipe();

const std::vector<RecipeEntry>& recipe_table() {
  static const std::vector<RecipeEntry> table = {
      classifier_recipe(),
      autoencoder_recipe(),
      dcgan_recipe(),
      seq2seq_recipe(),
      text_classifier_recipe(),
      captioning_recipe(),
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
