#pragma once
// A small wrapper over the HDF5 C API: the one way dtrain reads and writes checkpoints,
// datasets and golden fixtures (DESIGN.md, "File formats").
//
// Tensors are stored as datasets of the native HDF5 type of their dtype (f32, f64, i32,
// i64, u8), with their shape (a scalar dataspace for 0-dim tensors). bf16 has no HDF5
// type: it is stored as uint16 with the attribute dtype="bf16", so h5py users see the raw
// bits and dtrain reads a BF16 tensor back. Files written here open in h5py and h5dump.
//
// Errors: every HDF5 call goes through H5_CHECK (h5_capi.h), which throws IoError naming
// the file, the object, the innermost message of HDF5's error stack and what to do. HDF5's
// own printing of its error stack to stderr is switched off (per thread: the Debian build
// is thread-safe, where that setting is thread-local).
//
// Thread safety: one H5File must not be used by two threads at once; distinct files may
// be used from distinct threads (the library serializes calls internally).
//
// Code: h5.cpp (opening, closing, structure; errors and types), h5_tensor.cpp (tensors
// and row ranges), h5_strings.cpp (string lists), h5_attributes.cpp (attributes);
// h5_capi.h holds what they share with other code that calls the HDF5 C API.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace dtrain::io {

// How a dataset is stored: its chunk shape (empty when contiguous) and its filters in
// pipeline order ("shuffle", "gzip(4)", ...).
struct DatasetLayout {
  Shape chunks;
  std::vector<std::string> filters;
};

// For H5File::create_dataset: chunked along dim 0 with `chunk_rows` rows per chunk (the
// other dims whole), optionally byte-shuffled and gzip-compressed, optionally with a
// Fletcher-32 checksum per chunk (HDF5's fletcher32 filter, checked by every read: a
// damaged chunk fails to read instead of giving wrong values). chunk_rows == 0 stores
// the dataset contiguously (no compression or checksum possible).
struct CreateOptions {
  int64_t chunk_rows = 0;
  int gzip_level = 0;  // 0: none, 1..9
  bool shuffle = false;
  bool checksum = false;
};

class H5File {
 public:
  // Opening a missing file, a file that is not HDF5, or a damaged (e.g. truncated) one
  // throws IoError saying which.
  static H5File open_read(const std::string& path);
  static H5File open_readwrite(const std::string& path);
  // Creates the file, truncating an existing one.
  static H5File create(const std::string& path);

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();  // closes quietly; call close() to see errors

  const std::string& path() const { return path_; }
  bool is_open() const { return id_ >= 0; }
  // The open file's hid_t, for code that calls the HDF5 C API itself (h5_capi.h); throws
  // IoError when the file is closed.
  int64_t file_id() const;
  // Flushes and closes; throws IoError on failure. Further use throws.
  void close();
  void flush();

  // ---- tensors ----
  // Writes `t` (copied to the host first when on CUDA) as the dataset `dataset`, e.g.
  // "/model/features.0.weight", creating missing groups on the way. An existing dataset
  // of that name is replaced.
  void write(const std::string& dataset, const Tensor& t);
  // The dataset as a CPU tensor of the stored dtype.
  Tensor read(const std::string& dataset) const;
  // As read(), but throws IoError when the stored dtype is not `expected` (no silent
  // conversions: a checkpoint of the wrong precision is an error worth seeing).
  Tensor read_as(const std::string& dataset, DType expected) const;
  // Rows [start, start + count) along dim 0 of the dataset, read without loading the rest
  // (what a rank needs of its shard). The dataset must have at least one dimension.
  Tensor read_rows(const std::string& dataset, int64_t start, int64_t count) const;
  Shape shape_of(const std::string& dataset) const;
  DType dtype_of(const std::string& dataset) const;
  DatasetLayout layout_of(const std::string& dataset) const;

  // ---- row-wise writing (datasets larger than memory) ----
  // (Reading: read_rows above; many reads of one dataset, the loader's path:
  // data::RowReader in datasets/row_reader.h.)
  // Creates an uninitialized dataset (replacing one of that name), creating missing groups.
  void create_dataset(const std::string& dataset, const Shape& shape, DType dtype, const CreateOptions& options = {});
  // Writes `rows` (dtype and trailing dims as stored) at rows [start, start + rows.size(0)).
  void write_rows(const std::string& dataset, int64_t start, const Tensor& rows);

  // ---- string lists (vocabularies) ----
  // A 1-D dataset of variable-length UTF-8 strings (h5py reads it as an array of bytes
  // objects, or strings with .asstr()).
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);
  std::vector<std::string> read_strings(const std::string& dataset) const;

  // ---- structure ----
  // True when a group or dataset exists at `path` ("/" always exists).
  bool has(const std::string& path) const;
  // Names of the children of a group, in name order (as h5py and h5dump list them).
  std::vector<std::string> list(const std::string& group = "/") const;

  // ---- attributes ----
  // On the object at `object` ("/" for the file root, or a group or dataset path).
  // Setting replaces an existing attribute of that name. Getting checks the stored kind:
  // int64_t needs an integer attribute, double a floating one, strings a string one.
  void set_attribute(const std::string& object, const std::string& name, const std::string& value);
  void set_attribute(const std::string& object, const std::string& name, const char* value) {
    set_attribute(object, name, std::string(value));
  }
  void set_attribute(const std::string& object, const std::string& name, int64_t value);
  void set_attribute(const std::string& object, const std::string& name, int value) {
    set_attribute(object, name, static_cast<int64_t>(value));
  }
  void set_attribute(const std::string& object, const std::string& name, double value);
  void set_attribute(const std::string& object, const std::string& name, const std::vector<double>& value);
  void set_attribute(const std::string& object, const std::string& name,
                     const std::vector<std::string>& value);
  bool has_attribute(const std::string& object, const std::string& name) const;
  // T is one of std::string, int64_t, double, std::vector<double>, std::vector<std::string>.
  template <typename T>
  T get_attribute(const std::string& object, const std::string& name) const;

 private:
  H5File(std::string path, int64_t id) : path_(std::move(path)), id_(id) {}
  static H5File open(const std::string& path, bool writable);
  void require_object(const std::string& object, const char* kind) const;

  std::string path_;
  int64_t id_ = -1;  // hid_t of the open file, -1 when closed
};

extern template std::string H5File::get_attribute<std::string>(const std::string&, const std::string&) const;
extern template int64_t H5File::get_attribute<int64_t>(const std::string&, const std::string&) const;
extern template double H5File::get_attribute<double>(const std::string&, const std::string&) const;
extern template std::vector<double> H5File::get_attribute<std::vector<double>>(const std::string&,
                                                                               const std::string&) const;
extern template std::vector<std::string> H5File::get_attribute<std::vector<std::string>>(
    const std::string&, const std::string&) const;

}  // namespace dtrain::io
