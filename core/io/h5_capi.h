#pragma once
// The pieces of core/io/h5 for code that calls the HDF5 C API itself: the h5*.cpp files
// here and datasets/row_reader.cpp. Everyone else includes core/io/h5.h alone.
//
// - H5_CHECK(call, message parts...): the error check every HDF5 call goes through;
// - silence_hdf5_errors(): switches off HDF5's own printing of its error stack on the
//   calling thread (call it before HDF5 calls on a thread that may not have opened the file);
// - Handle: owns one HDF5 identifier and closes it;
// - the mapping between DType and HDF5 types, and open_dataset(), which opens a dataset
//   and works out its DType and shape (with the errors a user sees for foreign data).
#include <hdf5.h>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/io/h5.h"
#include "core/tensor.h"

namespace dtrain::io {

static_assert(std::is_same_v<hid_t, int64_t>, "H5File stores a hid_t as int64_t (HDF5 >= 1.10)");

namespace detail {

// ---- errors ----------------------------------------------------------------------

// The innermost message on the calling thread's HDF5 error stack ("" when empty).
std::string h5_error_message();

template <typename R, typename... Args>
R h5_check(R result, const char* expr, const char* file, int line, const Args&... what) {
  if (result < 0) {
    std::string hdf5 = h5_error_message();
    ::dtrain::detail::throw_at<IoError>(file, line, what...,
                                        hdf5.empty() ? "" : " (HDF5: ", hdf5, hdf5.empty() ? "" : ")",
                                        " [", expr, "]");
  }
  return result;
}

// HDF5 prints its error stack to stderr by default; we report errors by exception
// instead. The setting is per thread in a thread-safe build, hence thread_local.
void silence_hdf5_errors();

// ---- handles ---------------------------------------------------------------------

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using CloseFn = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, CloseFn close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, -1);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  hid_t release() { return std::exchange(id_, -1); }

 private:
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  CloseFn close_ = nullptr;
};

// ---- types and names -------------------------------------------------------------

// The HDF5 file type (little-endian, as h5py writes) and native memory type of a dtype.
hid_t file_type_of(DType t);
hid_t memory_type_of(DType t);
// "4-byte float", "string", ...: what a dataset or attribute holds, for messages.
std::string type_description(hid_t type);
// The non-empty parts of an HDF5 path ("/a//b/" -> {"a", "b"}).
std::vector<std::string> split_path(const std::string& path);
// A string memory type: variable-length UTF-8. `context` starts the error message.
Handle vlen_string_type(const std::string& context);
// A dataset creation property list without object modification times, so that writing
// the same data gives the same file bytes (reproducible converters and checkpoints).
Handle dataset_create_plist(const std::string& context);

// ---- datasets --------------------------------------------------------------------

// An open dataset with its dtype and shape.
struct OpenDataset {
  Handle ds;
  DType dtype;
  Shape shape;
};

// Note [Claimed sizes]: a file's header says how many elements a dataset or attribute
// holds, and a damaged header can claim any number. Before anything allocates memory for
// what it claims, check_stored_size() compares the claim with the bytes the file stores
// for it: compressed data expands at most about 1032-fold (deflate's limit), so a claim of
// more than 16 MiB beyond 1100 times the stored bytes is refused as a damaged shape (or
// storage that was never written) instead of ending in std::bad_alloc. Files open for
// writing are not checked: their data may still be in HDF5's caches.
void check_stored_size(hid_t obj, bool attribute, double elements, size_t element_bytes, const std::string& where);

// Opens dataset `name` of `f` (fid: f.file_id()) and works out its dtype and shape. Throws
// IoError for a missing dataset, a group, a type dtrain cannot read, a null dataspace, or
// a shape larger than the file can hold (Note [Claimed sizes]).
OpenDataset open_dataset(const H5File& f, hid_t fid, const std::string& name);

}  // namespace detail

}  // namespace dtrain::io

// H5_CHECK(call, message parts...): evaluates an HDF5 C API call and returns its result;
// a negative result (HDF5's failure value for hid_t, herr_t and htri_t) throws IoError with
// the message parts (which name the file and object and say what to do), the innermost
// HDF5 error message, the call and the source location.
#define H5_CHECK(expr, ...) ::dtrain::io::detail::h5_check((expr), #expr, __FILE__, __LINE__, __VA_ARGS__)
