// HDF5 wrapper: see h5.h.
#include "core/io/h5.h"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <type_traits>
#include <utility>

namespace dtrain::io {

static_assert(std::is_same_v<hid_t, int64_t>, "H5File stores a hid_t as int64_t (HDF5 >= 1.10)");

namespace detail {

namespace {
herr_t innermost_error(unsigned n, const H5E_error2_t* e, void* data) {
  // Walking upward, entry 0 is where the error was detected: the most specific message.
  if (n == 0 && e != nullptr) {
    auto* out = static_cast<std::string*>(data);
    if (e->desc != nullptr && e->desc[0] != '\0') {
      *out = e->desc;
    } else if (e->func_name != nullptr) {
      *out = std::string("error in ") + e->func_name;
    }
  }
  return 0;
}
}  // namespace

std::string h5_error_message() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg;
}

}  // namespace detail

namespace {

// HDF5 prints its error stack to stderr by default; we report errors by exception
// instead. The setting is per thread in a thread-safe build, hence thread_local.
void silence_hdf5_errors() {
  thread_local const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

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

hid_t file_type_of(DType t) {
  switch (t) {
    case DType::F32: return H5T_IEEE_F32LE;
    case DType::F64: return H5T_IEEE_F64LE;
    case DType::BF16: return H5T_STD_U16LE;
    case DType::I32: return H5T_STD_I32LE;
    case DType::I64: return H5T_STD_I64LE;
    case DType::U8: return H5T_STD_U8LE;
  }
  DT_THROW(ValueError, "no HDF5 type for dtype ", static_cast<int>(t));
}

hid_t memory_type_of(DType t) {
  switch (t) {
    case DType::F32: return H5T_NATIVE_FLOAT;
    case DType::F64: return H5T_NATIVE_DOUBLE;
    case DType::BF16: return H5T_NATIVE_UINT16;
    case DType::I32: return H5T_NATIVE_INT32;
    case DType::I64: return H5T_NATIVE_INT64;
    case DType::U8: return H5T_NATIVE_UINT8;
  }
  DT_THROW(ValueError, "no HDF5 type for dtype ", static_cast<int>(t));
}

std::string type_description(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  std::string bytes = std::to_string(size) + "-byte ";
  switch (cls) {
    case H5T_INTEGER: return bytes + (H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned integer" : "signed integer");
    case H5T_FLOAT: return bytes + "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum (h5py stores numpy bool as one)";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_OPAQUE: return "opaque";
    case H5T_REFERENCE: return "reference";
    default: return "HDF5 type class " + std::to_string(static_cast<int>(cls));
  }
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  return parts;
}

// A string memory type: variable-length UTF-8.
Handle vlen_string_type(const std::string& context) {
  Handle t(H5_CHECK(H5Tcopy(H5T_C_S1), context, ": cannot create a string type"), H5Tclose);
  H5_CHECK(H5Tset_size(t.get(), H5T_VARIABLE), context, ": cannot create a string type");
  H5_CHECK(H5Tset_cset(t.get(), H5T_CSET_UTF8), context, ": cannot create a string type");
  return t;
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;  // never let an exception cross the C library
  }
}

}  // namespace

// ---- open / close ----------------------------------------------------------------

H5File H5File::open(const std::string& path, bool writable) {
  silence_hdf5_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    DT_THROW(IoError, "cannot open HDF5 file '", path, "': the file is missing (check the path and the working directory)");
  }
  if (std::filesystem::is_directory(path, ec)) {
    DT_THROW(IoError, "cannot open HDF5 file '", path, "': it is a directory, not a file");
  }
  htri_t is_hdf5 = H5_CHECK(H5Fis_hdf5(path.c_str()), "cannot open HDF5 file '", path,
                            "': the file cannot be read (check its permissions)");
  if (is_hdf5 == 0) {
    DT_THROW(IoError, "cannot open '", path, "': not an HDF5 file (no HDF5 signature); ",
             "dtrain reads and writes HDF5 only (DESIGN.md, \"File formats\")");
  }
  hid_t id = H5_CHECK(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT),
                      "cannot open HDF5 file '", path, "'", writable ? " for writing" : "",
                      ": the file is damaged (truncated or partly written?) or locked by another writer; ",
                      "restore or regenerate it");
  return H5File(path, id);
}

H5File H5File::open_read(const std::string& path) { return open(path, false); }
H5File H5File::open_readwrite(const std::string& path) { return open(path, true); }

H5File H5File::create(const std::string& path) {
  silence_hdf5_errors();
  hid_t id = H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create HDF5 file '", path,
                      "': check that the directory exists and is writable, and that no other process has the file open");
  return H5File(path, id);
}

H5File::H5File(H5File&& other) noexcept : path_(std::move(other.path_)), id_(std::exchange(other.id_, -1)) {}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    path_ = std::move(other.path_);
    id_ = std::exchange(other.id_, -1);
  }
  return *this;
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

