// Captioned scenes: see captions.h.
#include "datasets/captions.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/io/h5.h"
#include "core/rng.h"
#include "datasets/schema.h"

namespace dtrain::data {

std::string item_word(const std::string& class_name) {
  std::string w;
  for (char ch : class_name) {
    if (ch == '/') break;
    w.push_back(ch == ' ' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  }
  return w;
}

std::vector<std::string> caption_vocabulary(const std::vector<std::string>& classes) {
  std::vector<std::string> vocab = kSpecialTokens;
  vocab.insert(vocab.end(), kCaptionWords.begin(), kCaptionWords.end());
  for (const std::string& c : classes) {
    const std::string w = item_word(c);
    DT_CHECK_AS(!w.empty(), ValueError, "class name '", c, "' gives an empty caption word");
    DT_CHECK_AS(std::find(vocab.begin(), vocab.end(), w) == vocab.end(), ValueError, "class name '", c,
                "' gives the caption word '", w, "', which is already a grammar word or another class's word; "
                "rename the classes (dtrain data convert idx --classes ...)");
    vocab.push_back(w);
  }
  return vocab;
}

std::vector<std::string> caption_words(const std::vector<int64_t>& cells, const std::vector<std::string>& classes) {
  DT_CHECK(static_cast<int64_t>(cells.size()) == kSceneCells, "caption_words: expected ", kSceneCells,
           " cells, got ", cells.size());
  std::vector<std::string> out;
  auto item = [&](int64_t k) {
    DT_CHECK(k >= 0 && k < static_cast<int64_t>(classes.size()), "caption_words: class ", k, " outside [0, ",
             classes.size(), ")");
    out.push_back("a");
    out.push_back(item_word(classes[static_cast<size_t>(k)]));
  };
  for (int64_t r = 0; r < kSceneRows; ++r) {
    const int64_t left = cells[static_cast<size_t>(r * 2)], right = cells[static_cast<size_t>(r * 2 + 1)];
    if (left >= 0 && right >= 0) {
      item(left);
      out.push_back("and");
      item(right);
    } else if (left >= 0 || right >= 0) {
      item(left >= 0 ? left : right);
      out.insert(out.end(), {"on", "the", left >= 0 ? "left" : "right"});
    } else {
      out.push_back("nothing");
    }
    if (r == 0) {
      out.push_back("above");
      out.push_back(",");
    } else {
      out.push_back("below");
    }
  }
  return out;
}

std::vector<int64_t> parse_caption(const std::vector<std::string>& words, const std::vector<std::string>& classes) {
  std::vector<int64_t> cells(static_cast<size_t>(kSceneCells), -1);
  size_t i = 0;
  auto take = [&](const char* w) {
    if (i < words.size() && words[i] == w) {
      ++i;
      return true;
    }
    return false;
  };
  auto item = [&](int64_t* k) {
    if (!take("a") || i >= words.size()) return false;
    for (size_t c = 0; c < classes.size(); ++c) {
      if (item_word(classes[c]) == words[i]) {
        *k = static_cast<int64_t>(c);
        ++i;
        return true;
      }
    }
    return false;
  };
  for (int64_t r = 0; r < kSceneRows; ++r) {
    int64_t* left = &cells[static_cast<size_t>(r * 2)];
    int64_t* right = &cells[static_cast<size_t>(r * 2 + 1)];
    if (!take("nothing")) {
      int64_t k = -1;
      if (!item(&k)) return {};
      if (take("and")) {
        *left = k;
        if (!item(right)) return {};
      } else if (take("on") && take("the")) {
        if (take("left")) {
          *left = k;
        } else if (take("right")) {
          *right = k;
        } else {
          return {};
        }
      } else {
        return {};
      }
    }
    if (r == 0 ? !(take("above") && take(",")) : !take("below")) return {};
  }
  if (i != words.size()) return {};
  return cells;
}

namespace {

struct Source {
  std::string path;
  ImageSchema schema;
  Tensor images;                // u8 (N, H, W, C)
  std::vector<int64_t> labels;  // (N)
};

Source read_source(const std::string& path) {
  Source s;
  s.path = path;
  io::H5File f = io::H5File::open_read(path);
  DT_CHECK_AS(detect_kind(f) == Kind::ImageClassification, IoError, "dataset file '", path, "' is a ",
              kind_name(detect_kind(f)), " file; captioned scenes are made of the items of an image classification "
              "file (e.g. data/fashion_mnist_train.h5)");
  s.schema = validate_images(f, true);
  s.images = f.read("/images");
  s.labels = f.read("/labels").to_vector<int64_t>();
  return s;
}

// One file of n scenes from `src`, drawing from `gen`.
void write_scenes(const Source& src, const std::string& out, int64_t n, const CaptionsOptions& o, Generator gen,
                  const std::vector<std::string>& vocab, const std::string& split, const WriteOptions& write) {
  const ImageSchema& s = src.schema;
  const int64_t h = s.height, w = s.width, c = s.channels, sh = kSceneRows * h, sw = kSceneCols * w;
  const int64_t scene_bytes = sh * sw * c, item_bytes = h * w * c;
  io::H5File f = io::H5File::create(out);
  io::CreateOptions co{write.chunk_rows, write.gzip_level, false, write.checksum};
  f.create_dataset("/images", {n, sh, sw, c}, DType::U8, co);
  std::vector<int32_t> captions(static_cast<size_t>(n * kMaxCaptionTokens), 0), lengths(static_cast<size_t>(n));
  std::vector<int64_t> items(static_cast<size_t>(n * kSceneCells)), sources(items.size());
  std::vector<double> sum(static_cast<size_t>(c), 0.0), sumsq(static_cast<size_t>(c), 0.0);
  const uint8_t* px = src.images.data<uint8_t>();
  const int64_t block = std::max<int64_t>(1, (int64_t{32} << 20) / scene_bytes);  // ~32 MiB per write
  for (int64_t start = 0; start < n; start += block) {
    const int64_t k = std::min(block, n - start);
    std::vector<uint8_t> scenes(static_cast<size_t>(k * scene_bytes), 0);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t row = start + i;
      std::vector<int64_t> cells(static_cast<size_t>(kSceneCells), -1), from(cells.size(), -1);
      do {
        for (int64_t cell = 0; cell < kSceneCells; ++cell) {
          cells[static_cast<size_t>(cell)] = from[static_cast<size_t>(cell)] = -1;
          if (gen.next_double() < o.empty_prob) continue;
          const auto pick = static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(s.n)));
          from[static_cast<size_t>(cell)] = pick;
          cells[static_cast<size_t>(cell)] = src.labels[static_cast<size_t>(pick)];
        }
      } while (std::all_of(cells.begin(), cells.end(), [](int64_t v) { return v < 0; }));
      uint8_t* scene = scenes.data() + i * scene_bytes;
      for (int64_t cell = 0; cell < kSceneCells; ++cell) {
        const int64_t pick = from[static_cast<size_t>(cell)];
        items[static_cast<size_t>(row * kSceneCells + cell)] = cells[static_cast<size_t>(cell)];
        sources[static_cast<size_t>(row * kSceneCells + cell)] = pick;
        if (pick < 0) continue;
        const int64_t y0 = cell / kSceneCols * h, x0 = cell % kSceneCols * w;
        for (int64_t y = 0; y < h; ++y) {
          std::copy_n(px + pick * item_bytes + y * w * c, w * c, scene + ((y0 + y) * sw + x0) * c);
        }
      }
      for (int64_t j = 0; j < sh * sw; ++j) {
        for (int64_t ch = 0; ch < c; ++ch) {
          const double v = scene[j * c + ch];
          sum[static_cast<size_t>(ch)] += v;
          sumsq[static_cast<size_t>(ch)] += v * v;
        }
      }
      std::vector<std::string> words = caption_words(cells, s.classes);
      int32_t* ids = captions.data() + row * kMaxCaptionTokens;
      ids[0] = 1;  // <s>
      for (size_t t = 0; t < words.size(); ++t) {
        ids[t + 1] = static_cast<int32_t>(std::find(vocab.begin(), vocab.end(), words[t]) - vocab.begin());
      }
      ids[words.size() + 1] = 2;  // </s>
      lengths[static_cast<size_t>(row)] = static_cast<int32_t>(words.size() + 2);
    }
    f.write_rows("/images", start, Tensor::from_vector(scenes, {k, sh, sw, c}));
  }
  f.create_dataset("/captions", {n, kMaxCaptionTokens}, DType::I32, co);
  f.write_rows("/captions", 0, Tensor::from_vector(captions, {n, kMaxCaptionTokens}));
  f.create_dataset("/caption_len", {n}, DType::I32, co);
  f.write_rows("/caption_len", 0, Tensor::from_vector(lengths, {n}));
  f.create_dataset("/items", {n, kSceneCells}, DType::I64, co);
  f.write_rows("/items", 0, Tensor::from_vector(items, {n, kSceneCells}));
  f.create_dataset("/sources", {n, kSceneCells}, DType::I64, co);
  f.write_rows("/sources", 0, Tensor::from_vector(sources, {n, kSceneCells}));
  f.write_strings("/vocab", vocab);
  std::vector<double> mean, std;
  const double count = static_cast<double>(n * sh * sw);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double m = sum[static_cast<size_t>(ch)] / count;
    const double var = std::max(0.0, sumsq[static_cast<size_t>(ch)] / count - m * m);
    mean.push_back(m / 255.0);
    std.push_back(std::max(std::sqrt(var), 1e-3) / 255.0);
  }
  f.set_attribute("/", "mean", mean);
  f.set_attribute("/", "std", std);
  f.set_attribute("/", "classes", s.classes);
  f.set_attribute("/", "tokens", std::string("words"));
  f.set_attribute("/", "grid", std::string("2x2"));
  f.set_attribute("/", "empty_prob", o.empty_prob);
  f.set_attribute("/", "seed", static_cast<int64_t>(o.seed));
  f.set_attribute("/", "source", std::filesystem::path(src.path).filename().string() + " (" + split + " items)");
  f.set_attribute("/", "format", std::string("dtrain image-caption dataset v1"));
  f.close();
}

}  // namespace

