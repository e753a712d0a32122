// Schema validation: see schema.h.
#include "datasets/schema.h"

#include <algorithm>

namespace dtrain::data {

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::ImageClassification: return "image classification";
    case Kind::ImageOnly: return "image-only";
    case Kind::SequencePairs: return "sequence pairs";
    case Kind::SequenceClassification: return "sequence classification";
    case Kind::ImageCaptions: return "image captions";
  }
  return "?";
}

namespace {

std::string where(const io::H5File& f, const std::string& dataset) {
  return "dataset file '" + f.path() + "', dataset '" + dataset + "'";
}

void require_dataset(const io::H5File& f, const std::string& dataset, const std::string& schema) {
  if (!f.has(dataset)) {
    DT_THROW(IoError, "dataset file '", f.path(), "': missing dataset '", dataset, "', required by the ", schema,
             " schema (docs/DATASETS.md); was the file written by 'dtrain data convert'?");
  }
}

// Checks dtype and rank (and a non-empty first dim) and returns the shape.
Shape check_array(const io::H5File& f, const std::string& dataset, DType dtype, size_t rank, const char* layout) {
  DType stored = f.dtype_of(dataset);
  if (stored != dtype) {
    DT_THROW(IoError, where(f, dataset), ": wrong dtype ", dtype_name(stored), ", expected ", dtype_name(dtype), " ",
             layout, "; convert it (e.g. with h5py: f['", dataset, "'].astype(...)) or regenerate the file");
  }
  Shape shape = f.shape_of(dataset);
  if (shape.size() != rank) {
    DT_THROW(IoError, where(f, dataset), ": wrong rank ", shape.size(), " (shape ", shape_str(shape), "), expected ",
             rank, " dimensions ", layout);
  }
  if (shape[0] == 0) {
    DT_THROW(IoError, where(f, dataset), ": empty dataset (shape ", shape_str(shape),
             "): there are no samples to train on; regenerate the file");
  }
  for (int64_t d : shape) {
    if (d == 0) DT_THROW(IoError, where(f, dataset), ": a dimension is 0 (shape ", shape_str(shape), ")");
  }
  return shape;
}

void check_length(const io::H5File& f, const std::string& dataset, int64_t got, const std::string& other,
                  int64_t want) {
  if (got != want) {
    DT_THROW(IoError, where(f, dataset), ": length mismatch, ", got, " rows but '", other, "' has ", want,
             "; every dataset of a file holds one row per sample");
  }
}

void chunk_info(const io::H5File& f, const std::string& dataset, int64_t* chunk_rows,
                std::vector<std::string>* filters) {
  io::DatasetLayout layout = f.layout_of(dataset);
  *chunk_rows = layout.chunks.empty() ? 0 : layout.chunks[0];
  *filters = layout.filters;
}

std::vector<std::string> check_vocab(const io::H5File& f, const std::string& dataset,
                                     const std::string& schema = "sequence-pair") {
  require_dataset(f, dataset, schema);
  std::vector<std::string> vocab = f.read_strings(dataset);
  for (const std::string& tok : kSpecialTokens) {
    if (std::find(vocab.begin(), vocab.end(), tok) == vocab.end()) {
      DT_THROW(IoError, where(f, dataset), ": the vocabulary (", vocab.size(), " tokens) lacks the special token '",
               tok, "'; every vocabulary must contain <pad> <s> </s> <unk>");
    }
  }
  return vocab;
}

void check_ids(const io::H5File& f, const std::string& dataset, int64_t vocab_size) {
  Tensor ids = f.read(dataset);
  const int32_t* p = ids.data<int32_t>();
  int64_t n = ids.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= vocab_size) {
      int64_t cols = ids.size(1);
      DT_THROW(IoError, where(f, dataset), ": token id ", p[i], " at row ", i / cols, ", position ", i % cols,
               " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
}

void check_lengths(const io::H5File& f, const std::string& dataset, int64_t max_len) {
  Tensor len = f.read(dataset);
  const int32_t* p = len.data<int32_t>();
  for (int64_t i = 0; i < len.numel(); ++i) {
    if (p[i] < 1 || p[i] > max_len) {
      DT_THROW(IoError, where(f, dataset), ": length ", p[i], " at row ", i, " is outside [1, ", max_len, "]");
    }
  }
}

// Labels in [0, K) for the K names of attribute 'classes'; returns the names.
std::vector<std::string> check_labels(const io::H5File& f, int64_t n, const std::string& lead,
                                      const std::string& schema) {
  Shape lshape = check_array(f, "/labels", DType::I64, 1, "(N,)");
  check_length(f, "/labels", lshape[0], lead, n);
  if (!f.has_attribute("/", "classes")) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'classes' of '/': missing; a file of the ", schema,
             " schema names its classes (a list of strings), which also gives their number");
  }
  std::vector<std::string> classes = f.get_attribute<std::vector<std::string>>("/", "classes");
  if (classes.empty()) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'classes' of '/': empty; name at least one class");
  }
  const int64_t k = static_cast<int64_t>(classes.size());
  Tensor labels = f.read("/labels");
  const int64_t* p = labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= k) {
      DT_THROW(IoError, where(f, "/labels"), ": label ", p[i], " at row ", i, " is out of range [0, ", k,
               ") given by the ", k, " names in attribute 'classes'");
    }
  }
  return classes;
}

