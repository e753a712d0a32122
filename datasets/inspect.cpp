// inspect: see inspect.h.
#include "datasets/inspect.h"

#include <cstdio>
#include <sstream>

#include "core/io/h5.h"
#include "datasets/schema.h"

namespace dtrain::data {

namespace {
std::string storage(int64_t chunk_rows, const std::vector<std::string>& filters) {
  std::string s = chunk_rows > 0 ? "chunked, " + std::to_string(chunk_rows) + " rows per chunk" : "contiguous";
  for (const std::string& f : filters) s += ", " + f;
  return s;
}
}  // namespace

InspectResult inspect(const std::string& path) {
  std::ostringstream os;
  InspectResult r;
  os << "file: " << path << "\n";
  try {
    io::H5File f = io::H5File::open_read(path);
    Kind kind = detect_kind(f);
    os << "schema: " << kind_name(kind) << "\n";
    if (kind == Kind::SequencePairs) {
      PairSchema s = validate_pairs(f);
      os << "samples: " << s.n << "\n"
         << "src: i32 (" << s.n << ", " << s.src_max_len << "), vocabulary " << s.src_vocab.size() << " tokens\n"
         << "tgt: i32 (" << s.n << ", " << s.tgt_max_len << "), vocabulary " << s.tgt_vocab.size() << " tokens\n"
         << "tokens: " << s.tokens << (s.tokens == "chars" ? " (one token per character)" : " (one token per word)")
         << "\n"
         << "storage: " << storage(s.chunk_rows, s.filters) << "\n";
    } else if (kind == Kind::SequenceClassification) {
      SequenceSchema s = validate_sequences(f);
      os << "samples: " << s.n << "\n"
         << "tokens: i32 (" << s.n << ", " << s.max_len << "), vocabulary " << s.vocab.size() << " tokens, one per "
         << (s.tokens == "chars" ? "character" : "word") << "\n"
         << "storage: " << storage(s.chunk_rows, s.filters) << "\n";
      if (!s.letter_case.empty()) os << "case: " << s.letter_case << "\n";
      if (!s.cross_language.empty()) os << "cross_language: " << s.cross_language << "\n";
      char buf[64];
      std::vector<int64_t> counts = class_counts(f, s);
      os << "classes: " << s.num_classes() << "\n";
      for (size_t k = 0; k < counts.size(); ++k) {
        std::snprintf(buf, sizeof buf, "%6.2f%%", 100.0 * static_cast<double>(counts[k]) / static_cast<double>(s.n));
        os << "  " << k << " " << s.classes[k] << ": " << counts[k] << " (" << buf << ")\n";
      }
    } else if (kind == Kind::ImageCaptions) {
      CaptionSchema c = validate_captions(f);
      const ImageSchema& s = c.images;
      os << "samples: " << c.n << "\n"
         << "images: u8 (" << s.n << ", " << s.height << ", " << s.width << ", " << s.channels << ") (N, H, W, C)\n"
         << "captions: i32 (" << c.n << ", " << c.max_len << "), vocabulary " << c.vocab.size()
         << " words, one per word\n"
         << "storage: " << storage(s.chunk_rows, s.filters) << "\n";
      os << "items: " << c.classes.size() << " (";
      for (size_t k = 0; k < c.classes.size(); ++k) os << (k ? ", " : "") << c.classes[k];
      os << ")" << (c.has_items ? ", per cell in /items" : "") << "\n";
    } else {
      ImageSchema s = validate_images(f, kind == Kind::ImageClassification);
      os << "samples: " << s.n << "\n"
         << "images: u8 (" << s.n << ", " << s.height << ", " << s.width << ", " << s.channels << ") (N, H, W, C)\n"
         << "storage: " << storage(s.chunk_rows, s.filters) << "\n";
      char buf[64];
      os << "mean/std (pixel/255):" << (s.has_normalization ? "" : " absent, using");
      for (size_t c = 0; c < s.mean.size(); ++c) {
        std::snprintf(buf, sizeof buf, " %.4f/%.4f", s.mean[c], s.std[c]);
        os << buf;
      }
      os << "\n";
      if (s.has_labels) {
        std::vector<int64_t> counts = class_counts(f, s);
        os << "classes: " << s.num_classes() << "\n";
        for (size_t k = 0; k < counts.size(); ++k) {
          std::snprintf(buf, sizeof buf, "%6.2f%%", 100.0 * static_cast<double>(counts[k]) / static_cast<double>(s.n));
          os << "  " << k << " " << s.classes[k] << ": " << counts[k] << " (" << buf << ")\n";
        }
      }
    }
    os << "validation: OK\n";
    r.valid = true;
  } catch (const std::exception& e) {
    os << "validation: FAILED: " << e.what() << "\n";
  }
  r.text = os.str();
  return r;
}

}  // namespace dtrain::data
