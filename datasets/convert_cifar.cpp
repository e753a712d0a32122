// CIFAR-10 binary batches to HDF5: see convert.h.
#include <sstream>

#include "datasets/convert.h"
#include "datasets/read_file.h"

namespace dtrain::data {

std::string convert_cifar(const std::vector<std::string>& inputs, const std::string& out,
                          std::vector<std::string> classes, const WriteOptions& options) {
  constexpr int64_t kSide = 32, kPlane = kSide * kSide, kRecord = 1 + 3 * kPlane;
  DT_CHECK_AS(!inputs.empty(), IoError, "convert_cifar: no input files given");
  if (classes.empty()) {
    classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  }
  std::vector<std::vector<uint8_t>> files;
  int64_t n = 0;
  for (const std::string& path : inputs) {
    files.push_back(read_maybe_gzip(path));
    int64_t size = static_cast<int64_t>(files.back().size());
    if (size == 0 || size % kRecord != 0) {
      DT_THROW(IoError, "CIFAR-10 file '", path, "': ", size, " bytes is not a whole number of ", kRecord,
               "-byte records (1 label + 3x32x32 pixels); truncated, or not a CIFAR-10 binary batch?");
    }
    n += size / kRecord;
  }
  ImageWriter writer(out, n, kSide, kSide, 3, classes, options);
  for (size_t fi = 0; fi < files.size(); ++fi) {
    const std::vector<uint8_t>& bytes = files[fi];
    int64_t records = static_cast<int64_t>(bytes.size()) / kRecord;
    std::vector<uint8_t> px(static_cast<size_t>(records * 3 * kPlane));
    std::vector<int64_t> lb(static_cast<size_t>(records));
    for (int64_t r = 0; r < records; ++r) {
      const uint8_t* rec = bytes.data() + r * kRecord;
      lb[static_cast<size_t>(r)] = rec[0];
      if (rec[0] >= classes.size()) {
        DT_THROW(IoError, "CIFAR-10 file '", inputs[fi], "': record ", r, " has label ", int{rec[0]}, " but there are ",
                 classes.size(), " classes (a CIFAR-100 file? it has two label bytes per record)");
      }
      // Planes R, G, B of 32x32 -> (H, W, C).
      for (int64_t p = 0; p < kPlane; ++p) {
        for (int64_t c = 0; c < 3; ++c) px[static_cast<size_t>((r * kPlane + p) * 3 + c)] = rec[1 + c * kPlane + p];
      }
    }
    writer.append(Tensor::from_vector(px, {records, kSide, kSide, 3}), Tensor::from_vector(lb, {records}));
  }
  writer.finish();
  std::ostringstream os;
  os << "wrote " << out << ": " << n << " images 32x32x3 from " << inputs.size() << " file(s), " << classes.size()
     << " classes";
  return os.str();
}

}  // namespace dtrain::data