std::string check_tokens_attribute(const io::H5File& f, const std::string& fallback, const std::string& command) {
  if (!f.has_attribute("/", "tokens")) return fallback;
  std::string tokens = f.get_attribute<std::string>("/", "tokens");
  if (std::find(kPairTokenModes.begin(), kPairTokenModes.end(), tokens) == kPairTokenModes.end()) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'tokens' of '/': value '", tokens,
             "' is not a tokenization dtrain knows; allowed values: 'words' or 'chars' (or no attribute, "
             "meaning '", fallback, "'); rewrite the file with '", command, "'");
  }
  return tokens;
}

// Attributes mean and std (one value per channel, or one for all), or 0 and 1.
void read_normalization(const io::H5File& f, ImageSchema* out) {
  ImageSchema& s = *out;
  s.mean.assign(static_cast<size_t>(s.channels), 0.0);
  s.std.assign(static_cast<size_t>(s.channels), 1.0);
  bool has_mean = f.has_attribute("/", "mean"), has_std = f.has_attribute("/", "std");
  if (has_mean != has_std) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute '", has_mean ? "std" : "mean",
             "' of '/': missing while '", has_mean ? "mean" : "std", "' is present; give both or neither");
  }
  if (has_mean) {
    std::vector<double> mean = f.get_attribute<std::vector<double>>("/", "mean");
    std::vector<double> std = f.get_attribute<std::vector<double>>("/", "std");
    for (auto* v : {&mean, &std}) {
      if (v->size() == 1 && s.channels > 1) v->assign(static_cast<size_t>(s.channels), (*v)[0]);
    }
    if (static_cast<int64_t>(mean.size()) != s.channels || static_cast<int64_t>(std.size()) != s.channels) {
      DT_THROW(IoError, "dataset file '", f.path(), "', attributes 'mean'/'std' of '/': ", mean.size(), " and ",
               std.size(), " values for ", s.channels, " channels; give one value per channel");
    }
    for (double v : std) {
      if (!(v > 0)) DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'std' of '/': value ", v,
                             " is not positive");
    }
    s.mean = mean;
    s.std = std;
    s.has_normalization = true;
  }
}

}  // namespace

Kind detect_kind(const io::H5File& f) {
  if (f.has("/src") || f.has("/tgt")) return Kind::SequencePairs;
  if (f.has("/tokens")) return Kind::SequenceClassification;
  if (f.has("/captions")) return Kind::ImageCaptions;
  if (f.has("/labels")) return Kind::ImageClassification;
  if (f.has("/images") || f.has("/encoded")) return Kind::ImageOnly;
  DT_THROW(IoError, "dataset file '", f.path(), "': missing dataset '/images' (or '/src' for sequence pairs): ",
           "the file follows none of dtrain's dataset schemas (docs/DATASETS.md); datasets present: ",
           [&] {
             std::string s;
             for (const std::string& n : f.list("/")) s += (s.empty() ? "" : ", ") + n;
             return s.empty() ? std::string("none") : s;
           }());
}

