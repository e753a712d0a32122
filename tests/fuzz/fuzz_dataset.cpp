// Fuzz target: opening a dataset file (HDF5) and validating its schema, as `dtrain data
// inspect` and the loader do (datasets/schema.h, datasets/inspect.h), then reading rows
// of every dataset it names through the loader's row reader (both the direct pread path
// and the library path) when validation accepted it; inspect's --verify decodes every
// image of an encoded-images file. The input is the file's bytes.
//
// HDF5's own crashes and endless loops are told apart first (Note [HDF5's own defects],
// tests/fuzz/hdf5_screen.h).
#include <algorithm>
#include <vector>

#include "core/io/h5.h"
#include "datasets/inspect.h"
#include "datasets/row_reader.h"
#include "datasets/schema.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/hdf5_screen.h"

namespace {

void read_rows(const dtrain::io::H5File& f, const char* name, bool direct) {
  dtrain::data::RowReader r = dtrain::data::RowReader::open(f, name, direct ? 0 : -1, direct);
  if (r.rows() == 0 || r.row_bytes() > (1u << 20)) return;
  const int64_t count = std::min<int64_t>(r.rows(), 3);
  std::vector<unsigned char> buf(r.row_bytes() * static_cast<size_t>(count));
  r.read(0, count, buf.data());
  r.read(r.rows() - count, count, buf.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  static const std::string path = dtrain::fuzz::scratch_path("dataset", ".h5");
  dtrain::fuzz::write_file(path, data, size);
  if (!dtrain::fuzz::hdf5_screen::library_survives(path)) {
    if (dtrain::fuzz::seeds_must_pass()) dtrain::fuzz::seed_refused("the HDF5 library cannot read it");
    return 0;
  }
  dtrain::data::inspect(path);  // never throws, by its contract
  dtrain::data::inspect(path, {true, nullptr});  // --verify: every image read (encoded ones decoded)
  dtrain::fuzz::refuse_cleanly([&] {
    auto f = dtrain::io::H5File::open_read(path);
    using dtrain::data::Kind;
    std::vector<const char*> names;
    switch (dtrain::data::detect_kind(f)) {
      case Kind::ImageClassification: {
        dtrain::data::ImageSchema s = dtrain::data::validate_images(f, true);
        dtrain::data::class_counts(f, s);
        names = s.encoded ? std::vector<const char*>{"encoded", "offsets", "shapes", "labels"}
                          : std::vector<const char*>{"images", "labels"};
        break;
      }
      case Kind::ImageOnly:
        names = dtrain::data::validate_images(f, false).encoded ? std::vector<const char*>{"encoded", "offsets"}
                                                                 : std::vector<const char*>{"images"};
        break;
      case Kind::SequencePairs:
        dtrain::data::validate_pairs(f);
        names = {"src", "tgt", "src_len", "tgt_len"};
        break;
      case Kind::SequenceClassification:
        dtrain::data::class_counts(f, dtrain::data::validate_sequences(f));
        names = {"tokens", "lengths", "labels"};
        break;
      case Kind::ImageCaptions:
        dtrain::data::validate_captions(f);
        names = {"images", "captions", "caption_len"};
        break;
    }
    for (const char* name : names) {
      read_rows(f, name, true);
      read_rows(f, name, false);
    }
  });
  return 0;
}
