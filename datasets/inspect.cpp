// inspect: see inspect.h.
#include "datasets/inspect.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/io/h5.h"
#include "core/io/image.h"
#include "datasets/row_reader.h"
#include "datasets/schema.h"

namespace dtrain::data {

namespace {
std::string storage(int64_t chunk_rows, const std::vector<std::string>& filters) {
  std::string s = chunk_rows > 0 ? "chunked, " + std::to_string(chunk_rows) + " rows per chunk" : "contiguous";
  for (const std::string& f : filters) s += ", " + f;
  return s;
}

// Decodes every image of an encoded-images file; returns one line per bad row (at most
// `limit`) and the count.
std::vector<std::string> verify_encoded(const io::H5File& f, const ImageSchema& s, const InspectOptions& o,
                                        int64_t* bad_count) {
  std::vector<int64_t> off = read_encoded_offsets(f);
  Tensor shapes = f.read("/shapes");
  const int32_t* hw = shapes.data<int32_t>();
  RowReader reader = RowReader::open(f, "/encoded", 0);
  std::mutex mu;  // the reader (unless direct), the report
  std::vector<std::pair<int64_t, std::string>> bad;
  std::atomic<int64_t> next{0}, done{0};
  auto work = [&] {
    std::vector<uint8_t> bytes;
    while (true) {
      const int64_t i = next++;
      if (i >= s.n) return;
      const int64_t b0 = off[static_cast<size_t>(i)], b1 = off[static_cast<size_t>(i + 1)];
      bytes.resize(static_cast<size_t>(b1 - b0));
      std::string error;
      try {
        {
          std::unique_lock<std::mutex> lock(mu, std::defer_lock);
          if (!reader.direct()) lock.lock();
          reader.read(b0, b1 - b0, bytes.data());
        }
        io::Image img = io::decode_image(bytes.data(), bytes.size(), std::string("row ") + std::to_string(i));
        const int32_t* want = hw + i * 3;
        if (img.height != want[0] || img.width != want[1] || img.channels != want[2]) {
          std::ostringstream os;
          os << "decodes to " << img.height << "x" << img.width << "x" << img.channels << " but /shapes says "
             << want[0] << "x" << want[1] << "x" << want[2];
          error = os.str();
        }
      } catch (const std::exception& e) {
        error = e.what();
      }
      ++done;
      if (!error.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        bad.emplace_back(i, error);
      }
    }
  };
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, cores); ++t) pool.emplace_back(work);
  const auto t0 = std::chrono::steady_clock::now();
  if (o.progress) {
    while (done.load() < s.n) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      o.progress(done.load(), s.n, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  for (std::thread& t : pool) t.join();
  std::sort(bad.begin(), bad.end());
  *bad_count = static_cast<int64_t>(bad.size());
  // The paths (informational) only when they are needed: HDF5 reads variable-length
  // strings of a damaged file less safely than numbers.
  std::vector<std::string> paths;
  if (!bad.empty() && f.has("/paths")) {
    try {
      paths = f.read_strings("/paths");
    } catch (const std::exception&) {
      paths.clear();  // rows are named without their paths
    }
  }
  std::vector<std::string> lines;
  for (size_t k = 0; k < std::min<size_t>(bad.size(), 20); ++k) {
    std::string line = std::string("  row ") + std::to_string(bad[k].first);
    if (static_cast<size_t>(bad[k].first) < paths.size()) line += " (" + paths[static_cast<size_t>(bad[k].first)] + ")";
    lines.push_back(line + ": " + bad[k].second);
  }
  return lines;
}
// The file's top-level datasets with and without Fletcher-32 checksums (Note [Checksummed
// chunks] in row_reader.h). Objects that are not readable datasets are left out.
struct Checksums {
  std::vector<std::string> with, without;
};

Checksums checksums_of(const io::H5File& f) {
  Checksums c;
  for (const std::string& name : f.list("/")) {
    const std::string path = "/" + name;
    io::DatasetLayout layout;
    try {
      layout = f.layout_of(path);
    } catch (const std::exception&) {
      continue;  // a group, or a dataset validation already judged
    }
    const bool has = std::find(layout.filters.begin(), layout.filters.end(), "fletcher32") != layout.filters.end();
    (has ? c.with : c.without).push_back(path);
  }
  return c;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Reads every chunk of the checksummed datasets; returns one line per chunk that fails
// (at most `limit`) and counts the chunks read and failed.
std::vector<std::string> verify_checksums(const io::H5File& f, const std::vector<std::string>& names,
                                          const InspectOptions& o, int64_t* chunks, int64_t* bad) {
  std::vector<std::string> lines;
  *chunks = *bad = 0;
  std::vector<RowReader> readers;
  int64_t total = 0;
  for (const std::string& n : names) {
    readers.push_back(RowReader::open(f, n, 0));
    const RowReader& r = readers.back();
    if (r.rows() > 0) total += (r.rows() + r.chunk_rows() - 1) / r.chunk_rows();
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<unsigned char> buf;
  for (size_t k = 0; k < names.size(); ++k) {
    const RowReader& r = readers[k];
    const int64_t step = std::max<int64_t>(r.chunk_rows(), 1);
    buf.resize(static_cast<size_t>(step) * r.row_bytes());
    for (int64_t row = 0; row < r.rows(); row += step) {
      const int64_t count = std::min(step, r.rows() - row);
      try {
        r.read(row, count, buf.data());
      } catch (const std::exception& e) {
        ++*bad;
        if (lines.size() < 20) {
          lines.push_back("  " + names[k] + " rows [" + std::to_string(row) + ", " + std::to_string(row + count) +
                          "): " + e.what());
        }
      }
      ++*chunks;
      if (o.progress && (*chunks % 64 == 0 || *chunks == total)) {
        o.progress(*chunks, total, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    }
  }
  return lines;
}

}  // namespace

InspectResult inspect(const std::string& path, const InspectOptions& options) {
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
      char buf[64];
      os << "samples: " << s.n << "\n";
      if (s.encoded) {
        Tensor shapes = f.read("/shapes");
        const int32_t* hw = shapes.data<int32_t>();
        int64_t min_h = hw[0], max_h = hw[0], min_w = hw[1], max_w = hw[1], pixels = 0;
        for (int64_t i = 0; i < s.n; ++i) {
          min_h = std::min<int64_t>(min_h, hw[i * 3]);
          max_h = std::max<int64_t>(max_h, hw[i * 3]);
          min_w = std::min<int64_t>(min_w, hw[i * 3 + 1]);
          max_w = std::max<int64_t>(max_w, hw[i * 3 + 1]);
          pixels += static_cast<int64_t>(hw[i * 3]) * hw[i * 3 + 1];
        }
        std::snprintf(buf, sizeof buf, "%.0f", static_cast<double>(s.encoded_bytes) / static_cast<double>(s.n));
        os << "images: encoded (JPEG/PNG/PGM/PPM bytes, decoded by the loader), " << s.channels
           << " channel(s) as loaded\n"
           << "encoded: u8 (" << s.encoded_bytes << ",) " << s.encoded_bytes << " bytes, " << buf
           << " bytes per image on average";
        std::snprintf(buf, sizeof buf, "%.0f",
                      static_cast<double>(pixels) * static_cast<double>(s.channels) / static_cast<double>(s.n));
        os << " (as raw pixels: " << buf << " bytes)\n";
        if (s.height > 0) {
          os << "size: every image " << s.height << "x" << s.width << "\n";
        } else {
          os << "size: mixed, height " << min_h << ".." << max_h << ", width " << min_w << ".." << max_w
             << " (the loader needs data.image_size)\n";
        }
        os << "storage: /labels, /shapes " << storage(s.chunk_rows, s.filters) << "\n";
      } else {
        os << "images: u8 (" << s.n << ", " << s.height << ", " << s.width << ", " << s.channels << ") (N, H, W, C), "
           << s.sample_bytes() << " bytes per image\n"
           << "storage: " << storage(s.chunk_rows, s.filters) << "\n";
      }
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
    const Checksums sums = checksums_of(f);
    if (sums.without.empty() && !sums.with.empty()) {
      os << "checksums: Fletcher-32 on every chunk (" << joined(sums.with) << ")\n";
    } else if (sums.with.empty()) {
      os << "checksums: none (a damaged byte would be read as data; converting the source again adds them)\n";
    } else {
      os << "checksums: Fletcher-32 on every chunk of " << joined(sums.with) << "; none on " << joined(sums.without)
         << "\n";
    }
    if (options.verify && !sums.with.empty()) {
      int64_t chunks = 0, bad = 0;
      std::vector<std::string> lines = verify_checksums(f, sums.with, options, &chunks, &bad);
      if (bad > 0) {
        os << "verify: " << bad << " of " << chunks << " chunks fail their Fletcher-32 checksum:\n";
        for (const std::string& l : lines) os << l << "\n";
        if (bad > static_cast<int64_t>(lines.size())) os << "  ...\n";
        os << "validation: FAILED: dataset file '" << path << "': " << bad
           << " damaged chunk(s), listed above with their rows; make the file again (dtrain data convert / synth) "
              "or restore a copy\n";
        r.text = os.str();
        return r;
      }
      os << "verify: all " << chunks << " chunks match their Fletcher-32 checksums\n";
    }
    if (options.verify && (kind == Kind::ImageClassification || kind == Kind::ImageOnly)) {
      ImageSchema s = validate_images(f, kind == Kind::ImageClassification);
      if (s.encoded) {
        int64_t bad = 0;
        std::vector<std::string> lines = verify_encoded(f, s, options, &bad);
        if (bad > 0) {
          os << "verify: " << bad << " of " << s.n << " images do not decode:\n";
          for (const std::string& l : lines) os << l << "\n";
          if (bad > static_cast<int64_t>(lines.size())) os << "  ...\n";
          os << "validation: FAILED: dataset file '" << path << "', dataset '/encoded': " << bad
             << " image(s) do not decode (listed above); reconvert them (dtrain data convert folder --on-error skip "
                "leaves bad files out)\n";
          r.text = os.str();
          return r;
        }
        os << "verify: all " << s.n << " images decode\n";
      } else {
        RowReader reader = RowReader::open(f, "/images", -1);
        std::vector<uint8_t> buf(static_cast<size_t>(s.sample_bytes()) * 256);
        for (int64_t i = 0; i < s.n; i += 256) reader.read(i, std::min<int64_t>(256, s.n - i), buf.data());
        os << "verify: all " << s.n << " images read\n";
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
