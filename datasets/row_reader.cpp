// RowReader: see row_reader.h, Note [Direct row reads]. The HDF5 calls go through
// core/io/h5_capi.h like those of core/io/h5*.cpp.
#include "datasets/row_reader.h"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/io/fletcher32.h"
#include "core/io/h5_capi.h"

namespace dtrain::data {

using namespace io::detail;

RowReader RowReader::open(const io::H5File& file, const std::string& dataset, int64_t chunk_cache_bytes,
                          bool direct) {
  hid_t fid = file.file_id();
  OpenDataset d = open_dataset(file, fid, dataset);
  const std::string where = "HDF5 file '" + file.path() + "', dataset '" + dataset + "'";
  if (d.shape.empty()) DT_THROW(IoError, where, ": row reads need at least one dimension, the dataset is 0-dim");
  RowReader r;
  r.file_ = file.path();
  r.dataset_ = dataset;
  r.shape_ = d.shape;
  r.dtype_ = d.dtype;
  r.row_bytes_ = dtype_size(d.dtype);
  for (size_t i = 1; i < d.shape.size(); ++i) r.row_bytes_ *= static_cast<size_t>(d.shape[i]);
  if (chunk_cache_bytes >= 0) {
    d.ds = Handle();
    Handle dapl(H5_CHECK(H5Pcreate(H5P_DATASET_ACCESS), where, ": cannot create a property list"), H5Pclose);
    // Slots: a prime well above the number of chunks the cache can hold (HDF5's advice).
    H5_CHECK(H5Pset_chunk_cache(dapl.get(), 12421, static_cast<size_t>(chunk_cache_bytes), 1.0),
             where, ": cannot size the chunk cache");
    r.id_ = H5_CHECK(H5Dopen2(fid, dataset.c_str(), dapl.get()), where, ": cannot open the dataset");
  } else {
    r.id_ = d.ds.release();
  }
  // The chunk extent along dim 0 and whether chunks carry checksums (Note [Checksummed
  // chunks]); a contiguous dataset is one chunk.
  r.chunk_rows_ = r.rows();
  {
    Handle dcpl(H5_CHECK(H5Dget_create_plist(r.id_), where, ": cannot read its storage"), H5Pclose);
    if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(r.shape_.size());
      if (H5Pget_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) == static_cast<int>(chunk.size())) {
        r.chunk_rows_ = std::max<int64_t>(static_cast<int64_t>(chunk[0]), 1);
      }
    }
    const int nfilters = H5Pget_nfilters(dcpl.get());
    for (int i = 0; i < nfilters; ++i) {
      unsigned flags = 0;
      size_t nvalues = 0;
      if (H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nvalues, nullptr, 0, nullptr, nullptr) ==
          H5Z_FILTER_FLETCHER32) {
        r.checksummed_ = true;
      }
    }
    H5Eclear2(H5E_DEFAULT);
  }
  if (direct) r.setup_direct();
  return r;
}

void RowReader::setup_direct() {
  // Any failure here only means "no fast path": errors are cleared, nothing is thrown.
  auto fail = [&] {
    H5Eclear2(H5E_DEFAULT);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    chunk_offsets_.clear();
    checked_.reset();
  };
  if (rows() == 0 || row_bytes_ == 0) return;
  Handle dcpl(H5Dget_create_plist(id_), H5Pclose);
  Handle type(H5Dget_type(id_), H5Tclose);
  if (dcpl.get() < 0 || type.get() < 0) return fail();
  // No filter, or the checksum alone (Note [Checksummed chunks]).
  const int nfilters = H5Pget_nfilters(dcpl.get());
  if (nfilters != (checksummed_ ? 1 : 0) || H5Pget_external_count(dcpl.get()) != 0 ||
      H5Tequal(type.get(), memory_type_of(dtype_)) <= 0) {
    return fail();
  }
  H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CONTIGUOUS) {
    haddr_t addr = H5Dget_offset(id_);
    if (addr == HADDR_UNDEF) return fail();
    chunk_rows_ = rows();
    chunk_offsets_.push_back(static_cast<int64_t>(addr));
  } else if (layout == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(shape_.size());
    if (H5Pget_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) != static_cast<int>(chunk.size())) {
      return fail();
    }
    for (size_t i = 1; i < shape_.size(); ++i) {
      if (static_cast<int64_t>(chunk[i]) != shape_[i]) return fail();  // a row spans several chunks
    }
    const hsize_t stored = static_cast<hsize_t>(chunk_rows_) * row_bytes_ + (checksummed_ ? 4 : 0);
    std::vector<hsize_t> offset(shape_.size(), 0);
    for (int64_t row = 0; row < rows(); row += chunk_rows_) {
      offset[0] = static_cast<hsize_t>(row);
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      if (H5Dget_chunk_info_by_coord(id_, offset.data(), &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
          mask != 0 || (checksummed_ ? size != stored : size < stored)) {
        return fail();  // unallocated (never written), a filter skipped, or an unexpected size
      }
      chunk_offsets_.push_back(static_cast<int64_t>(addr));
    }
  } else {
    return fail();  // compact: tiny, not worth it
  }
  if (checksummed_) {
    checked_ = std::make_unique<std::atomic<bool>[]>(chunk_offsets_.size());
    for (size_t i = 0; i < chunk_offsets_.size(); ++i) checked_[i].store(false, std::memory_order_relaxed);
  }
  fd_ = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return fail();
  // Self-check: the first and last rows, both ways.
  std::vector<unsigned char> a(row_bytes_), b(row_bytes_);
  for (int64_t row : {int64_t{0}, rows() - 1}) {
    try {
      read_hdf5(row, 1, a.data());
      read_direct(row, 1, b.data());
    } catch (const std::exception&) {
      return fail();
    }
    if (a != b) return fail();
  }
}