void H5File::close() {
  hid_t id = std::exchange(id_, -1);
  if (id >= 0) H5_CHECK(H5Fclose(id), "cannot close HDF5 file '", path_, "': data may not have been written; check disk space");
}

void H5File::flush() {
  H5_CHECK(H5Fflush(file_id(), H5F_SCOPE_GLOBAL), "cannot flush HDF5 file '", path_, "': check disk space");
}

int64_t H5File::file_id() const {
  if (id_ < 0) DT_THROW(IoError, "HDF5 file '", path_, "' is closed (or was moved from)");
  silence_hdf5_errors();  // this thread may not be the one that opened the file
  return id_;
}

// ---- structure -------------------------------------------------------------------

bool H5File::has(const std::string& path) const {
  hid_t fid = file_id();
  std::string prefix;
  for (const std::string& part : split_path(path)) {
    // Each step's parent is a group (checked below), so H5Lexists is well defined.
    prefix += "/" + part;
    htri_t exists = H5_CHECK(H5Lexists(fid, prefix.c_str(), H5P_DEFAULT), "HDF5 file '", path_,
                             "': cannot look up '", prefix, "'");
    if (exists == 0) return false;
    htri_t resolves = H5_CHECK(H5Oexists_by_name(fid, prefix.c_str(), H5P_DEFAULT), "HDF5 file '", path_,
                               "': cannot look up '", prefix, "'");
    if (resolves == 0) return false;  // a dangling soft link
    if (prefix.size() < path.size()) {
      Handle obj(H5_CHECK(H5Oopen(fid, prefix.c_str(), H5P_DEFAULT), "HDF5 file '", path_, "': cannot open '",
                          prefix, "'"),
                 H5Oclose);
      if (H5Iget_type(obj.get()) != H5I_GROUP) {
        // Remaining parts would be children of a dataset: they cannot exist.
        std::string rest = path.substr(prefix.size());
        if (!split_path(rest).empty()) return false;
      }
    }
  }
  return true;
}

void H5File::require_object(const std::string& object, const char* kind) const {
  if (!has(object)) {
    DT_THROW(IoError, "HDF5 file '", path_, "' has no ", kind, " '", object,
             "' (list its contents with h5dump -n; was it written by another version of the program?)");
  }
}

std::vector<std::string> H5File::list(const std::string& group) const {
  hid_t fid = file_id();
  require_object(group, "group");
  Handle g(H5_CHECK(H5Oopen(fid, group.c_str(), H5P_DEFAULT), "HDF5 file '", path_, "': cannot open '", group, "'"),
           H5Oclose);
  if (H5Iget_type(g.get()) != H5I_GROUP) {
    DT_THROW(IoError, "HDF5 file '", path_, "': '", group, "' is a dataset, not a group; only groups have children");
  }
  std::vector<std::string> names;
  H5_CHECK(H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &names), "HDF5 file '", path_,
           "': cannot list group '", group, "'");
  return names;
}

// ---- tensors ---------------------------------------------------------------------

namespace {

struct OpenDataset {
  Handle ds;
  DType dtype;
  Shape shape;
};

}  // namespace

