#pragma once
// RowReader: the loader's way of reading a dataset of an HDF5 file (core/io/h5.h) in row
// ranges along dim 0, straight into caller memory (pinned buffers, ring slots), many
// times without reopening it. Contiguous, uncompressed data is read with pread() around
// the HDF5 library (Note [Direct row reads]); everything else goes through H5Dread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/h5.h"
#include "core/tensor.h"

namespace dtrain::data {

// An open dataset for repeated reads of row ranges along dim 0. Keeps the dataset open,
// so its chunk cache survives between reads. Same thread rules as io::H5File; it stays
// valid after the H5File it came from is closed (HDF5 keeps the file open while objects
// are).
class RowReader {
 public:
  // Opens `dataset` of `file`, which must have at least one dimension. chunk_cache_bytes
  // sizes HDF5's chunk cache for it: -1 keeps HDF5's default (1 MiB), 0 disables it
  // (uncompressed chunks are then read straight into the caller's buffer), > 0 holds that
  // many bytes of decompressed chunks. `direct` false keeps every read inside the HDF5
  // library (Note [Direct row reads]).
  static RowReader open(const io::H5File& file, const std::string& dataset, int64_t chunk_cache_bytes = -1,
                        bool direct = true);

  RowReader() = default;
  RowReader(RowReader&& other) noexcept;
  RowReader& operator=(RowReader&& other) noexcept;
  RowReader(const RowReader&) = delete;
  RowReader& operator=(const RowReader&) = delete;
  ~RowReader();

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t rows() const { return shape_.empty() ? 0 : shape_[0]; }
  // Bytes of one row (the product of the trailing dims times the element size).
  size_t row_bytes() const { return row_bytes_; }
  // Reads rows [start, start + count) into dst, which holds count * row_bytes() bytes.
  void read(int64_t start, int64_t count, void* dst) const;
  // True when reads bypass the HDF5 library (see Note [Direct row reads]); such reads are
  // safe from several threads at once.
  bool direct() const { return fd_ >= 0; }

  // Note [Direct row reads]: an HDF5 read call costs a few microseconds however few rows
  // it moves, and the library serializes all calls, so a loader that reads short
  // segments spends its time in HDF5, not in copying. When a dataset is stored without
  // filters, in the file's byte order, either contiguously or in chunks that span whole
  // rows, its rows are plain bytes at known file offsets: open() then looks up every
  // chunk's address once and read() becomes pread() calls on the file (no library call,
  // no global lock). The fast path checks itself on open (the first and last rows read
  // both ways must agree) and is skipped for anything else (compressed, chunked across
  // the row, unallocated chunks), which goes through H5Dread as before.

 private:
  void read_hdf5(int64_t start, int64_t count, void* dst) const;
  void read_direct(int64_t start, int64_t count, void* dst) const;
  void setup_direct();

  std::string file_, dataset_;
  int64_t id_ = -1;  // hid_t of the open dataset
  Shape shape_;
  DType dtype_ = DType::U8;
  size_t row_bytes_ = 0;
  // Direct reads: the file descriptor, rows per chunk (the whole dataset when contiguous)
  // and each chunk's byte offset in the file.
  int fd_ = -1;
  int64_t chunk_rows_ = 0;
  std::vector<int64_t> chunk_offsets_;
};

}  // namespace dtrain::data
