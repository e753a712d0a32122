#pragma once
// Converters from public formats to dtrain's HDF5 schemas (schema.h), and seeded
// synthetic sets. Each writes a complete file (replacing an existing one) and returns a
// one-paragraph summary for the CLI. Input problems (a missing or truncated file, a bad
// magic number, inconsistent counts) throw IoError naming the input file.
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/h5.h"
#include "core/tensor.h"

namespace dtrain::data {

struct WriteOptions {
  int64_t chunk_rows = 64;  // chunk extent along N (the sampler's block size)
  int gzip_level = 0;       // 0: uncompressed
  bool checksum = true;     // a Fletcher-32 checksum per chunk (io::CreateOptions::checksum)
};

// Writes an image classification (or image-only) file incrementally: /images u8
// (N, H, W, C) and /labels i64, plus attributes classes, mean and std (computed from the
// pixels written).
class ImageWriter {
 public:
  ImageWriter(const std::string& path, int64_t n, int64_t h, int64_t w, int64_t c,
              std::vector<std::string> classes, const WriteOptions& options, bool with_labels = true);
  // Appends rows: images u8 (k, H, W, C), labels i64 (k,) (ignored when without labels).
  void append(const Tensor& images, const Tensor& labels);
  // Writes the attributes and closes; throws unless exactly N rows were appended.
  void finish();

 private:
  io::H5File file_;
  int64_t n_, h_, w_, c_, written_ = 0;
  std::vector<std::string> classes_;
  bool with_labels_;
  std::vector<double> sum_, sumsq_;  // per channel
};

// IDX (MNIST / Fashion-MNIST), gzip-compressed or not. `classes` empty: "0".."K-1".
std::string convert_idx(const std::string& images_path, const std::string& labels_path, const std::string& out,
                        std::vector<std::string> classes, const WriteOptions& options);

// CIFAR-10 binary batches (data_batch_*.bin: records of 1 label byte + 3072 bytes in
// R, G, B planes of 32x32). `classes` empty: the CIFAR-10 names.
std::string convert_cifar(const std::vector<std::string>& inputs, const std::string& out,
                          std::vector<std::string> classes, const WriteOptions& options);

struct PairsOptions {
  int64_t max_chars = 0;        // drop pairs with a side longer than this (in characters); 0: keep all
  double test_fraction = 0.1;   // share of pairs in the test file
  uint64_t seed = 0;            // the split's seed
  int64_t min_count = 1;        // train-set frequency for a token to enter the vocabulary
  std::string tokens = "words"; // "words" (tokenize) or "chars" (tokenize_chars)
};

// Tab-separated sentence pairs (source TAB target per line) -> train and test files with
// word- or character-level vocabularies built from the train split. Exact duplicate pairs
// are dropped. The train/test split depends on the pairs and the seed only, so both token
// modes put the same pairs in the same files, in the same order.
std::string convert_pairs(const std::string& tsv, const std::string& out_train, const std::string& out_test,
                          const PairsOptions& options, const WriteOptions& write);
// The word tokenizer of convert_pairs: ASCII-lowercased words, ASCII punctuation split off.
std::vector<std::string> tokenize(const std::string& text);
// The character tokenizer: the text ASCII-lowercased, trimmed and with each run of
// whitespace made one space, then one token per UTF-8 code point (the space included).
std::vector<std::string> tokenize_chars(const std::string& text);

struct WordsOptions {
  // Language codes: reads <dict_dir>/freedict-<lang>-eng.index for each (Debian package
  // dict-freedict-<lang>-eng); the class ids follow this order. Empty: every such
  // dictionary installed in dict_dir, in byte order of the code (freedict-eng-* skipped).
  std::vector<std::string> languages;
  std::string dict_dir = "/usr/share/dictd";
  int64_t max_len = 24;             // drop longer words (in characters); >= 1
  int64_t max_per_language = 10000; // keep at most this many words per language (seeded sample); 0: all
  double test_fraction = 0.1;       // share of each language's words in the test file
  uint64_t seed = 0;                // the sample's and the split's seed
};

// FreeDict headwords -> train and test sequence-classification files (schema.h) for
// language identification: one lower-cased word per row as character ids, its language
// as the label. Headwords that are not one word of letters are skipped, duplicates
// within a language kept once, and words found in several languages dropped (attribute
// cross_language = "dropped"). The split is stratified by language; the character
// vocabulary comes from the train split. Same inputs and seed, same output bytes.
std::string convert_words(const std::string& out_train, const std::string& out_test, const WordsOptions& options,
                          const WriteOptions& write);
// The lower-casing of convert_words: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic
// capitals to their small letters; everything else unchanged. Invalid UTF-8 gives "".
std::string lowercase_utf8(const std::string& s);
// The FreeDict dictionaries installed in dir: the <lang> of every freedict-<lang>-eng.index,
// sorted.
std::vector<std::string> installed_freedict_languages(const std::string& dir);

// Seeded synthetic sets. Images: the brightness of a sample grows with its class (so a
// model can learn it), over uniform noise. Pairs: random token sequences and their
// reversal.
std::string synth_images(const std::string& out, int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes,
                         uint64_t seed, const WriteOptions& options);
std::string synth_pairs(const std::string& out, int64_t n, int64_t max_len, int64_t vocab, uint64_t seed,
                        const WriteOptions& options);

}  // namespace dtrain::data