// Opens a dataset and works out its dtype and shape.
static OpenDataset open_dataset(const H5File& f, hid_t fid, const std::string& name) {
  const std::string& path = f.path();
  if (!f.has(name)) {
    DT_THROW(IoError, "HDF5 file '", path, "' has no dataset '", name,
             "' (list its contents with h5dump -n; was it written by another version of the program?)");
  }
  Handle obj(H5_CHECK(H5Oopen(fid, name.c_str(), H5P_DEFAULT), "HDF5 file '", path, "': cannot open '", name, "'"),
             H5Oclose);
  if (H5Iget_type(obj.get()) != H5I_DATASET) {
    DT_THROW(IoError, "HDF5 file '", path, "': '", name, "' is a group, not a dataset");
  }
  OpenDataset out{Handle(H5_CHECK(H5Dopen2(fid, name.c_str(), H5P_DEFAULT), "HDF5 file '", path,
                                  "': cannot open dataset '", name, "'"),
                         H5Dclose),
                  DType::F32, {}};
  hid_t ds = out.ds.get();

  Handle type(H5_CHECK(H5Dget_type(ds), "HDF5 file '", path, "', dataset '", name, "': cannot read its type"),
              H5Tclose);
  H5T_class_t cls = H5_CHECK(H5Tget_class(type.get()), "HDF5 file '", path, "', dataset '", name,
                             "': cannot read its type");
  size_t size = H5Tget_size(type.get());
  bool is_signed = cls == H5T_INTEGER && H5Tget_sign(type.get()) != H5T_SGN_NONE;
  bool known = true;
  if (cls == H5T_FLOAT && size == 4) {
    out.dtype = DType::F32;
  } else if (cls == H5T_FLOAT && size == 8) {
    out.dtype = DType::F64;
  } else if (cls == H5T_INTEGER && size == 4 && is_signed) {
    out.dtype = DType::I32;
  } else if (cls == H5T_INTEGER && size == 8 && is_signed) {
    out.dtype = DType::I64;
  } else if (cls == H5T_INTEGER && size == 1 && !is_signed) {
    out.dtype = DType::U8;
  } else if (cls == H5T_INTEGER && size == 2 && !is_signed && f.has_attribute(name, "dtype") &&
             f.get_attribute<std::string>(name, "dtype") == "bf16") {
    out.dtype = DType::BF16;
  } else {
    known = false;
  }
  if (!known) {
    DT_THROW(IoError, "HDF5 file '", path, "', dataset '", name, "' holds ", type_description(type.get()),
             " values, which dtrain cannot read as a tensor (supported: float32, float64, int32, int64, "
             "uint8, and bf16 stored as uint16 with attribute dtype=\"bf16\"); convert the dataset, e.g. with h5py");
  }

  Handle space(H5_CHECK(H5Dget_space(ds), "HDF5 file '", path, "', dataset '", name, "': cannot read its shape"),
               H5Sclose);
  H5S_class_t sclass = H5_CHECK(H5Sget_simple_extent_type(space.get()), "HDF5 file '", path, "', dataset '", name,
                                "': cannot read its shape");
  if (sclass == H5S_NULL) {
    DT_THROW(IoError, "HDF5 file '", path, "', dataset '", name,
             "' has a null dataspace (h5py.Empty) and holds no tensor; write an array of shape (0,) instead");
  }
  int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()), "HDF5 file '", path, "', dataset '", name,
                      "': cannot read its shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) {
    H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "HDF5 file '", path, "', dataset '", name,
             "': cannot read its shape");
  }
  out.shape.assign(dims.begin(), dims.end());
  return out;
}

void H5File::write(const std::string& dataset, const Tensor& t) {
  hid_t fid = file_id();
  DT_CHECK_AS(t.defined(), IoError, "HDF5 file '", path_, "': cannot write an undefined tensor as '", dataset, "'");
  DT_CHECK_AS(!split_path(dataset).empty(), IoError, "HDF5 file '", path_, "': '", dataset,
              "' is not a dataset name");
  Tensor host = t.to(Device::cpu());
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";

  if (has(dataset)) {
    Handle obj(H5_CHECK(H5Oopen(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot open the existing object"),
               H5Oclose);
    if (H5Iget_type(obj.get()) != H5I_DATASET) {
      DT_THROW(IoError, where, ": a group of that name exists; choose another name");
    }
    obj = Handle();
    // The old data's space is not reclaimed (HDF5 does not shrink files); rewriting a
    // whole checkpoint into a fresh file is the way to keep files compact.
    H5_CHECK(H5Ldelete(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot replace the existing dataset");
  }

  const Shape& shape = host.shape();
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(shape.empty() ? H5_CHECK(H5Screate(H5S_SCALAR), where, ": cannot create a dataspace")
                             : H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), where,
                                        ": cannot create a dataspace of shape ", shape_str(shape)),
               H5Sclose);
  Handle lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), where, ": cannot create a property list"), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), where, ": cannot create a property list");
  Handle ds(H5_CHECK(H5Dcreate2(fid, dataset.c_str(), file_type_of(host.dtype()), space.get(), lcpl.get(),
                                H5P_DEFAULT, H5P_DEFAULT),
                     where, ": cannot create the dataset (is the file open for writing? is a parent a dataset?)"),
            H5Dclose);
  if (host.numel() > 0) {
    H5_CHECK(H5Dwrite(ds.get(), memory_type_of(host.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()), where,
             ": cannot write ", host.str(), " (check disk space)");
  }
  ds = Handle();
  if (host.dtype() == DType::BF16) set_attribute(dataset, "dtype", std::string("bf16"));
}

