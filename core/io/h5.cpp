// HDF5 wrapper (see h5.h), part 1: errors, handles and types (h5_capi.h), and the file
// itself: opening, creating, closing, and its structure (has, list). Tensors are in
// h5_tensor.cpp, string lists in h5_strings.cpp, attributes in h5_attributes.cpp.
#include "core/io/h5.h"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <utility>

#include "core/io/h5_capi.h"

namespace dtrain::io {

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
  // The file drivers' messages carry a ctime() stamp with its newline ("time = ...\n,
  // filename = ..."): one error, one line.
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return msg;
}

// Note [No HDF5 at-exit cleanup]: HDF5 closes every identifier still open when the
// process exits (H5_term_library, registered with atexit when the library starts).
// After an H5Fclose that failed because the disk did (a write error while flushing:
// ENOSPC, EIO), the file's identifier is left half closed and that cleanup crashes in
// H5F__close_cb (HDF5 1.10; found by tests/faults). dtrain closes every file it writes
// explicitly and checks the result, so the at-exit cleanup has nothing to do for it:
// it is switched off before the library starts (H5dont_atexit must precede every other
// HDF5 call, hence a static initializer).
const bool hdf5_without_atexit = [] {
  H5dont_atexit();
  return true;
}();

void silence_hdf5_errors() {
  (void)hdf5_without_atexit;
  thread_local const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

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

Handle dataset_create_plist(const std::string& context) {
  Handle p(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), context, ": cannot create a property list"), H5Pclose);
  H5_CHECK(H5Pset_obj_track_times(p.get(), 0), context, ": cannot create a property list");
  return p;
}

void check_stored_size(hid_t obj, bool attribute, double elements, size_t element_bytes, const std::string& where) {
  const double claimed = elements * static_cast<double>(element_bytes);
  constexpr double kSlack = 16.0 * 1024 * 1024;
  if (claimed <= kSlack) return;
  // A file open for writing is being made by this process, and its data may still sit in
  // HDF5's caches (stored: 0 bytes so far); only files read as they are get checked.
  Handle file(H5Iget_file_id(obj), H5Fclose);
  unsigned intent = 0;
  if (file.get() < 0 || H5Fget_intent(file.get(), &intent) < 0 || (intent & H5F_ACC_RDWR) != 0) return;
  const double stored = static_cast<double>(attribute ? H5Aget_storage_size(obj) : H5Dget_storage_size(obj));
  if (claimed > kSlack + 1100.0 * stored) {
    std::ostringstream msg;
    msg << where << " claims " << static_cast<uint64_t>(elements) << " elements (" << claimed / 1048576.0
        << " MiB) but the file stores " << static_cast<uint64_t>(stored)
        << " bytes of it: its shape is damaged, or its data was never written; recreate the file";
    DT_THROW(IoError, msg.str());
  }
}

}  // namespace detail

using namespace detail;

namespace {

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

}  // namespace dtrain::io