RowReader::RowReader(RowReader&& o) noexcept
    : file_(std::move(o.file_)),
      dataset_(std::move(o.dataset_)),
      id_(std::exchange(o.id_, -1)),
      shape_(std::move(o.shape_)),
      dtype_(o.dtype_),
      row_bytes_(o.row_bytes_),
      fd_(std::exchange(o.fd_, -1)),
      chunk_rows_(o.chunk_rows_),
      chunk_offsets_(std::move(o.chunk_offsets_)),
      checksummed_(o.checksummed_),
      checked_(std::move(o.checked_)) {}

RowReader& RowReader::operator=(RowReader&& o) noexcept {
  if (this != &o) {
    if (id_ >= 0) H5Dclose(id_);
    if (fd_ >= 0) ::close(fd_);
    file_ = std::move(o.file_);
    dataset_ = std::move(o.dataset_);
    id_ = std::exchange(o.id_, -1);
    shape_ = std::move(o.shape_);
    dtype_ = o.dtype_;
    row_bytes_ = o.row_bytes_;
    fd_ = std::exchange(o.fd_, -1);
    chunk_rows_ = o.chunk_rows_;
    chunk_offsets_ = std::move(o.chunk_offsets_);
    checksummed_ = o.checksummed_;
    checked_ = std::move(o.checked_);
  }
  return *this;
}

RowReader::~RowReader() {
  if (id_ >= 0) H5Dclose(id_);
  if (fd_ >= 0) ::close(fd_);
}

void RowReader::read(int64_t start, int64_t count, void* dst) const {
  if (id_ < 0) DT_THROW(IoError, "HDF5 file '", file_, "', dataset '", dataset_,
                        "': the row reader is closed (or was moved from)");
  if (start < 0 || count < 0 || start + count > rows()) {
    DT_THROW(IoError, "HDF5 file '", file_, "', dataset '", dataset_, "': rows [", start, ", ", start + count,
             ") are out of range for shape ", shape_str(shape_));
  }
  if (count == 0 || row_bytes_ == 0) return;
  if (fd_ >= 0) return read_direct(start, count, dst);
  read_hdf5(start, count, dst);
}

void RowReader::read_direct(int64_t start, int64_t count, void* dst) const {
  auto* out = static_cast<unsigned char*>(dst);
  std::vector<unsigned char> whole;  // a chunk checked on its first read
  for (int64_t row = start; row < start + count;) {
    int64_t chunk = row / chunk_rows_;
    int64_t in_chunk = std::min(start + count, (chunk + 1) * chunk_rows_) - row;
    size_t bytes = static_cast<size_t>(in_chunk) * row_bytes_;
    if (checked_ && !checked_[static_cast<size_t>(chunk)].load(std::memory_order_acquire)) {
      read_checked_chunk(chunk, whole);
      std::memcpy(out, whole.data() + static_cast<size_t>(row - chunk * chunk_rows_) * row_bytes_, bytes);
      checked_[static_cast<size_t>(chunk)].store(true, std::memory_order_release);
      out += bytes;
      row += in_chunk;
      continue;
    }
    off_t at = static_cast<off_t>(chunk_offsets_[static_cast<size_t>(chunk)] +
                                  (row - chunk * chunk_rows_) * static_cast<int64_t>(row_bytes_));
    pread_rows(out, bytes, at, row, row + in_chunk);
    out += bytes;
    row += in_chunk;
  }
}