Tensor H5File::read(const std::string& dataset) const {
  hid_t fid = file_id();
  OpenDataset d = open_dataset(*this, fid, dataset);
  Tensor out = Tensor::empty(d.shape, d.dtype);
  if (out.numel() > 0) {
    H5_CHECK(H5Dread(d.ds.get(), memory_type_of(d.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.raw_data()),
             "HDF5 file '", path_, "', dataset '", dataset, "': cannot read its data; the file may be damaged");
  }
  return out;
}

Tensor H5File::read_as(const std::string& dataset, DType expected) const {
  DType stored = dtype_of(dataset);
  if (stored != expected) {
    DT_THROW(IoError, "HDF5 file '", path_, "', dataset '", dataset, "': stored as ", dtype_name(stored), " but ",
             dtype_name(expected), " was expected; the file was written with another precision or by another "
             "program: regenerate it, or read() it and convert with Tensor::to(DType) if that is intended");
  }
  return read(dataset);
}

Tensor H5File::read_rows(const std::string& dataset, int64_t start, int64_t count) const {
  hid_t fid = file_id();
  OpenDataset d = open_dataset(*this, fid, dataset);
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  if (d.shape.empty()) DT_THROW(IoError, where, ": read_rows needs at least one dimension, the dataset is 0-dim");
  if (start < 0 || count < 0 || start + count > d.shape[0]) {
    DT_THROW(IoError, where, ": rows [", start, ", ", start + count, ") are out of range for shape ",
             shape_str(d.shape));
  }
  Shape shape = d.shape;
  shape[0] = count;
  Tensor out = Tensor::empty(shape, d.dtype);
  if (out.numel() == 0) return out;

  Handle fspace(H5_CHECK(H5Dget_space(d.ds.get()), where, ": cannot read its shape"), H5Sclose);
  std::vector<hsize_t> offset(shape.size(), 0), extent(shape.begin(), shape.end());
  offset[0] = static_cast<hsize_t>(start);
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr), where,
           ": cannot select rows");
  Handle mspace(H5_CHECK(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), where,
                         ": cannot create a dataspace"),
                H5Sclose);
  H5_CHECK(H5Dread(d.ds.get(), memory_type_of(d.dtype), mspace.get(), fspace.get(), H5P_DEFAULT, out.raw_data()),
           where, ": cannot read rows [", start, ", ", start + count, "); the file may be damaged");
  return out;
}

Shape H5File::shape_of(const std::string& dataset) const { return open_dataset(*this, file_id(), dataset).shape; }

DType H5File::dtype_of(const std::string& dataset) const { return open_dataset(*this, file_id(), dataset).dtype; }

DatasetLayout H5File::layout_of(const std::string& dataset) const {
  OpenDataset d = open_dataset(*this, file_id(), dataset);
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  Handle dcpl(H5_CHECK(H5Dget_create_plist(d.ds.get()), where, ": cannot read its creation properties"), H5Pclose);
  DatasetLayout out;
  H5D_layout_t layout = H5_CHECK(H5Pget_layout(dcpl.get()), where, ": cannot read its layout");
  if (layout == H5D_CHUNKED) {
    int rank = H5_CHECK(H5Pget_chunk(dcpl.get(), 0, nullptr), where, ": cannot read its chunk shape");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5_CHECK(H5Pget_chunk(dcpl.get(), rank, dims.data()), where, ": cannot read its chunk shape");
    out.chunks.assign(dims.begin(), dims.end());
  }
  int nfilters = H5_CHECK(H5Pget_nfilters(dcpl.get()), where, ": cannot read its filters");
  for (int i = 0; i < nfilters; ++i) {
    unsigned flags = 0, config = 0;
    size_t nvalues = 4;
    unsigned values[4] = {0, 0, 0, 0};
    char name[64] = {0};
    H5Z_filter_t f = H5_CHECK(H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nvalues, values,
                                             sizeof(name), name, &config),
                              where, ": cannot read its filters");
    if (f == H5Z_FILTER_DEFLATE) {
      out.filters.push_back("gzip(" + std::to_string(nvalues > 0 ? values[0] : 0) + ")");
    } else if (f == H5Z_FILTER_SHUFFLE) {
      out.filters.push_back("shuffle");
    } else if (f == H5Z_FILTER_FLETCHER32) {
      out.filters.push_back("fletcher32");
    } else {
      out.filters.push_back(name[0] != '\0' ? std::string(name) : "filter " + std::to_string(f));
    }
  }
  return out;
}

void H5File::create_dataset(const std::string& dataset, const Shape& shape, DType dtype, const CreateOptions& options) {
  hid_t fid = file_id();
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  DT_CHECK_AS(!split_path(dataset).empty(), IoError, "HDF5 file '", path_, "': '", dataset,
              "' is not a dataset name");
  DT_CHECK_AS(!shape.empty(), IoError, where, ": create_dataset needs at least one dimension");
  for (int64_t d : shape) DT_CHECK_AS(d >= 0, IoError, where, ": negative dimension in shape ", shape_str(shape));
  DT_CHECK_AS(options.chunk_rows >= 0, IoError, where, ": chunk_rows must be >= 0");
  DT_CHECK_AS(options.gzip_level >= 0 && options.gzip_level <= 9, IoError, where, ": gzip level ",
              options.gzip_level, " is not in 0..9");
  DT_CHECK_AS(options.chunk_rows > 0 || (options.gzip_level == 0 && !options.shuffle), IoError, where,
              ": compression needs a chunked dataset (set chunk_rows > 0)");
  if (has(dataset)) {
    Handle obj(H5_CHECK(H5Oopen(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot open the existing object"),
               H5Oclose);
    if (H5Iget_type(obj.get()) != H5I_DATASET) DT_THROW(IoError, where, ": a group of that name exists");
    obj = Handle();
    H5_CHECK(H5Ldelete(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot replace the existing dataset");
  }
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), where,
                        ": cannot create a dataspace of shape ", shape_str(shape)),
               H5Sclose);
  Handle dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), where, ": cannot create a property list"), H5Pclose);
  if (options.chunk_rows > 0 && shape[0] > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = static_cast<hsize_t>(std::min<int64_t>(options.chunk_rows, shape[0]));
    for (hsize_t& c : chunk) c = std::max<hsize_t>(c, 1);
    H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), where,
             ": cannot set the chunk shape (a chunk must stay below 4 GiB)");
    if (options.shuffle) H5_CHECK(H5Pset_shuffle(dcpl.get()), where, ": cannot set the shuffle filter");
    if (options.gzip_level > 0) {
      H5_CHECK(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.gzip_level)), where,
               ": cannot set gzip compression (is this HDF5 built with zlib?)");
    }
  }
  Handle lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), where, ": cannot create a property list"), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), where, ": cannot create a property list");
  Handle ds(H5_CHECK(H5Dcreate2(fid, dataset.c_str(), file_type_of(dtype), space.get(), lcpl.get(), dcpl.get(),
                                H5P_DEFAULT),
                     where, ": cannot create the dataset (is the file open for writing?)"),
            H5Dclose);
}