ImageSchema validate_images(const io::H5File& f, bool require_labels) {
  if (f.has("/encoded")) return validate_encoded_images(f, require_labels);
  ImageSchema s;
  s.path = f.path();
  require_dataset(f, "/images", "image");
  Shape shape = check_array(f, "/images", DType::U8, 4, "(N, H, W, C)");
  s.n = shape[0];
  s.height = shape[1];
  s.width = shape[2];
  s.channels = shape[3];
  chunk_info(f, "/images", &s.chunk_rows, &s.filters);

  read_normalization(f, &s);

  if (!f.has("/labels")) {
    if (require_labels) require_dataset(f, "/labels", "image classification");
    return s;
  }
  if (!require_labels) return s;  // image-only use of a labelled file
  s.classes = check_labels(f, s.n, "/images", "image classification");
  s.has_labels = true;
  return s;
}

ImageSchema validate_encoded_images(const io::H5File& f, bool require_labels) {
  const std::string schema = "encoded-image";
  ImageSchema s;
  s.path = f.path();
  s.encoded = true;
  for (const char* d : {"/encoded", "/offsets", "/shapes"}) require_dataset(f, d, schema);
  Shape bytes = check_array(f, "/encoded", DType::U8, 1, "(total bytes,): the encoded images end to end");
  Shape offsets = check_array(f, "/offsets", DType::I64, 1, "(N + 1,): where each image's bytes start");
  Shape shapes = check_array(f, "/shapes", DType::I32, 2, "(N, 3): height, width, channels of each image");
  s.encoded_bytes = bytes[0];
  if (offsets[0] < 2) {
    DT_THROW(IoError, where(f, "/offsets"), ": ", offsets[0], " values; N images need N + 1 (at least 2)");
  }
  s.n = offsets[0] - 1;
  check_length(f, "/shapes", shapes[0], "/offsets (N + 1 values)", s.n);
  if (shapes[1] != 3) {
    DT_THROW(IoError, where(f, "/shapes"), ": ", shapes[1], " columns, expected 3 (height, width, channels)");
  }
  if (!f.has_attribute("/", "channels")) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'channels' of '/': missing; the ", schema,
             " schema names the channels every image is loaded with (1 or 3)");
  }
  s.channels = f.get_attribute<int64_t>("/", "channels");
  if (s.channels != 1 && s.channels != 3) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'channels' of '/': ", s.channels,
             "; must be 1 (grayscale) or 3 (RGB)");
  }
  std::vector<int64_t> off = read_encoded_offsets(f);
  if (off.front() != 0 || off.back() != s.encoded_bytes) {
    DT_THROW(IoError, where(f, "/offsets"), ": must start at 0 and end at the size of '/encoded' (", s.encoded_bytes,
             " bytes), got ", off.front(), " and ", off.back());
  }
  for (int64_t i = 0; i < s.n; ++i) {
    if (off[static_cast<size_t>(i + 1)] <= off[static_cast<size_t>(i)]) {
      DT_THROW(IoError, where(f, "/offsets"), ": image ", i, " has ",
               off[static_cast<size_t>(i + 1)] - off[static_cast<size_t>(i)],
               " bytes (offsets ", off[static_cast<size_t>(i)], " to ", off[static_cast<size_t>(i + 1)],
               "); offsets must increase, every image has at least one byte");
    }
  }
  Tensor hw = f.read("/shapes");
  const int32_t* p = hw.data<int32_t>();
  for (int64_t i = 0; i < s.n; ++i) {
    const int32_t h = p[i * 3], w = p[i * 3 + 1], c = p[i * 3 + 2];
    if (h < 1 || w < 1 || (c != 1 && c != 3)) {
      DT_THROW(IoError, where(f, "/shapes"), ": row ", i, " is (", h, ", ", w, ", ", c,
               "); height and width must be positive and channels 1 or 3");
    }
    if (i == 0) {
      s.height = h;
      s.width = w;
    } else if (s.height != h || s.width != w) {
      s.height = s.width = 0;  // sizes differ
    }
  }
  chunk_info(f, f.has("/labels") ? "/labels" : "/offsets", &s.chunk_rows, &s.filters);
  read_normalization(f, &s);
  if (!f.has("/labels")) {
    if (require_labels) require_dataset(f, "/labels", "encoded-image classification");
    return s;
  }
  if (!require_labels) return s;
  s.classes = check_labels(f, s.n, "/shapes", schema);
  s.has_labels = true;
  return s;
}

