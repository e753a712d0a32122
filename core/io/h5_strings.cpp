// HDF5 wrapper (see h5.h), part 3: string lists (vocabularies), 1-D datasets of strings.
#include <hdf5.h>

#include <string>
#include <vector>

#include "core/io/h5.h"
#include "core/io/h5_capi.h"

namespace dtrain::io {

using namespace detail;

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
  Handle dcpl = dataset_create_plist(where);
  Handle ds(H5_CHECK(H5Dcreate2(fid, dataset.c_str(), type.get(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                     where, ": cannot create the dataset (is the file open for writing?)"),
            H5Dclose);
  std::vector<const char*> data;
  data.reserve(values.size());
  for (const std::string& v : values) data.push_back(v.c_str());
  if (!data.empty()) {
    H5_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), where,
             ": cannot write the strings (check disk space)");
  }
  // Note [Checked dataset close] in h5_tensor.cpp.
  H5_CHECK(H5Dclose(ds.release()), where, ": cannot write the strings (check disk space)");
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
  check_stored_size(ds.get(), false, static_cast<double>(n), H5Tget_size(type.get()), where);
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

}  // namespace dtrain::io
