// `dtrain data`: see data.h.
#include "launcher/cli/commands.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "core/error.h"
#include "datasets/captions.h"
#include "datasets/convert.h"
#include "datasets/inspect.h"
#include "launcher/cli/args.h"

namespace dtrain::cli {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty() || !out.empty()) out.push_back(cur);
  return out;
}

void add_write_options(cli::ArgParser& p) {
  p.add_option("chunk-rows", "N", "rows per HDF5 chunk along the sample axis (the sampler's block size)", "64");
  p.add_option("gzip", "LEVEL", "gzip compression level 0..9 (0: none; uncompressed reads fastest)", "0");
}

data::WriteOptions write_options(const cli::ArgParser& p) {
  data::WriteOptions w;
  w.chunk_rows = p.get_int("chunk-rows");
  w.gzip_level = static_cast<int>(p.get_int("gzip"));
  if (w.chunk_rows < 1) DT_THROW(ConfigError, "--chunk-rows must be at least 1, got ", w.chunk_rows);
  if (w.gzip_level < 0 || w.gzip_level > 9) DT_THROW(ConfigError, "--gzip must be in 0..9, got ", w.gzip_level);
  return w;
}

int64_t positive(const cli::ArgParser& p, const std::string& name) {
  int64_t v = p.get_int(name);
  if (v < 1) DT_THROW(ConfigError, "--", name, " must be at least 1, got ", v);
  return v;
}

