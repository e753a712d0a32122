// `dtrain data`: see data.h.
#include "launcher/cli/commands.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <unistd.h>

#include "core/error.h"
#include "datasets/captions.h"
#include "datasets/convert.h"
#include "datasets/convert_folder.h"
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
  p.add_flag("no-checksum", "write no Fletcher-32 checksum per chunk (by default every chunk has one, and reads "
                            "refuse a damaged chunk)");
}

data::WriteOptions write_options(const cli::ArgParser& p) {
  data::WriteOptions w;
  w.chunk_rows = p.get_int("chunk-rows");
  w.gzip_level = static_cast<int>(p.get_int("gzip"));
  w.checksum = !p.flag("no-checksum");
  if (w.chunk_rows < 1) DT_THROW(ConfigError, "--chunk-rows must be at least 1, got ", w.chunk_rows);
  if (w.gzip_level < 0 || w.gzip_level > 9) DT_THROW(ConfigError, "--gzip must be in 0..9, got ", w.gzip_level);
  return w;
}

int64_t positive(const cli::ArgParser& p, const std::string& name) {
  int64_t v = p.get_int(name);
  if (v < 1) DT_THROW(ConfigError, "--", name, " must be at least 1, got ", v);
  return v;
}

// A progress line on stderr for long conversions: redrawn in place on a terminal, a line
// every 10% otherwise (logs).
class ProgressLine {
 public:
  explicit ProgressLine(std::string what) : what_(std::move(what)), tty_(isatty(2) == 1) {}
  void operator()(int64_t done, int64_t total, double elapsed) {
    const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const int tenth = static_cast<int>(frac * 10);
    if (!tty_ && tenth == last_tenth_ && done != total) return;
    last_tenth_ = tenth;
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    constexpr int kWidth = 30;
    std::string bar(static_cast<size_t>(frac * kWidth), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld | %.0f images/s | elapsed %s | ETA %s%s", tty_ ? "\r" : "",
                 what_.c_str(), bar.c_str(), static_cast<int>(frac * 100), static_cast<long long>(done),
                 static_cast<long long>(total), rate, clock(elapsed).c_str(), clock(eta).c_str(),
                 tty_ && done != total ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  static std::string clock(double s) {
    char buf[32];
    const long t = static_cast<long>(s + 0.5);
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    return buf;
  }
  std::string what_;
  bool tty_;
  int last_tenth_ = -1;
};

struct Command {
  const char* summary;
  std::function<void(cli::ArgParser&)> options;
  std::function<std::string(const cli::ArgParser&)> run;  // returns the report
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"convert folder",
       {"a folder of JPEG/PNG images, one subfolder per class, to an image classification file (encoded or raw)",
        [](cli::ArgParser& p) {
          p.add_positional("ROOT", "the folder holding one subfolder per class (torchvision's ImageFolder layout)");
          p.add_option("out", "FILE", "the HDF5 file to write (replaced if present)");
          p.add_option("store", "encoded|raw",
                       "encoded: each image's encoded bytes (variable length; decoded by the loader); raw: pixels "
                       "u8 (N, H, W, C), one size for all (use --crop)",
                       "encoded");
          p.add_option("resize", "N", "resize so that the shorter side is N pixels (0: keep the size)", "0");
          p.add_option("crop", "N", "centre crop to N x N after --resize (0: none)", "0");
          p.add_option("channels", "1|3", "channels of the stored images: 3 (RGB) or 1 (grayscale)", "3");
          p.add_option("encode", "jpeg|png", "--store encoded: the format of resized or cropped images", "jpeg");
          p.add_option("quality", "Q", "JPEG quality 1..100 of re-encoded images", "90");
          p.add_option("split", "F", "share of each class's images held out to --split-out (0: none)", "0");
          p.add_option("split-out", "FILE", "the held-out file (with --split)", "");
          p.add_option("seed", "N", "seed of the row order and of --split", "0");
          p.add_option("workers", "N", "decoding threads (0: every core this process may use)", "0");
          p.add_option("on-error", "fail|skip",
                       "a file named like an image that does not decode (truncated, damaged, not an image): stop "
                       "with its path (fail), or report it and leave it out (skip)",
                       "fail");
          p.add_option("chunk-rows", "N", "rows per HDF5 chunk along the sample axis (the sampler's block size)",
                       "64");
          p.add_flag("no-checksum", "write no Fletcher-32 checksum per chunk (by default every chunk has one, and "
                                    "reads refuse a damaged chunk)");
          p.set_epilog(
              "Classes are the subfolders of ROOT in sorted order (the label is the index); images are the files\n"
              "below each (nested folders included) ending in .jpg, .jpeg, .png, .pgm or .ppm; other files and\n"
              "names starting with '.' are ignored and counted. A class folder without images stays a class.\n"
              "Rows are written in a seeded random order. With --store encoded and neither --resize nor --crop,\n"
              "the files' bytes are kept as they are (each is fully decoded once to check it). Formats and the\n"
              "loader's data.image_size / data.augment.random_resized_crop: docs/DATASETS.md.\n"
              "Example: dtrain data convert folder photos/ --out train.h5 --resize 256 --split 0.1 --split-out "
              "val.h5\n");
        },
        [](const cli::ArgParser& p) {
          if (!p.has("out")) DT_THROW(ConfigError, "dtrain data convert folder: --out is required");
          data::FolderOptions o;
          o.store = p.get("store");
          o.resize = p.get_int("resize");
          o.crop = p.get_int("crop");
          o.channels = p.get_int("channels");
          o.encode = p.get("encode");
          o.quality = static_cast<int>(p.get_int("quality"));
          o.split = p.get_double("split");
          o.split_out = p.get("split-out");
          o.seed = static_cast<uint64_t>(p.get_int("seed"));
          o.workers = static_cast<int>(p.get_int("workers"));
          o.chunk_rows = positive(p, "chunk-rows");
          o.checksum = !p.flag("no-checksum");
          const std::string on_error = p.get("on-error");
          if (on_error != "fail" && on_error != "skip") {
            DT_THROW(ConfigError, "--on-error must be 'fail' or 'skip', got '", on_error, "'");
          }
          o.skip_errors = on_error == "skip";
          if (o.workers < 0) DT_THROW(ConfigError, "--workers must be >= 0 (0: every core), got ", o.workers);
          if (o.store == "raw" && o.crop == 0 && o.resize > 0) {
            DT_THROW(ConfigError, "--store raw --resize ", o.resize, " without --crop: resized images keep their "
                     "aspect ratio, so their sizes differ; add --crop ", o.resize);
          }
          auto line = std::make_shared<ProgressLine>("converting");
          o.progress = [line](const data::FolderProgress& f) { (*line)(f.done, f.total, f.elapsed_s); };
          o.warn = [](const std::string& m) { std::fprintf(stderr, "\n%s\n", m.c_str()); };
          return data::convert_folder(p.get("ROOT"), p.get("out"), o);
        }}},
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
    "  convert folder  a folder of JPEG/PNG images (a subfolder per class) -> image classification file\n"
    "  synth images    seeded synthetic images\n"
    "  synth pairs     seeded synthetic sequence pairs\n"
    "  synth captions  captioned 2 x 2 scenes of an image file's items -> train/test image-caption files\n"
    "  inspect FILE    schema, counts, class balance, checksums and validation of a file (--verify: check every\n"
    "                  chunk's checksum and decode every image)\n"
    "\n"
    "Run 'dtrain data SUBCOMMAND --help' for its options.\n";

int inspect(const std::vector<std::string>& args) {
  cli::ArgParser p("dtrain data inspect", "Prints a dataset file's schema, shapes, storage (chunks, compression), "
                                          "checksums, sample and class counts, and whether it passes validation.");
  p.add_positional("FILE", "the HDF5 dataset file");
  p.add_flag("verify", "also read every chunk of the checksummed datasets and check its Fletcher-32 checksum "
                       "(each damaged chunk is named with its rows), and read every image; encoded images are "
                       "decoded, and each one that fails is named by row (and path)");
  p.set_epilog("Exit code 0 when the file is valid, 1 when it is not.");
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  data::InspectOptions options;
  options.verify = p.flag("verify");
  auto line = std::make_shared<ProgressLine>("verifying");
  if (options.verify) options.progress = [line](int64_t done, int64_t total, double s) { (*line)(done, total, s); };
  data::InspectResult r = data::inspect(p.get("FILE"), options);
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
