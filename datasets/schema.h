#pragma once
// The dataset file schemas of dtrain (DESIGN.md, "File formats"; docs/DATASETS.md), and
// their validation on open.
//
//   image classification: /images uint8 (N, H, W, C), chunked along N;
//                         /labels int64 (N,) in [0, K);
//                         root attributes classes (K names), mean, std (C floats, in units
//                         of pixel/255, used to normalize).
//   image-only (GANs):    /images alone (labels, classes optional and ignored).
//   encoded images:       /encoded uint8 (total bytes,) the images' encoded files (JPEG,
//                         PNG, PGM/PPM) end to end; /offsets int64 (N + 1,) where image i
//                         is bytes [offsets[i], offsets[i+1]); /shapes int32 (N, 3) the
//                         height, width, channels each image decodes to; /labels, classes,
//                         mean, std as above; root attribute channels (1 or 3, what every
//                         image becomes when loaded). Written by `dtrain data convert
//                         folder --store encoded`; the loader decodes it (schema_encoded.cpp).
//   sequence pairs:       /src, /tgt int32 (N, Lmax) padded; /src_len, /tgt_len int32 (N,)
//                         in [1, Lmax]; /src_vocab, /tgt_vocab 1-D string datasets that
//                         contain <pad> <s> </s> <unk>; every id below its vocabulary size;
//                         root attribute tokens ("words" or "chars": what one token is;
//                         "words" when absent).
//   sequence classification: /tokens int32 (N, Lmax) padded with <pad> (0) after each
//                         sequence; /lengths int32 (N,) in [1, Lmax]; /labels int64 (N,) in
//                         [0, K); /vocab 1-D strings containing <pad> <s> </s> <unk>; root
//                         attributes classes (K names), tokens ("chars" or "words"; "chars"
//                         when absent). Written by `dtrain data convert words`.
//   image captions:       /images uint8 (N, H, W, C) as above; /captions int32 (N, Lmax)
//                         "<s> words </s>" padded with <pad> (0); /caption_len int32 (N,)
//                         in [2, Lmax]; /vocab 1-D strings containing <pad> <s> </s> <unk>;
//                         root attributes classes (the items the captions name), mean, std;
//                         optional /items, /sources int64 (N, 4) (each cell's class and
//                         source row, -1 for an empty cell). Written by `dtrain data synth
//                         captions` (datasets/captions.h).
//
// Every violation throws IoError naming the file, the dataset (or attribute) and the
// problem, with what to do. Validation reads the labels / lengths / ids in full (a few
// bytes per sample); it never reads the images.
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/h5.h"

namespace dtrain::data {

enum class Kind { ImageClassification, ImageOnly, SequencePairs, SequenceClassification, ImageCaptions };
std::string kind_name(Kind k);

// The special tokens every vocabulary holds, at these ids in files dtrain writes.
inline const std::vector<std::string> kSpecialTokens = {"<pad>", "<s>", "</s>", "<unk>"};

// What one token of a sequence-pair file is: a word (ASCII punctuation split off) or one
// character (a UTF-8 code point, the space included).
inline const std::vector<std::string> kPairTokenModes = {"words", "chars"};

struct ImageSchema {
  std::string path;
  int64_t n = 0, height = 0, width = 0, channels = 0;
  bool has_labels = false;
  std::vector<std::string> classes;  // empty for image-only
  std::vector<double> mean, std;     // per channel, pixel/255 units; 0 and 1 when absent
  bool has_normalization = false;    // the file had mean and std
  int64_t chunk_rows = 0;            // chunk extent along N; 0 when contiguous
  std::vector<std::string> filters;
  // The encoded-images schema: images are stored encoded (variable length); height and
  // width are then the size they all share, or 0 when sizes differ (the loader sets them
  // to its output size), and chunk_rows is that of /labels.
  bool encoded = false;
  int64_t encoded_bytes = 0;  // size of /encoded
  int64_t num_classes() const { return static_cast<int64_t>(classes.size()); }
  int64_t sample_bytes() const { return height * width * channels; }
};

struct PairSchema {
  std::string path;
  int64_t n = 0, src_max_len = 0, tgt_max_len = 0;
  std::vector<std::string> src_vocab, tgt_vocab;
  std::string tokens = "words";  // attribute 'tokens': one of kPairTokenModes
  int64_t chunk_rows = 0;
  std::vector<std::string> filters;
};

// Sequence classification (language identification of words, text classification).
struct SequenceSchema {
  std::string path;
  int64_t n = 0, max_len = 0;
  std::vector<std::string> vocab;
  std::vector<std::string> classes;
  std::string tokens = "chars";          // attribute 'tokens': one of kPairTokenModes
  std::string cross_language, letter_case;  // attributes 'cross_language', 'case' (informational; "" when absent)
  int64_t chunk_rows = 0;
  std::vector<std::string> filters;
  int64_t num_classes() const { return static_cast<int64_t>(classes.size()); }
};

// Image captioning: images with one caption each (datasets/captions.h).
struct CaptionSchema {
  ImageSchema images;                // /images, mean, std (has_labels false; classes below)
  int64_t n = 0, max_len = 0;        // captions (N, Lmax), <s> and </s> included
  std::vector<std::string> vocab;
  std::vector<std::string> classes;  // attribute 'classes': the items the captions name
  bool has_items = false;            // /items present
  int64_t chunk_rows = 0;            // of /captions
};

// Which schema the file follows, judged by the datasets present (/src -> pairs, /tokens
// -> sequence classification, /captions -> image captions, /labels -> image
// classification, /images -> image-only).
// Throws IoError when it follows none.
Kind detect_kind(const io::H5File& f);

// Validate and describe. `require_labels` false accepts an image-only file. A file with
// /encoded is validated as the encoded-images schema (validate_encoded_images).
ImageSchema validate_images(const io::H5File& f, bool require_labels);
ImageSchema validate_encoded_images(const io::H5File& f, bool require_labels);
// The encoded-images file's /offsets (N + 1 values), as validated.
std::vector<int64_t> read_encoded_offsets(const io::H5File& f);
PairSchema validate_pairs(const io::H5File& f);
// Also checks that every position past a row's length holds <pad> (0).
SequenceSchema validate_sequences(const io::H5File& f);
// Also checks <s> first, </s> last and <pad> past each caption's length.
CaptionSchema validate_captions(const io::H5File& f);

// Class counts of an image or sequence classification file (from /labels).
std::vector<int64_t> class_counts(const io::H5File& f, const ImageSchema& s);
std::vector<int64_t> class_counts(const io::H5File& f, const SequenceSchema& s);

}  // namespace dtrain::data
