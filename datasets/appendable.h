#pragma once
// AppendableDataset: a dataset of an HDF5 file that grows along dim 0 as rows are appended
// (chunked, unlimited along N), for converters that do not know the final row count up
// front: the folder converter's /encoded bytes, and its /images when files may be skipped.
// Stored without filters, so the loader's direct reads (row_reader.h) apply.
#include <cstdint>
#include <string>

#include "core/io/h5.h"
#include "core/tensor.h"

namespace dtrain::data {

class AppendableDataset {
 public:
  // Creates `name` in `file` with 0 rows of `row_shape` (the trailing dims; {} for a 1-D
  // dataset) and chunks of `chunk_rows` rows, each with a Fletcher-32 checksum when
  // `checksum` (io::CreateOptions::checksum). The file must stay open while this is used.
  AppendableDataset(io::H5File& file, const std::string& name, const Shape& row_shape, DType dtype,
                    int64_t chunk_rows, bool checksum = false);
  AppendableDataset(const AppendableDataset&) = delete;
  AppendableDataset& operator=(const AppendableDataset&) = delete;
  ~AppendableDataset();

  // Appends `count` rows from `data` (count * row bytes).
  void append(const void* data, int64_t count);
  int64_t rows() const { return rows_; }
  // Closes the dataset (also done by the destructor, quietly).
  void close();

 private:
  std::string where_;
  int64_t id_ = -1;  // hid_t of the dataset
  Shape row_shape_;
  DType dtype_;
  int64_t rows_ = 0;
};

}  // namespace dtrain::data