void H5File::write_rows(const std::string& dataset, int64_t start, const Tensor& rows) {
  hid_t fid = file_id();
  OpenDataset d = open_dataset(*this, fid, dataset);
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  DT_CHECK_AS(rows.defined(), IoError, where, ": cannot write an undefined tensor");
  Tensor host = rows.to(Device::cpu());
  DT_CHECK_AS(host.dtype() == d.dtype, IoError, where, ": rows are ", dtype_name(host.dtype()), " but the dataset is ",
              dtype_name(d.dtype));
  DT_CHECK_AS(!d.shape.empty() && host.ndim() == static_cast<int64_t>(d.shape.size()) &&
                  std::equal(d.shape.begin() + 1, d.shape.end(), host.shape().begin() + 1),
              IoError, where, ": rows of shape ", shape_str(host.shape()), " do not fit a dataset of shape ",
              shape_str(d.shape));
  int64_t count = host.shape()[0];
  if (start < 0 || start + count > d.shape[0]) {
    DT_THROW(IoError, where, ": rows [", start, ", ", start + count, ") are out of range for shape ",
             shape_str(d.shape));
  }
  if (count == 0) return;
  Handle fspace(H5_CHECK(H5Dget_space(d.ds.get()), where, ": cannot read its shape"), H5Sclose);
  std::vector<hsize_t> offset(d.shape.size(), 0), extent(host.shape().begin(), host.shape().end());
  offset[0] = static_cast<hsize_t>(start);
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr), where,
           ": cannot select rows");
  Handle mspace(H5_CHECK(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), where,
                         ": cannot create a dataspace"),
                H5Sclose);
  H5_CHECK(H5Dwrite(d.ds.get(), memory_type_of(d.dtype), mspace.get(), fspace.get(), H5P_DEFAULT, host.raw_data()),
           where, ": cannot write rows [", start, ", ", start + count, ") (check disk space)");
}

H5RowReader H5File::open_rows(const std::string& dataset, int64_t chunk_cache_bytes, bool direct) const {
  hid_t fid = file_id();
  OpenDataset d = open_dataset(*this, fid, dataset);
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  if (d.shape.empty()) DT_THROW(IoError, where, ": row reads need at least one dimension, the dataset is 0-dim");
  H5RowReader r;
  r.file_ = path_;
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
  if (direct) r.setup_direct();
  return r;
}

