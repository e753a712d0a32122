// HDF5 wrapper (see h5.h), part 2: tensors. Whole datasets (write, read, read_as), rows
// along dim 0 as hyperslabs (read_rows, create_dataset, write_rows), and what a dataset
// is (shape_of, dtype_of, layout_of). Errors and handles: h5_capi.h.
#include <hdf5.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/io/h5.h"
#include "core/io/h5_capi.h"

namespace dtrain::io {

namespace detail {

OpenDataset open_dataset(const H5File& f, hid_t fid, const std::string& name) {
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
  double elements = 1;
  for (hsize_t d : dims) elements *= static_cast<double>(d);
  check_stored_size(ds, false, elements, size, "HDF5 file '" + path + "', dataset '" + name + "'");
  return out;
}

}  // namespace detail

using namespace detail;

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
  Handle dcpl = dataset_create_plist(where);
  Handle ds(H5_CHECK(H5Dcreate2(fid, dataset.c_str(), file_type_of(host.dtype()), space.get(), lcpl.get(),
                                dcpl.get(), H5P_DEFAULT),
                     where, ": cannot create the dataset (is the file open for writing? is a parent a dataset?)"),
            H5Dclose);
  if (host.numel() > 0) {
    H5_CHECK(H5Dwrite(ds.get(), memory_type_of(host.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()), where,
             ": cannot write ", host.str(), " (check disk space)");
  }
  // Note [Checked dataset close]: H5Dclose writes what HDF5 still buffers for the
  // dataset (its sieve buffer or chunk cache); a failure there (EIO, ENOSPC) would be
  // lost by a quiet close and leave a file that reads back with holes, so it is checked.
  H5_CHECK(H5Dclose(ds.release()), where, ": cannot write ", host.str(), " (check disk space)");
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
  DT_CHECK_AS(options.chunk_rows > 0 || !options.checksum, IoError, where,
              ": checksums need a chunked dataset (set chunk_rows > 0)");
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
  Handle dcpl = dataset_create_plist(where);
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
    // Last in the pipeline: the checksum covers the bytes as stored.
    if (options.checksum) H5_CHECK(H5Pset_fletcher32(dcpl.get()), where, ": cannot set the Fletcher-32 checksum filter");
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
  // Note [Checked dataset close] in H5File::write.
  H5_CHECK(H5Dclose(d.ds.release()), where, ": cannot write rows [", start, ", ", start + count,
           ") (check disk space)");
}

}  // namespace dtrain::io
