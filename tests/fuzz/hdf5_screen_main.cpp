// dtrain_hdf5_screen FILE: reads an HDF5 file whole with the library alone (every object,
// dataset, attribute and chunk index), under a CPU-time limit, for the fuzz targets
// (tests/fuzz/hdf5_screen.h, Note [HDF5's own defects]). Exit 0 when the library got
// through it; a crash or SIGXCPU/SIGKILL otherwise. Never instrumented.
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <vector>

namespace {

// A seed or any sane small file is read in well under 0.1 s.
constexpr rlim_t kCpuSeconds = 3;

// Reads an attribute or a dataset whole, in its native type, reclaiming variable-length
// data.
void read_all(hid_t obj, bool attribute) {
  hid_t type = attribute ? H5Aget_type(obj) : H5Dget_type(obj);
  hid_t space = attribute ? H5Aget_space(obj) : H5Dget_space(obj);
  if (type < 0 || space < 0) return;
  hid_t native = H5Tget_native_type(type, H5T_DIR_DEFAULT);
  const hssize_t points = H5Sget_simple_extent_npoints(space);
  const size_t elem = native >= 0 ? H5Tget_size(native) : 0;
  if (native >= 0 && points > 0 && elem > 0 && static_cast<double>(points) * static_cast<double>(elem) < 64e6) {
    std::vector<unsigned char> buf(static_cast<size_t>(points) * elem);
    herr_t rc = attribute ? H5Aread(obj, native, buf.data())
                          : H5Dread(obj, native, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    if (rc >= 0 && H5Tdetect_class(native, H5T_VLEN) > 0) H5Dvlen_reclaim(native, space, H5P_DEFAULT, buf.data());
    if (rc >= 0 && H5Tget_class(native) == H5T_STRING && H5Tis_variable_str(native) > 0) {
      H5Dvlen_reclaim(native, space, H5P_DEFAULT, buf.data());
    }
  }
  if (native >= 0) H5Tclose(native);
  H5Sclose(space);
  H5Tclose(type);
}

herr_t visit_attribute(hid_t loc, const char* name, const H5A_info_t*, void*) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a >= 0) {
    read_all(a, true);
    H5Aclose(a);
  }
  return 0;
}

herr_t visit_object(hid_t file, const char* name, const H5O_info_t* info, void*) {
  hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
  if (obj < 0) return 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, visit_attribute, nullptr);
  if (info->type == H5O_TYPE_DATASET) {
    read_all(obj, false);
    hsize_t chunks = 0;
    hid_t space = H5Dget_space(obj);
    if (space >= 0 && H5Dget_num_chunks(obj, space, &chunks) >= 0) {
      for (hsize_t i = 0; i < std::min<hsize_t>(chunks, 4096); ++i) {
        hsize_t offset[H5S_MAX_RANK];
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t bytes = 0;
        H5Dget_chunk_info(obj, space, i, offset, &mask, &addr, &bytes);
      }
    }
    if (space >= 0) H5Sclose(space);
  }
  H5Oclose(obj);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const rlimit cpu{kCpuSeconds, kCpuSeconds + 1};
  setrlimit(RLIMIT_CPU, &cpu);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f >= 0) {
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_object, nullptr, H5O_INFO_BASIC);
    H5Fclose(f);
  }
  return 0;
}