void H5RowReader::setup_direct() {
  // Any failure here only means "no fast path": errors are cleared, nothing is thrown.
  auto fail = [&] {
    H5Eclear2(H5E_DEFAULT);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    chunk_offsets_.clear();
  };
  if (rows() == 0 || row_bytes_ == 0) return;
  Handle dcpl(H5Dget_create_plist(id_), H5Pclose);
  Handle type(H5Dget_type(id_), H5Tclose);
  if (dcpl.get() < 0 || type.get() < 0) return fail();
  if (H5Pget_nfilters(dcpl.get()) != 0 || H5Pget_external_count(dcpl.get()) != 0 ||
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
    chunk_rows_ = static_cast<int64_t>(chunk[0]);
    std::vector<hsize_t> offset(shape_.size(), 0);
    for (int64_t row = 0; row < rows(); row += chunk_rows_) {
      offset[0] = static_cast<hsize_t>(row);
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      if (H5Dget_chunk_info_by_coord(id_, offset.data(), &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
          size < static_cast<hsize_t>(chunk_rows_) * row_bytes_) {
        return fail();  // unallocated (never written) or unexpected chunk
      }
      chunk_offsets_.push_back(static_cast<int64_t>(addr));
    }
  } else {
    return fail();  // compact: tiny, not worth it
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

H5RowReader::H5RowReader(H5RowReader&& o) noexcept
    : file_(std::move(o.file_)),
      dataset_(std::move(o.dataset_)),
      id_(std::exchange(o.id_, -1)),
      shape_(std::move(o.shape_)),
      dtype_(o.dtype_),
      row_bytes_(o.row_bytes_),
      fd_(std::exchange(o.fd_, -1)),
      chunk_rows_(o.chunk_rows_),
      chunk_offsets_(std::move(o.chunk_offsets_)) {}

H5RowReader& H5RowReader::operator=(H5RowReader&& o) noexcept {
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
  }
  return *this;
}

H5RowReader::~H5RowReader() {
  if (id_ >= 0) H5Dclose(id_);
  if (fd_ >= 0) ::close(fd_);
}

void H5RowReader::read(int64_t start, int64_t count, void* dst) const {
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

void H5RowReader::read_direct(int64_t start, int64_t count, void* dst) const {
  auto* out = static_cast<unsigned char*>(dst);
  for (int64_t row = start; row < start + count;) {
    int64_t chunk = row / chunk_rows_;
    int64_t in_chunk = std::min(start + count, (chunk + 1) * chunk_rows_) - row;
    size_t bytes = static_cast<size_t>(in_chunk) * row_bytes_;
    off_t at = static_cast<off_t>(chunk_offsets_[static_cast<size_t>(chunk)] +
                                  (row - chunk * chunk_rows_) * static_cast<int64_t>(row_bytes_));
    for (size_t done = 0; done < bytes;) {
      ssize_t got = ::pread(fd_, out + done, bytes - done, at + static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        DT_THROW(IoError, "HDF5 file '", file_, "', dataset '", dataset_, "': cannot read rows [", row, ", ",
                 row + in_chunk, "): ", got < 0 ? std::strerror(errno) : "the file ends early",
                 "; the file may be damaged (truncated?)");
      }
      done += static_cast<size_t>(got);
    }
    out += bytes;
    row += in_chunk;
  }
}

void H5RowReader::read_hdf5(int64_t start, int64_t count, void* dst) const {
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

// ---- string lists ----------------------------------------------------------------

void H5File::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  hid_t fid = file_id();
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  DT_CHECK_AS(!split_path(dataset).empty(), IoError, "HDF5 file '", path_, "': '", dataset,
              "' is not a dataset name");
  if (has(dataset)) {
    Handle obj(H5_CHECK(H5Oopen(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot open the existing object"),
               H5Oclose);
    if (H5Iget_type(obj.get()) != H5I_DATASET) DT_THROW(IoError, where, ": a group of that name exists");
    obj = Handle();
    H5_CHECK(H5Ldelete(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot replace the existing dataset");
  }
  Handle type = vlen_string_type(where);
  hsize_t dim = values.size();
  Handle space(H5_CHECK(H5Screate_simple(1, &dim, nullptr), where, ": cannot create a dataspace"), H5Sclose);
  Handle lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), where, ": cannot create a property list"), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), where, ": cannot create a property list");
  Handle ds(H5_CHECK(H5Dcreate2(fid, dataset.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                     where, ": cannot create the dataset (is the file open for writing?)"),
            H5Dclose);
  std::vector<const char*> data;
  data.reserve(values.size());
  for (const std::string& v : values) data.push_back(v.c_str());
  if (!data.empty()) {
    H5_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), where,
             ": cannot write the strings (check disk space)");
  }
}

std::vector<std::string> H5File::read_strings(const std::string& dataset) const {
  hid_t fid = file_id();
  const std::string where = "HDF5 file '" + path_ + "', dataset '" + dataset + "'";
  require_object(dataset, "dataset");
  Handle obj(H5_CHECK(H5Oopen(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot open it"), H5Oclose);
  if (H5Iget_type(obj.get()) != H5I_DATASET) DT_THROW(IoError, where, " is a group, not a dataset of strings");
  obj = Handle();
  Handle ds(H5_CHECK(H5Dopen2(fid, dataset.c_str(), H5P_DEFAULT), where, ": cannot open it"), H5Dclose);
  Handle type(H5_CHECK(H5Dget_type(ds.get()), where, ": cannot read its type"), H5Tclose);
  Handle space(H5_CHECK(H5Dget_space(ds.get()), where, ": cannot read its shape"), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    DT_THROW(IoError, where, " holds ", type_description(type.get()),
             " values, not strings; a vocabulary is a 1-D dataset of strings");
  }
  int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()), where, ": cannot read its shape");
  if (rank != 1) DT_THROW(IoError, where, " has ", rank, " dimensions; a list of strings has 1");
  size_t n = static_cast<size_t>(H5_CHECK(H5Sget_simple_extent_npoints(space.get()), where, ": cannot read its shape"));
  std::vector<std::string> out;
  out.reserve(n);
  htri_t variable = H5_CHECK(H5Tis_variable_str(type.get()), where, ": cannot read the string type");
  if (variable > 0) {
    Handle mtype = vlen_string_type(where);
    H5_CHECK(H5Tset_cset(mtype.get(), H5Tget_cset(type.get())), where, ": cannot read the string type");
    std::vector<char*> buf(n, nullptr);
    if (n > 0) H5_CHECK(H5Dread(ds.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), where,
                        ": cannot read the strings; the file may be damaged");
    for (char* s : buf) out.emplace_back(s != nullptr ? s : "");
    if (n > 0) H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, buf.data());
  } else {
    size_t len = H5Tget_size(type.get());
    std::string buf(n * len, '\0');
    if (n > 0) H5_CHECK(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), where,
                        ": cannot read the strings; the file may be damaged");
    for (size_t i = 0; i < n; ++i) {
      std::string s = buf.substr(i * len, len);
      if (size_t end = s.find('\0'); end != std::string::npos) s.resize(end);
      out.push_back(std::move(s));
    }
  }
  return out;
}

// ---- attributes ------------------------------------------------------------------

namespace {

// Creates (replacing) attribute `name` on `obj` and writes `data` of memory type `mtype`.
void write_attribute(hid_t obj, const std::string& name, hid_t ftype, hid_t mtype, hid_t space, const void* data,
                     const std::string& where) {
  htri_t exists = H5_CHECK(H5Aexists(obj, name.c_str()), where, ": cannot look up the attribute");
  if (exists > 0) H5_CHECK(H5Adelete(obj, name.c_str()), where, ": cannot replace the existing attribute");
  Handle attr(H5_CHECK(H5Acreate2(obj, name.c_str(), ftype, space, H5P_DEFAULT, H5P_DEFAULT), where,
                       ": cannot create the attribute (is the file open for writing?)"),
              H5Aclose);
  hssize_t count = H5_CHECK(H5Sget_simple_extent_npoints(space), where, ": cannot read the dataspace");
  if (count > 0) H5_CHECK(H5Awrite(attr.get(), mtype, data), where, ": cannot write the attribute");
}

Handle simple_space(size_t n, const std::string& where) {
  hsize_t dim = n;
  return Handle(H5_CHECK(H5Screate_simple(1, &dim, nullptr), where, ": cannot create a dataspace"), H5Sclose);
}

Handle scalar_space(const std::string& where) {
  return Handle(H5_CHECK(H5Screate(H5S_SCALAR), where, ": cannot create a dataspace"), H5Sclose);
}

// An open attribute with its type, class and element count.
struct OpenAttribute {
  Handle attr;
  Handle type;
  Handle space;
  H5T_class_t cls;
  hssize_t count;
};

std::vector<std::string> read_attribute_strings(const OpenAttribute& a, const std::string& where) {
  std::vector<std::string> out;
  size_t n = static_cast<size_t>(a.count);
  htri_t variable = H5_CHECK(H5Tis_variable_str(a.type.get()), where, ": cannot read the string type");
  if (variable > 0) {
    Handle mtype = vlen_string_type(where);
    H5_CHECK(H5Tset_cset(mtype.get(), H5Tget_cset(a.type.get())), where, ": cannot read the string type");
    std::vector<char*> buf(n, nullptr);
    if (n > 0) H5_CHECK(H5Aread(a.attr.get(), mtype.get(), buf.data()), where, ": cannot read the attribute");
    for (char* s : buf) out.emplace_back(s != nullptr ? s : "");
    if (n > 0) H5Dvlen_reclaim(mtype.get(), a.space.get(), H5P_DEFAULT, buf.data());
  } else {
    size_t len = H5Tget_size(a.type.get());
    std::string buf(n * len, '\0');
    if (n > 0) H5_CHECK(H5Aread(a.attr.get(), a.type.get(), buf.data()), where, ": cannot read the attribute");
    bool space_padded = H5Tget_strpad(a.type.get()) == H5T_STR_SPACEPAD;
    for (size_t i = 0; i < n; ++i) {
      std::string s = buf.substr(i * len, len);
      size_t end = s.find('\0');
      if (end != std::string::npos) s.resize(end);
      if (space_padded) s.erase(s.find_last_not_of(' ') + 1);
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace

void H5File::set_attribute(const std::string& object, const std::string& name, const std::string& value) {
  hid_t fid = file_id();
  require_object(object, "object");
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  Handle obj(H5_CHECK(H5Oopen(fid, object.c_str(), H5P_DEFAULT), where, ": cannot open the object"), H5Oclose);
  Handle type = vlen_string_type(where);
  Handle space = scalar_space(where);
  const char* data = value.c_str();
  write_attribute(obj.get(), name, type.get(), type.get(), space.get(), &data, where);
}

void H5File::set_attribute(const std::string& object, const std::string& name, int64_t value) {
  hid_t fid = file_id();
  require_object(object, "object");
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  Handle obj(H5_CHECK(H5Oopen(fid, object.c_str(), H5P_DEFAULT), where, ": cannot open the object"), H5Oclose);
  Handle space = scalar_space(where);
  write_attribute(obj.get(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), &value, where);
}

void H5File::set_attribute(const std::string& object, const std::string& name, double value) {
  hid_t fid = file_id();
  require_object(object, "object");
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  Handle obj(H5_CHECK(H5Oopen(fid, object.c_str(), H5P_DEFAULT), where, ": cannot open the object"), H5Oclose);
  Handle space = scalar_space(where);
  write_attribute(obj.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), &value, where);
}

void H5File::set_attribute(const std::string& object, const std::string& name, const std::vector<double>& value) {
  hid_t fid = file_id();
  require_object(object, "object");
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  Handle obj(H5_CHECK(H5Oopen(fid, object.c_str(), H5P_DEFAULT), where, ": cannot open the object"), H5Oclose);
  Handle space = simple_space(value.size(), where);
  write_attribute(obj.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), value.data(), where);
}

void H5File::set_attribute(const std::string& object, const std::string& name,
                           const std::vector<std::string>& value) {
  hid_t fid = file_id();
  require_object(object, "object");
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  Handle obj(H5_CHECK(H5Oopen(fid, object.c_str(), H5P_DEFAULT), where, ": cannot open the object"), H5Oclose);
  Handle type = vlen_string_type(where);
  Handle space = simple_space(value.size(), where);
  std::vector<const char*> data;
  data.reserve(value.size());
  for (const std::string& s : value) data.push_back(s.c_str());
  write_attribute(obj.get(), name, type.get(), type.get(), space.get(), data.data(), where);
}

bool H5File::has_attribute(const std::string& object, const std::string& name) const {
  hid_t fid = file_id();
  if (!has(object)) return false;
  htri_t exists = H5_CHECK(H5Aexists_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT), "HDF5 file '", path_,
                           "': cannot look up attribute '", name, "' of '", object, "'");
  return exists > 0;
}

template <typename T>
T H5File::get_attribute(const std::string& object, const std::string& name) const {
  hid_t fid = file_id();
  const std::string where = "HDF5 file '" + path_ + "', attribute '" + name + "' of '" + object + "'";
  if (!has_attribute(object, name)) {
    DT_THROW(IoError, where, ": no such attribute (list attributes with h5dump -A; was the file written by "
             "another version of the program?)");
  }
  OpenAttribute a{Handle(H5_CHECK(H5Aopen_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                                  where, ": cannot open the attribute"),
                         H5Aclose),
                  {}, {}, H5T_NO_CLASS, 0};
  a.type = Handle(H5_CHECK(H5Aget_type(a.attr.get()), where, ": cannot read its type"), H5Tclose);
  a.space = Handle(H5_CHECK(H5Aget_space(a.attr.get()), where, ": cannot read its shape"), H5Sclose);
  a.cls = H5_CHECK(H5Tget_class(a.type.get()), where, ": cannot read its type");
  a.count = H5_CHECK(H5Sget_simple_extent_npoints(a.space.get()), where, ": cannot read its shape");

  auto wrong_kind = [&](const char* wanted) {
    DT_THROW(IoError, where, " holds ", a.count, " ", type_description(a.type.get()), " value(s), not ", wanted,
             "; the file does not match what this program expects");
  };
  if constexpr (std::is_same_v<T, int64_t>) {
    if (a.cls != H5T_INTEGER || a.count != 1) wrong_kind("one integer");
    int64_t v = 0;
    H5_CHECK(H5Aread(a.attr.get(), H5T_NATIVE_INT64, &v), where, ": cannot read the attribute");
    return v;
  } else if constexpr (std::is_same_v<T, double>) {
    if (a.cls != H5T_FLOAT || a.count != 1) wrong_kind("one float");
    double v = 0;
    H5_CHECK(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v), where, ": cannot read the attribute");
    return v;
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    if (a.cls != H5T_FLOAT) wrong_kind("floats");
    std::vector<double> v(static_cast<size_t>(a.count));
    if (!v.empty()) H5_CHECK(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, v.data()), where, ": cannot read the attribute");
    return v;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (a.cls != H5T_STRING || a.count != 1) wrong_kind("one string");
    return read_attribute_strings(a, where).at(0);
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "unsupported attribute type");
    if (a.cls != H5T_STRING) wrong_kind("strings");
    return read_attribute_strings(a, where);
  }
}

template std::string H5File::get_attribute<std::string>(const std::string&, const std::string&) const;
template int64_t H5File::get_attribute<int64_t>(const std::string&, const std::string&) const;
template double H5File::get_attribute<double>(const std::string&, const std::string&) const;
template std::vector<double> H5File::get_attribute<std::vector<double>>(const std::string&, const std::string&) const;
template std::vector<std::string> H5File::get_attribute<std::vector<std::string>>(const std::string&,
                                                                                  const std::string&) const;

}  // namespace dtrain::io