void RowReader::pread_rows(void* dst, size_t bytes, off_t at, int64_t first_row, int64_t end_row) const {
  auto* out = static_cast<unsigned char*>(dst);
  for (size_t done = 0; done < bytes;) {
    ssize_t got = ::pread(fd_, out + done, bytes - done, at + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      DT_THROW(IoError, "HDF5 file '", file_, "', dataset '", dataset_, "': cannot read rows [", first_row, ", ",
               end_row, "): ", got < 0 ? std::strerror(errno) : "the file ends early",
               "; the file may be damaged (truncated?)");
    }
    done += static_cast<size_t>(got);
  }
}

void RowReader::read_checked_chunk(int64_t chunk, std::vector<unsigned char>& buf) const {
  const size_t data_bytes = static_cast<size_t>(chunk_rows_) * row_bytes_;
  buf.resize(data_bytes + 4);
  const off_t at = static_cast<off_t>(chunk_offsets_[static_cast<size_t>(chunk)]);
  const int64_t first = chunk * chunk_rows_;
  pread_rows(buf.data(), buf.size(), at, first, std::min(first + chunk_rows_, rows()));
  const uint32_t sum = io::fletcher32(buf.data(), data_bytes);
  if (!io::fletcher32_matches(sum, buf.data() + data_bytes)) {
    char detail[96];
    std::snprintf(detail, sizeof detail, "chunk %lld at byte %lld of the file", static_cast<long long>(chunk),
                  static_cast<long long>(at));
    throw_checksum_error(chunk, detail);
  }
}

void RowReader::throw_checksum_error(int64_t chunk, const std::string& detail) const {
  const int64_t first = chunk * chunk_rows_;
  DT_THROW(IoError, "HDF5 file '", file_, "', dataset '", dataset_, "': rows [", first, ", ",
           std::min(first + chunk_rows_, rows()), ") fail their Fletcher-32 checksum (", detail,
           "): the file is damaged. Make it again (dtrain data convert / synth) or restore a copy; "
           "`dtrain data inspect --verify` lists every damaged chunk");
}

void RowReader::read_hdf5(int64_t start, int64_t count, void* dst) const {
  if (!checksummed_) return read_hdf5_rows(start, count, dst);
  try {
    read_hdf5_rows(start, count, dst);
  } catch (const IoError& e) {
    // HDF5 says "data error detected by Fletcher32 checksum" without saying where: find
    // the first chunk of the range that fails by itself (Note [Checksummed chunks]).
    if (std::strstr(e.what(), "Fletcher32") == nullptr) throw;
    std::vector<unsigned char> scratch;
    for (int64_t chunk = start / chunk_rows_; chunk * chunk_rows_ < start + count; ++chunk) {
      const int64_t a = std::max(start, chunk * chunk_rows_), b = std::min(start + count, (chunk + 1) * chunk_rows_);
      scratch.resize(static_cast<size_t>(b - a) * row_bytes_);
      try {
        read_hdf5_rows(a, b - a, scratch.data());
      } catch (const IoError&) {
        throw_checksum_error(chunk, "reported by the HDF5 library");
      }
    }
    throw;
  }
}

void RowReader::read_hdf5_rows(int64_t start, int64_t count, void* dst) const {
  const std::string where = "HDF5 file '" + file_ + "', dataset '" + dataset_ + "'";
  silence_hdf5_errors();
  Handle fspace(H5_CHECK(H5Dget_space(id_), where, ": cannot read its shape"), H5Sclose);
  std::vector<hsize_t> offset(shape_.size(), 0), extent(shape_.begin(), shape_.end());
  offset[0] = static_cast<hsize_t>(start);
  extent[0] = static_cast<hsize_t>(count);
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr), where,
           ": cannot select rows");
  Handle mspace(H5_CHECK(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), where,
                         ": cannot create a dataspace"),
                H5Sclose);
  H5_CHECK(H5Dread(id_, memory_type_of(dtype_), mspace.get(), fspace.get(), H5P_DEFAULT, dst), where,
           ": cannot read rows [", start, ", ", start + count, "); the file may be damaged (truncated?)");
}

}  // namespace dtrain::data