std::string synth_captions(const std::string& train_images, const std::string& test_images,
                           const std::string& out_train, const std::string& out_test, const CaptionsOptions& o,
                           const WriteOptions& write) {
  DT_CHECK_AS(o.n_train > 0 && o.n_test > 0, ValueError, "synth_captions: scene counts must be positive, got ",
              o.n_train, " and ", o.n_test);
  DT_CHECK_AS(o.empty_prob >= 0 && o.empty_prob < 1, ValueError, "synth_captions: the empty-cell probability must "
              "be in [0, 1), got ", o.empty_prob);
  const Source train = read_source(train_images), test = read_source(test_images);
  const ImageSchema &a = train.schema, &b = test.schema;
  DT_CHECK_AS(a.classes == b.classes, IoError, "dataset files '", train_images, "' and '", test_images,
              "' have different classes; captions need one list of items");
  DT_CHECK_AS(a.height == b.height && a.width == b.width && a.channels == b.channels, IoError, "dataset files '",
              train_images, "' and '", test_images, "' hold images of different sizes (", a.height, "x", a.width, "x",
              a.channels, " and ", b.height, "x", b.width, "x", b.channels, ")");
  const std::vector<std::string> vocab = caption_vocabulary(a.classes);
  write_scenes(train, out_train, o.n_train, o, Generator::derive(o.seed, 0, "captions.train"), vocab, "train", write);
  write_scenes(test, out_test, o.n_test, o, Generator::derive(o.seed, 0, "captions.test"), vocab, "test", write);
  std::ostringstream os;
  os << "wrote " << out_train << ": " << o.n_train << " scenes of " << train_images << " items; wrote " << out_test
     << ": " << o.n_test << " scenes of " << test_images << " items\n"
     << "scenes " << kSceneRows * a.height << "x" << kSceneCols * a.width << "x" << a.channels << " (2 x 2 cells, "
     << "empty with probability " << o.empty_prob << "), captions of up to " << kMaxCaptionTokens
     << " tokens with <s> and </s>, vocabulary " << vocab.size() << " (" << a.classes.size() << " items), seed "
     << o.seed;
  return os.str();
}

}  // namespace dtrain::data
