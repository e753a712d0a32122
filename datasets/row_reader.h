#pragma once
// RowReader: the loader's way of reading a dataset of an HDF5 file (core/io/h5.h) in row
// ranges along dim 0, straight into caller memory (pinned buffers, ring slots), many
// times without reopening it. Contiguous, uncompressed data is read with pread() around
// the HDF5 library (Note [Direct row reads]); everything else goes through H5Dread.
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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
  // True when the dataset's chunks carry Fletcher-32 checksums (Note [Checksummed chunks]).
  bool checksummed() const { return checksummed_; }
  // Rows per chunk (the whole dataset when contiguous).
  int64_t chunk_rows() const { return chunk_rows_; }

  // Note [Direct row reads]: an HDF5 read call costs a few microseconds however few rows
  // it moves, and the library serializes all calls, so a loader that reads short
  // segments spends its time in HDF5, not in copying. When a dataset is stored without
  // filters, in the file's byte order, either contiguously or in chunks that span whole
  // rows, its rows are plain bytes at known file offsets: open() then looks up every
  // chunk's address once and read() becomes pread() calls on the file (no library call,
  // no global lock). The fast path checks itself on open (the first and last rows read
  // both ways must agree) and is skipped for anything else (compressed, chunked across
  // the row, unallocated chunks), which goes through H5Dread as before.
  //
  // Note [Checksummed chunks]: a dataset written with HDF5's fletcher32 filter (the
  // converters' and `dtrain data synth`'s default) stores after each chunk's bytes a
  // Fletcher-32 checksum of them. H5Dread checks it for every chunk it reads. The direct
  // path keeps such datasets (when it is their only filter): the first read that touches a
  // chunk reads the whole chunk with its checksum and checks it (io::fletcher32), later
  // reads of that chunk pread its rows as for any other dataset. Either way a chunk that
  // fails its checksum throws IoError naming the file, the dataset and the chunk's rows,
  // instead of handing damaged bytes to training.

 private:
  void read_hdf5(int64_t start, int64_t count, void* dst) const;
  void read_hdf5_rows(int64_t start, int64_t count, void* dst) const;
  void read_direct(int64_t start, int64_t count, void* dst) const;
  void setup_direct();
  // `bytes` bytes at file offset `at` into dst, which hold rows [first_row, end_row) (for
  // the error message).
  void pread_rows(void* dst, size_t bytes, off_t at, int64_t first_row, int64_t end_row) const;
  // Reads chunk `chunk` whole with its checksum into buf (direct path) and checks it.
  void read_checked_chunk(int64_t chunk, std::vector<unsigned char>& buf) const;
  [[noreturn]] void throw_checksum_error(int64_t chunk, const std::string& detail) const;

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
  // Note [Checksummed chunks]: whether chunks carry checksums, and (direct path) which
  // chunks have been checked (one flag per chunk, set once, read by any thread).
  bool checksummed_ = false;
  std::unique_ptr<std::atomic<bool>[]> checked_;
};

}  // namespace dtrain::data