std::vector<int64_t> read_encoded_offsets(const io::H5File& f) {
  Tensor t = f.read_as("/offsets", DType::I64);
  return t.to_vector<int64_t>();
}

PairSchema validate_pairs(const io::H5File& f) {
  PairSchema s;
  s.path = f.path();
  for (const char* d : {"/src", "/tgt", "/src_len", "/tgt_len", "/src_vocab", "/tgt_vocab"}) {
    require_dataset(f, d, "sequence-pair");
  }
  Shape src = check_array(f, "/src", DType::I32, 2, "(N, Lmax)");
  Shape tgt = check_array(f, "/tgt", DType::I32, 2, "(N, Lmax)");
  Shape src_len = check_array(f, "/src_len", DType::I32, 1, "(N,)");
  Shape tgt_len = check_array(f, "/tgt_len", DType::I32, 1, "(N,)");
  s.n = src[0];
  s.src_max_len = src[1];
  s.tgt_max_len = tgt[1];
  check_length(f, "/tgt", tgt[0], "/src", s.n);
  check_length(f, "/src_len", src_len[0], "/src", s.n);
  check_length(f, "/tgt_len", tgt_len[0], "/src", s.n);
  chunk_info(f, "/src", &s.chunk_rows, &s.filters);
  s.tokens = check_tokens_attribute(f, "words", "dtrain data convert pairs --tokens words|chars");
  s.src_vocab = check_vocab(f, "/src_vocab");
  s.tgt_vocab = check_vocab(f, "/tgt_vocab");
  check_lengths(f, "/src_len", s.src_max_len);
  check_lengths(f, "/tgt_len", s.tgt_max_len);
  check_ids(f, "/src", static_cast<int64_t>(s.src_vocab.size()));
  check_ids(f, "/tgt", static_cast<int64_t>(s.tgt_vocab.size()));
  return s;
}

SequenceSchema validate_sequences(const io::H5File& f) {
  SequenceSchema s;
  s.path = f.path();
  const std::string schema = "sequence-classification";
  for (const char* d : {"/tokens", "/lengths", "/labels", "/vocab"}) require_dataset(f, d, schema);
  Shape tokens = check_array(f, "/tokens", DType::I32, 2, "(N, Lmax)");
  Shape lengths = check_array(f, "/lengths", DType::I32, 1, "(N,)");
  s.n = tokens[0];
  s.max_len = tokens[1];
  check_length(f, "/lengths", lengths[0], "/tokens", s.n);
  chunk_info(f, "/tokens", &s.chunk_rows, &s.filters);
  s.tokens = check_tokens_attribute(f, "chars", "dtrain data convert words");
  for (auto [name, field] : {std::pair{"cross_language", &s.cross_language}, std::pair{"case", &s.letter_case}}) {
    if (f.has_attribute("/", name)) *field = f.get_attribute<std::string>("/", name);
  }
  s.classes = check_labels(f, s.n, "/tokens", schema);
  s.vocab = check_vocab(f, "/vocab", schema);
  check_lengths(f, "/lengths", s.max_len);
  const int64_t vocab_size = static_cast<int64_t>(s.vocab.size());
  check_ids(f, "/tokens", vocab_size);
  Tensor ids = f.read("/tokens"), len = f.read("/lengths");
  const int32_t* p = ids.data<int32_t>();
  const int32_t* l = len.data<int32_t>();
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t j = l[i]; j < s.max_len; ++j) {
      if (p[i * s.max_len + j] != 0) {
        DT_THROW(IoError, where(f, "/tokens"), ": token id ", p[i * s.max_len + j], " at row ", i, ", position ", j,
                 " is past the row's length ", l[i], " (from '/lengths'); positions past the length must hold "
                 "<pad> (id 0)");
      }
    }
  }
  return s;
}