struct Command {
  const char* summary;
  std::function<void(cli::ArgParser&)> options;
  std::function<std::string(const cli::ArgParser&)> run;  // returns the report
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"convert idx",
       {"IDX files (MNIST / Fashion-MNIST, gzip or not) to an image classification file",
        [](cli::ArgParser& p) {
          p.add_option("images", "FILE", "the images IDX file (e.g. train-images-idx3-ubyte.gz)");
          p.add_option("labels", "FILE", "the labels IDX file (e.g. train-labels-idx1-ubyte.gz)");
          p.add_option("out", "FILE", "the HDF5 file to write (replaced if present)");
          p.add_option("classes", "A,B,...", "class names in label order (default: 0, 1, ...)", "");
          add_write_options(p);
        },
        [](const cli::ArgParser& p) {
          for (const char* o : {"images", "labels", "out"}) {
            if (!p.has(o)) DT_THROW(ConfigError, "dtrain data convert idx: --", o, " is required");
          }
          return data::convert_idx(p.get("images"), p.get("labels"), p.get("out"), split_commas(p.get("classes")),
                                   write_options(p));
        }}},
      {"convert cifar",
       {"CIFAR-10 binary batches to an image classification file",
        [](cli::ArgParser& p) {
          p.add_option("inputs", "F1,F2,...", "the binary batch files, in order (e.g. data_batch_1.bin,...)");
          p.add_option("out", "FILE", "the HDF5 file to write (replaced if present)");
          p.add_option("classes", "A,B,...", "class names in label order (default: the CIFAR-10 names)", "");
          add_write_options(p);
        },
        [](const cli::ArgParser& p) {
          for (const char* o : {"inputs", "out"}) {
            if (!p.has(o)) DT_THROW(ConfigError, "dtrain data convert cifar: --", o, " is required");
          }
          return data::convert_cifar(split_commas(p.get("inputs")), p.get("out"), split_commas(p.get("classes")),
                                     write_options(p));
        }}},
      {"convert pairs",
       {"tab-separated sentence pairs to train and test sequence-pair files with word or character vocabularies",
        [](cli::ArgParser& p) {
          p.add_option("input", "FILE", "UTF-8 text, one 'source<TAB>target' pair per line");
          p.add_option("out-train", "FILE", "the train file to write");
          p.add_option("out-test", "FILE", "the test file to write");
          p.add_option("max-chars", "N", "drop pairs with a side longer than N characters (0: keep all)", "0");
          p.add_option("test-fraction", "F", "share of the pairs in the test file", "0.1");
          p.add_option("seed", "N", "seed of the train/test split", "0");
          p.add_option("min-count", "N", "train-set count for a token to enter the vocabulary", "1");
          p.add_option("tokens", "words|chars",
                       "one token per word (ASCII punctuation split off) or per character (the space included)",
                       "words");
          add_write_options(p);
        },
        [](const cli::ArgParser& p) {
          for (const char* o : {"input", "out-train", "out-test"}) {
            if (!p.has(o)) DT_THROW(ConfigError, "dtrain data convert pairs: --", o, " is required");
          }
          data::PairsOptions o;
          o.max_chars = p.get_int("max-chars");
          o.test_fraction = p.get_double("test-fraction");
          o.seed = static_cast<uint64_t>(p.get_int("seed"));
          o.min_count = positive(p, "min-count");
          o.tokens = p.get("tokens");
          if (o.tokens != "words" && o.tokens != "chars") {
            DT_THROW(ConfigError, "--tokens must be 'words' or 'chars', got '", o.tokens, "'");
          }
          if (o.test_fraction < 0 || o.test_fraction >= 1) {
            DT_THROW(ConfigError, "--test-fraction must be in [0, 1), got ", o.test_fraction);
          }
          return data::convert_pairs(p.get("input"), p.get("out-train"), p.get("out-test"), o, write_options(p));
        }}},
      {"convert words",
       {"FreeDict headwords of several languages to train and test language-identification files "
        "(sequence classification: one word per row as characters, its language as the label)",
        [](cli::ArgParser& p) {
          p.add_option("out-train", "FILE", "the train file to write");
          p.add_option("out-test", "FILE", "the test file to write (not written with --test-fraction 0)");
          p.add_option("languages", "L1,L2,...",
                       "FreeDict language codes, in class order (default: every freedict-<lang>-eng installed in "
                       "--dict-dir, sorted)",
                       "");
          p.add_option("dict-dir", "DIR", "where the dict-freedict-<lang>-eng packages put their .index files",
                       "/usr/share/dictd");
          p.add_option("max-len", "N", "drop words longer than N characters", "24");
          p.add_option("max-per-language", "N", "keep a seeded sample of at most N words per language (0: all)",
                       "10000");
          p.add_option("test-fraction", "F", "share of each language's words in the test file", "0.1");
          p.add_option("seed", "N", "seed of the sample and the train/test split", "0");
          add_write_options(p);
          p.set_epilog(
              "Words are lower-cased, kept once per language, and dropped when found in several languages\n"
              "(attribute cross_language = \"dropped\"). A missing dictionary names the package to install,\n"
              "e.g. apt-get install dict-freedict-deu-eng. Formats: docs/DATASETS.md.\n");
        },
        [](const cli::ArgParser& p) {
          for (const char* o : {"out-train", "out-test"}) {
            if (!p.has(o)) DT_THROW(ConfigError, "dtrain data convert words: --", o, " is required");
          }
          data::WordsOptions o;
          for (const std::string& l : split_commas(p.get("languages"))) {
            if (l.empty()) DT_THROW(ConfigError, "--languages: empty language code in '", p.get("languages"), "'");
            o.languages.push_back(l);
          }
          o.dict_dir = p.get("dict-dir");
          o.max_len = positive(p, "max-len");
          o.max_per_language = p.get_int("max-per-language");
          if (o.max_per_language < 0) {
            DT_THROW(ConfigError, "--max-per-language must be >= 0 (0: all), got ", o.max_per_language);
          }
          o.test_fraction = p.get_double("test-fraction");
          if (o.test_fraction < 0 || o.test_fraction >= 1) {
            DT_THROW(ConfigError, "--test-fraction must be in [0, 1), got ", o.test_fraction);
          }
          o.seed = static_cast<uint64_t>(p.get_int("seed"));
          return data::convert_words(p.get("out-train"), p.get("out-test"), o, write_options(p));
        }}},
      {"synth images",
       {"a seeded synthetic image classification set (brightness encodes the class)",
        [](cli::ArgParser& p) {
          p.add_option("out", "FILE", "the HDF5 file to write");
          p.add_option("n", "N", "number of samples", "1024");
          p.add_option("height", "H", "image height", "32");
          p.add_option("width", "W", "image width", "32");
          p.add_option("channels", "C", "channels", "3");
          p.add_option("classes", "K", "number of classes (1..256)", "10");
          p.add_option("seed", "N", "seed", "0");
          add_write_options(p);
        },
        [](const cli::ArgParser& p) {
          if (!p.has("out")) DT_THROW(ConfigError, "dtrain data synth images: --out is required");
          return data::synth_images(p.get("out"), positive(p, "n"), positive(p, "height"), positive(p, "width"),
                                    positive(p, "channels"), positive(p, "classes"),
                                    static_cast<uint64_t>(p.get_int("seed")), write_options(p));
        }}},
      {"synth captions",
       {"captioned 2 x 2 scenes of an image file's items, train scenes of the train images, test scenes of the test "
        "images",
        [](cli::ArgParser& p) {
          p.add_option("train-images", "FILE", "image classification file whose items make the train scenes",
                       "data/fashion_mnist_train.h5");
          p.add_option("test-images", "FILE", "image classification file whose items make the test scenes",
                       "data/fashion_mnist_test.h5");
          p.add_option("out-train", "FILE", "the train file to write (replaced if present)");
          p.add_option("out-test", "FILE", "the test file to write (replaced if present)");
          p.add_option("n-train", "N", "train scenes", "10000");
          p.add_option("n-test", "N", "test scenes", "1000");
          p.add_option("empty", "P", "probability of a cell being empty (a scene with no item is drawn again)",
                       "0.25");
          p.add_option("seed", "N", "seed of the scenes", "0");
          add_write_options(p);
          p.set_epilog(
              "Cells are filled row by row (top left, top right, bottom left, bottom right); the caption says\n"
              "the top row, then the bottom row, e.g. 'a bag and a sneaker above , a coat on the right below'\n"
              "(the grammar: docs/DATASETS.md, \"Image captions\"). Same inputs and seed, same file bytes.\n");
        },
        [](const cli::ArgParser& p) {
          for (const char* o : {"out-train", "out-test"}) {
            if (!p.has(o)) DT_THROW(ConfigError, "dtrain data synth captions: --", o, " is required");
          }
          data::CaptionsOptions o;
          o.n_train = positive(p, "n-train");
          o.n_test = positive(p, "n-test");
          o.empty_prob = p.get_double("empty");
          if (o.empty_prob < 0 || o.empty_prob >= 1) {
            DT_THROW(ConfigError, "--empty must be in [0, 1), got ", o.empty_prob);
          }
          o.seed = static_cast<uint64_t>(p.get_int("seed"));
          return data::synth_captions(p.get("train-images"), p.get("test-images"), p.get("out-train"),
                                      p.get("out-test"), o, write_options(p));
        }}},
      {"synth pairs",
       {"a seeded synthetic sequence-pair set (the target reverses the source)",
        [](cli::ArgParser& p) {
          p.add_option("out", "FILE", "the HDF5 file to write");
          p.add_option("n", "N", "number of pairs", "1024");
          p.add_option("max-len", "L", "longest source, in words", "10");
          p.add_option("vocab", "V", "vocabulary size, with the 4 special tokens", "32");
          p.add_option("seed", "N", "seed", "0");
          add_write_options(p);
        },
        [](const cli::ArgParser& p) {
          if (!p.has("out")) DT_THROW(ConfigError, "dtrain data synth pairs: --out is required");
          return data::synth_pairs(p.get("out"), positive(p, "n"), positive(p, "max-len"), positive(p, "vocab"),
                                   static_cast<uint64_t>(p.get_int("seed")), write_options(p));
        }}},
  };
  return table;
}

