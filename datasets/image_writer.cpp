// ImageWriter: see convert.h.
#include <cmath>

#include "datasets/convert.h"

namespace dtrain::data {

ImageWriter::ImageWriter(const std::string& path, int64_t n, int64_t h, int64_t w, int64_t c,
                         std::vector<std::string> classes, const WriteOptions& options, bool with_labels)
    : file_(io::H5File::create(path)),
      n_(n),
      h_(h),
      w_(w),
      c_(c),
      classes_(std::move(classes)),
      with_labels_(with_labels),
      sum_(static_cast<size_t>(c), 0.0),
      sumsq_(static_cast<size_t>(c), 0.0) {
  DT_CHECK(n > 0 && h > 0 && w > 0 && c > 0, "ImageWriter: '", path, "': empty image set (N, H, W, C) = (", n, ", ",
           h, ", ", w, ", ", c, ")");
  DT_CHECK(!with_labels || !classes_.empty(), "ImageWriter: '", path, "': a labelled set needs class names");
  io::CreateOptions co{options.chunk_rows, options.gzip_level, false, options.checksum};
  file_.create_dataset("/images", {n, h, w, c}, DType::U8, co);
  if (with_labels_) file_.create_dataset("/labels", {n}, DType::I64, co);
}

void ImageWriter::append(const Tensor& images, const Tensor& labels) {
  int64_t k = images.size(0);
  DT_CHECK(written_ + k <= n_, "ImageWriter: '", file_.path(), "': more rows appended than the ", n_, " declared");
  file_.write_rows("/images", written_, images);
  if (with_labels_) {
    const int64_t* p = labels.data<int64_t>();
    for (int64_t i = 0; i < k; ++i) {
      DT_CHECK_AS(p[i] >= 0 && p[i] < static_cast<int64_t>(classes_.size()), IoError, "ImageWriter: '",
                  file_.path(), "': label ", p[i], " of sample ", written_ + i, " is outside [0, ", classes_.size(),
                  ")");
    }
    file_.write_rows("/labels", written_, labels);
  }
  // Per-channel sums for mean/std, in integers per row to stay exact.
  const uint8_t* px = images.data<uint8_t>();
  for (int64_t i = 0; i < k; ++i) {
    std::vector<uint64_t> s(static_cast<size_t>(c_), 0), s2(static_cast<size_t>(c_), 0);
    const uint8_t* row = px + i * h_ * w_ * c_;
    for (int64_t j = 0; j < h_ * w_; ++j) {
      for (int64_t ch = 0; ch < c_; ++ch) {
        uint64_t v = row[j * c_ + ch];
        s[static_cast<size_t>(ch)] += v;
        s2[static_cast<size_t>(ch)] += v * v;
      }
    }
    for (size_t ch = 0; ch < s.size(); ++ch) {
      sum_[ch] += static_cast<double>(s[ch]);
      sumsq_[ch] += static_cast<double>(s2[ch]);
    }
  }
  written_ += k;
}

void ImageWriter::finish() {
  DT_CHECK_AS(written_ == n_, IoError, "ImageWriter: '", file_.path(), "': ", written_, " rows written of ", n_,
              " declared");
  std::vector<double> mean, std;
  double count = static_cast<double>(n_ * h_ * w_);
  for (size_t ch = 0; ch < sum_.size(); ++ch) {
    double m = sum_[ch] / count;
    double var = std::max(0.0, sumsq_[ch] / count - m * m);
    mean.push_back(m / 255.0);
    std.push_back(std::max(std::sqrt(var), 1e-3) / 255.0);
  }
  file_.set_attribute("/", "mean", mean);
  file_.set_attribute("/", "std", std);
  if (with_labels_) file_.set_attribute("/", "classes", classes_);
  file_.set_attribute("/", "format", std::string("dtrain image dataset v1"));
  file_.close();
}

}  // namespace dtrain::data
