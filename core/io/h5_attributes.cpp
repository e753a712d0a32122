// HDF5 wrapper (see h5.h), part 4: attributes of the file root, groups and datasets.
#include <hdf5.h>

#include <string>
#include <type_traits>
#include <vector>

#include "core/io/h5.h"
#include "core/io/h5_capi.h"

namespace dtrain::io {

using namespace detail;

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
  check_stored_size(a.attr.get(), true, static_cast<double>(a.count), H5Tget_size(a.type.get()), where);

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
