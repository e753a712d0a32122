// AppendableDataset: see appendable.h. The HDF5 calls go through core/io/h5_capi.h.
#include "datasets/appendable.h"

#include <hdf5.h>

#include <vector>

#include "core/io/h5_capi.h"

namespace dtrain::data {

using namespace io::detail;

AppendableDataset::AppendableDataset(io::H5File& file, const std::string& name, const Shape& row_shape, DType dtype,
                                     int64_t chunk_rows, bool checksum)
    : where_("HDF5 file '" + file.path() + "', dataset '" + name + "'"), row_shape_(row_shape), dtype_(dtype) {
  DT_CHECK_AS(chunk_rows > 0, IoError, where_, ": chunk_rows must be positive, got ", chunk_rows);
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{static_cast<hsize_t>(chunk_rows)};
  for (int64_t d : row_shape) {
    DT_CHECK_AS(d > 0, IoError, where_, ": row dimensions must be positive, got ", shape_str(row_shape));
    dims.push_back(static_cast<hsize_t>(d));
    maxdims.push_back(static_cast<hsize_t>(d));
    chunk.push_back(static_cast<hsize_t>(d));
  }
  Handle space(H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()), where_,
                        ": cannot create a dataspace"),
               H5Sclose);
  Handle dcpl = dataset_create_plist(where_);
  H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), where_,
           ": cannot set the chunk shape (a chunk must stay below 4 GiB)");
  if (checksum) H5_CHECK(H5Pset_fletcher32(dcpl.get()), where_, ": cannot set the Fletcher-32 checksum filter");
  Handle lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), where_, ": cannot create a property list"), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), where_, ": cannot create a property list");
  id_ = H5_CHECK(H5Dcreate2(file.file_id(), name.c_str(), file_type_of(dtype), space.get(), lcpl.get(), dcpl.get(),
                            H5P_DEFAULT),
                 where_, ": cannot create the dataset (is the file open for writing?)");
}

AppendableDataset::~AppendableDataset() {
  if (id_ >= 0) H5Dclose(id_);
}

void AppendableDataset::close() {
  if (id_ < 0) return;
  hid_t id = id_;
  id_ = -1;
  H5_CHECK(H5Dclose(id), where_, ": cannot close the dataset (check disk space)");
}

void AppendableDataset::append(const void* data, int64_t count) {
  DT_CHECK_AS(id_ >= 0, IoError, where_, ": appending to a closed dataset");
  if (count <= 0) return;
  std::vector<hsize_t> extent{static_cast<hsize_t>(rows_ + count)}, offset{static_cast<hsize_t>(rows_)},
      block{static_cast<hsize_t>(count)};
  for (int64_t d : row_shape_) {
    extent.push_back(static_cast<hsize_t>(d));
    offset.push_back(0);
    block.push_back(static_cast<hsize_t>(d));
  }
  H5_CHECK(H5Dset_extent(id_, extent.data()), where_, ": cannot grow the dataset to ", rows_ + count, " rows");
  Handle fspace(H5_CHECK(H5Dget_space(id_), where_, ": cannot read its shape"), H5Sclose);
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset.data(), nullptr, block.data(), nullptr), where_,
           ": cannot select rows");
  Handle mspace(H5_CHECK(H5Screate_simple(static_cast<int>(block.size()), block.data(), nullptr), where_,
                         ": cannot create a dataspace"),
                H5Sclose);
  H5_CHECK(H5Dwrite(id_, memory_type_of(dtype_), mspace.get(), fspace.get(), H5P_DEFAULT, data), where_,
           ": cannot write rows (check disk space)");
  rows_ += count;
}

}  // namespace dtrain::data