constexpr const char* kUsage =
    "usage: dtrain data SUBCOMMAND [options]\n"
    "\n"
    "Dataset files (HDF5; formats in docs/DATASETS.md):\n"
    "  convert idx     IDX (MNIST / Fashion-MNIST) -> image classification file\n"
    "  convert cifar   CIFAR-10 binary batches -> image classification file\n"
    "  convert pairs   tab-separated sentence pairs -> train/test sequence-pair files\n"
    "  convert words   FreeDict headwords -> train/test language-identification files\n"
    "  synth images    seeded synthetic images\n"
    "  synth pairs     seeded synthetic sequence pairs\n"
    "  synth captions  captioned 2 x 2 scenes of an image file's items -> train/test image-caption files\n"
    "  inspect FILE    schema, counts, class balance and validation of a file\n"
    "\n"
    "Run 'dtrain data SUBCOMMAND --help' for its options.\n";

int inspect(const std::vector<std::string>& args) {
  cli::ArgParser p("dtrain data inspect", "Prints a dataset file's schema, shapes, storage (chunks, compression), "
                                          "sample and class counts, and whether it passes validation.");
  p.add_positional("FILE", "the HDF5 dataset file");
  p.set_epilog("Exit code 0 when the file is valid, 1 when it is not.");
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  data::InspectResult r = data::inspect(p.get("FILE"));
  std::fputs(r.text.c_str(), stdout);
  return r.valid ? 0 : 1;
}

}  // namespace

int data_main(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(kUsage, stdout);
    if (args.empty()) DT_THROW(ConfigError, "dtrain data: missing subcommand (convert, synth or inspect)");
    return 0;
  }
  if (args[0] == "inspect") return inspect(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] != "convert" && args[0] != "synth") {
    DT_THROW(ConfigError, "dtrain data: unknown subcommand '", args[0], "'; choose convert, synth or inspect");
  }
  std::string kinds;
  for (const auto& [name, cmd] : commands()) {
    if (name.rfind(args[0] + " ", 0) == 0) {
      if (!kinds.empty()) kinds += ", ";
      kinds += name.substr(args[0].size() + 1);
    }
  }
  if (args.size() < 2 || args[1] == "-h" || args[1] == "--help") {
    std::printf("usage: dtrain data %s KIND [options]\n\nKIND is one of: %s\n", args[0].c_str(), kinds.c_str());
    for (const auto& [name, cmd] : commands()) {
      if (name.rfind(args[0] + " ", 0) == 0) std::printf("  %-14s %s\n", name.c_str(), cmd.summary);
    }
    if (args.size() < 2) DT_THROW(ConfigError, "dtrain data ", args[0], ": missing KIND (", kinds, ")");
    return 0;
  }
  auto it = commands().find(args[0] + " " + args[1]);
  if (it == commands().end()) {
    DT_THROW(ConfigError, "dtrain data ", args[0], ": unknown kind '", args[1], "'; choose one of: ", kinds);
  }
  cli::ArgParser p("dtrain data " + it->first, it->second.summary);
  it->second.options(p);
  p.parse(std::vector<std::string>(args.begin() + 2, args.end()));
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::string report = it->second.run(p);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s\n(%.2f s)\n", report.c_str(), s);
  return 0;
}

}  // namespace dtrain::cli
