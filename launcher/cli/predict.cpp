// `dtrain predict`: see commands.h and docs/TEXT_CLASSIFIER.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/io/h5.h"
#include "core/models/text_classifier.h"
#include "datasets/convert.h"
#include "datasets/schema.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"
#include "launcher/train/common.h"
#include "launcher/train/config.h"

namespace dtrain::launcher {
models::TextClassifierConfig text_classifier_config(const Config& cfg, const data::SequenceSchema& s);
}

namespace dtrain::cli {

namespace {

constexpr const char* kEpilog =
    "The model is rebuilt from the config stored in the checkpoint (a checkpoint of the\n"
    "text_classifier recipe); its vocabulary and class names come from its training file\n"
    "(data.train of that config, or --data). Each WORD is lower-cased when the training file\n"
    "was, split into characters (one token each; characters the vocabulary lacks become <unk>)\n"
    "and classified; the top classes are printed with their softmax probabilities.\n"
    "\n"
    "Example:\n"
    "  dtrain train configs/langid_words.toml\n"
    "  dtrain predict --checkpoint runs/langid/checkpoints/step-7350.h5 haus maison casa\n"
    "\n"
    "Exit codes: 0 printed, 1 a file could not be read, 2 bad usage or input (a missing checkpoint,\n"
    "one of another recipe, no word).";

// The UTF-8 characters of s (s is valid UTF-8: lowercase_utf8 returns "" otherwise).
std::vector<std::string> utf8_characters(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

int predict_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain predict", "Classifies words with a text classifier trained by dtrain (e.g. their language).");
  p.add_option("checkpoint", "CKPT", "a checkpoint of the text_classifier recipe (step-<N>.h5)");
  p.add_option("data", "FILE", "the sequence-classification file it was trained on (default: its data.train)");
  p.add_option("top", "K", "classes printed per word", "3");
  p.add_rest("WORD", "the words to classify");
  p.set_epilog(kEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  DT_CHECK_AS(p.has("checkpoint"), ConfigError, "dtrain predict: --checkpoint is required (see dtrain predict --help)");
  const std::vector<std::string> words = p.rest();
  DT_CHECK_AS(!words.empty(), ConfigError, "dtrain predict: no WORD to classify (see dtrain predict --help)");
  const std::string path = p.get("checkpoint");
  DT_CHECK_AS(std::filesystem::exists(path), ConfigError, "dtrain predict: --checkpoint ", path,
              " does not exist (a checkpoint step-<N>.h5 that dtrain train wrote to its checkpoint.dir)");
  const ckpt::Contents c = ckpt::read(path);
  const launcher::Config cfg = launcher::parse_config(c.trainer.config, "the config stored in " + path);
  DT_CHECK_AS(cfg.model.name == "text_classifier", ConfigError, "dtrain predict: --checkpoint ", path, " is a ",
              cfg.model.name, " checkpoint; it needs one of the text_classifier recipe");
  const std::string data_path = p.has("data") ? p.get("data") : cfg.data.train;
  DT_CHECK_AS(std::filesystem::exists(data_path), ConfigError, "dtrain predict: the training file ", data_path,
              p.has("data") ? " (--data) does not exist"
                            : " (data.train of the stored config) does not exist; pass --data FILE where it is now");
  data::SequenceSchema s;
  {
    io::H5File f = io::H5File::open_read(data_path);
    s = data::validate_sequences(f);
  }
  Generator gen = Generator::derive(0, 0, "init");  // replaced by the checkpoint's values
  models::TextClassifier model(launcher::text_classifier_config(cfg, s), gen);
  launcher::load_model(path, c, model);
  model.eval();

  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < s.vocab.size(); ++i) ids[s.vocab[i]] = static_cast<int64_t>(i);
  const int64_t unk = 3;  // kSpecialTokens: <pad> <s> </s> <unk>
  std::vector<std::vector<int64_t>> rows;
  int64_t width = 1;
  for (const std::string& w : words) {
    const std::string text = s.letter_case == "lower" ? data::lowercase_utf8(w) : w;
    DT_CHECK_AS(!text.empty(), ConfigError, "dtrain predict: '", w, "' is not a word (empty or not UTF-8)");
    std::vector<int64_t> r;
    for (const std::string& ch : utf8_characters(text)) r.push_back(ids.count(ch) ? ids[ch] : unk);
    width = std::max<int64_t>(width, static_cast<int64_t>(r.size()));
    rows.push_back(std::move(r));
  }
  const int64_t n = static_cast<int64_t>(rows.size()), k = s.num_classes();
  std::vector<int64_t> tokens(static_cast<size_t>(n * width), 0), lengths;
  for (int64_t i = 0; i < n; ++i) {
    std::copy(rows[static_cast<size_t>(i)].begin(), rows[static_cast<size_t>(i)].end(), tokens.begin() + i * width);
    lengths.push_back(static_cast<int64_t>(rows[static_cast<size_t>(i)].size()));
  }
  std::vector<float> logits;
  {
    autograd::NoGrad no_grad;
    logits = model.forward(Tensor::from_vector(tokens, {n, width}), Tensor::from_vector(lengths, {n}))
                 .to(DType::F32)
                 .to_vector<float>();
  }
  const int64_t top = std::min<int64_t>(std::max<int64_t>(p.get_int("top"), 1), k);
  for (int64_t i = 0; i < n; ++i) {
    const float* l = logits.data() + i * k;
    const float mx = *std::max_element(l, l + k);
    std::vector<std::pair<double, int64_t>> prob;
    double z = 0;
    for (int64_t j = 0; j < k; ++j) z += std::exp(static_cast<double>(l[j] - mx));
    for (int64_t j = 0; j < k; ++j) prob.emplace_back(std::exp(static_cast<double>(l[j] - mx)) / z, j);
    std::sort(prob.begin(), prob.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::printf("%s:", words[static_cast<size_t>(i)].c_str());
    for (int64_t j = 0; j < top; ++j) {
      std::printf(" %s %.1f%%", s.classes[static_cast<size_t>(prob[static_cast<size_t>(j)].second)].c_str(),
                  100 * prob[static_cast<size_t>(j)].first);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace dtrain::cli
