// IDX (MNIST / Fashion-MNIST) to HDF5: see convert.h.
//
// IDX: a big-endian header, magic 0x0000080D where 08 = unsigned bytes and D = the number
// of dimensions (3 for images N x rows x cols, 1 for labels), then D 32-bit sizes, then
// the data in row-major order.
#include <algorithm>
#include <limits>
#include <sstream>

#include "datasets/convert.h"
#include "datasets/read_file.h"

namespace dtrain::data {

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Parses the header; returns the dims and the offset of the data.
std::vector<int64_t> idx_header(const std::vector<uint8_t>& bytes, const std::string& path, int want_dims,
                                size_t* data_offset) {
  if (bytes.size() < 4) DT_THROW(IoError, "IDX file '", path, "': too short for a header (", bytes.size(), " bytes)");
  uint32_t magic = be32(bytes.data());
  if ((magic >> 8) != 0x08 || (magic & 0xff) != static_cast<uint32_t>(want_dims)) {
    std::ostringstream hex;
    hex << std::hex << magic;
    DT_THROW(IoError, "IDX file '", path, "': magic number 0x", hex.str(), " is not that of unsigned-byte data with ",
             want_dims, " dimension(s) (expected 0x80", want_dims,
             "); is it an IDX file, and the images/labels the right way round?");
  }
  size_t header = 4 + 4 * static_cast<size_t>(want_dims);
  if (bytes.size() < header) DT_THROW(IoError, "IDX file '", path, "': truncated header");
  std::vector<int64_t> dims;
  // Up to three 32-bit sizes: the product can pass 2^63, so it is formed without overflow.
  unsigned __int128 total = 1;
  for (int i = 0; i < want_dims; ++i) {
    dims.push_back(be32(bytes.data() + 4 + 4 * i));
    total *= static_cast<uint64_t>(dims.back());
  }
  if (total != static_cast<unsigned __int128>(bytes.size() - header)) {
    std::ostringstream promised;
    if (total > std::numeric_limits<uint64_t>::max()) {
      promised << "more than 2^64";
    } else {
      promised << static_cast<uint64_t>(total);
    }
    DT_THROW(IoError, "IDX file '", path, "': the header promises ", promised.str(), " bytes of data but the file holds ",
             bytes.size() - header, " (truncated or damaged; download it again)");
  }
  *data_offset = header;
  return dims;
}

}  // namespace

std::string convert_idx(const std::string& images_path, const std::string& labels_path, const std::string& out,
                        std::vector<std::string> classes, const WriteOptions& options) {
  std::vector<uint8_t> img = read_maybe_gzip(images_path);
  std::vector<uint8_t> lab = read_maybe_gzip(labels_path);
  size_t img_off = 0, lab_off = 0;
  std::vector<int64_t> idims = idx_header(img, images_path, 3, &img_off);
  std::vector<int64_t> ldims = idx_header(lab, labels_path, 1, &lab_off);
  const int64_t n = idims[0], h = idims[1], w = idims[2];
  if (ldims[0] != n) {
    DT_THROW(IoError, "IDX files '", images_path, "' (", n, " images) and '", labels_path, "' (", ldims[0],
             " labels) disagree on the number of samples; are they from the same set (train vs t10k)?");
  }
  if (n == 0) DT_THROW(IoError, "IDX file '", images_path, "': holds no images");
  int64_t max_label = *std::max_element(lab.begin() + static_cast<std::ptrdiff_t>(lab_off), lab.end());
  if (classes.empty()) {
    for (int64_t k = 0; k <= max_label; ++k) classes.push_back(std::to_string(k));
  }
  if (max_label >= static_cast<int64_t>(classes.size())) {
    DT_THROW(IoError, "IDX file '", labels_path, "': label ", max_label, " but only ", classes.size(),
             " class names were given");
  }
  ImageWriter writer(out, n, h, w, 1, classes, options);
  const int64_t step = 4096;
  for (int64_t start = 0; start < n; start += step) {
    int64_t k = std::min(step, n - start);
    std::vector<uint8_t> px(img.begin() + static_cast<std::ptrdiff_t>(img_off + start * h * w),
                            img.begin() + static_cast<std::ptrdiff_t>(img_off + (start + k) * h * w));
    std::vector<int64_t> lb(lab.begin() + static_cast<std::ptrdiff_t>(lab_off + start),
                            lab.begin() + static_cast<std::ptrdiff_t>(lab_off + start + k));
    writer.append(Tensor::from_vector(px, {k, h, w, 1}), Tensor::from_vector(lb, {k}));
  }
  writer.finish();
  std::ostringstream os;
  os << "wrote " << out << ": " << n << " images " << h << "x" << w << "x1, " << classes.size() << " classes";
  return os.str();
}

}  // namespace dtrain::data