CaptionSchema validate_captions(const io::H5File& f) {
  CaptionSchema s;
  const std::string schema = "image-caption";
  for (const char* d : {"/images", "/captions", "/caption_len", "/vocab"}) require_dataset(f, d, schema);
  s.images = validate_images(f, false);
  Shape captions = check_array(f, "/captions", DType::I32, 2, "(N, Lmax)");
  Shape lengths = check_array(f, "/caption_len", DType::I32, 1, "(N,)");
  s.n = captions[0];
  s.max_len = captions[1];
  check_length(f, "/captions", s.n, "/images", s.images.n);
  check_length(f, "/caption_len", lengths[0], "/images", s.images.n);
  std::vector<std::string> caption_filters;
  chunk_info(f, "/captions", &s.chunk_rows, &caption_filters);
  if (!f.has_attribute("/", "classes")) {
    DT_THROW(IoError, "dataset file '", f.path(), "', attribute 'classes' of '/': missing; a file of the ", schema,
             " schema names the items its captions describe (a list of strings)");
  }
  s.classes = f.get_attribute<std::vector<std::string>>("/", "classes");
  s.vocab = check_vocab(f, "/vocab", schema);
  check_lengths(f, "/caption_len", s.max_len);
  const int64_t vocab_size = static_cast<int64_t>(s.vocab.size());
  check_ids(f, "/captions", vocab_size);
  Tensor ids = f.read("/captions"), len = f.read("/caption_len");
  const int32_t* p = ids.data<int32_t>();
  const int32_t* l = len.data<int32_t>();
  for (int64_t i = 0; i < s.n; ++i) {
    const int32_t* row = p + i * s.max_len;
    if (l[i] < 2 || row[0] != 1 || row[l[i] - 1] != 2) {
      DT_THROW(IoError, where(f, "/captions"), ": caption at row ", i, " (length ", l[i], " from '/caption_len') does "
               "not run from <s> (id 1) to </s> (id 2); every caption is '<s> words </s>'");
    }
    for (int64_t j = l[i]; j < s.max_len; ++j) {
      if (row[j] != 0) {
        DT_THROW(IoError, where(f, "/captions"), ": token id ", row[j], " at row ", i, ", position ", j,
                 " is past the row's length ", l[i], " (from '/caption_len'); positions past the length must hold "
                 "<pad> (id 0)");
      }
    }
  }
  for (const char* d : {"/items", "/sources"}) {
    if (!f.has(d)) continue;
    Shape shape = check_array(f, d, DType::I64, 2, "(N, cells)");
    check_length(f, d, shape[0], "/images", s.n);
    if (std::string(d) != "/items") continue;
    s.has_items = true;
    Tensor items = f.read(d);
    const int64_t* q = items.data<int64_t>();
    const int64_t k = static_cast<int64_t>(s.classes.size());
    for (int64_t i = 0; i < items.numel(); ++i) {
      if (q[i] < -1 || q[i] >= k) {
        DT_THROW(IoError, where(f, d), ": class ", q[i], " at row ", i / shape[1], ", cell ", i % shape[1],
                 " is outside [-1, ", k, ") (-1: an empty cell; ", k, " names in attribute 'classes')");
      }
    }
  }
  return s;
}

std::vector<int64_t> class_counts(const io::H5File& f, const SequenceSchema& s) {
  std::vector<int64_t> counts(static_cast<size_t>(s.num_classes()), 0);
  Tensor labels = f.read("/labels");
  const int64_t* p = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) counts[static_cast<size_t>(p[i])]++;
  return counts;
}

std::vector<int64_t> class_counts(const io::H5File& f, const ImageSchema& s) {
  std::vector<int64_t> counts(static_cast<size_t>(s.num_classes()), 0);
  if (!s.has_labels) return counts;
  Tensor labels = f.read("/labels");
  const int64_t* p = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) counts[static_cast<size_t>(p[i])]++;
  return counts;
}

}  // namespace dtrain::data
