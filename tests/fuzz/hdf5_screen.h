// Screening the fuzz inputs that are HDF5 files (Note [HDF5's own defects]): the file is
// read whole by the HDF5 library alone, in a child process with a CPU-time limit, so that
// a target can tell the library's own crashes and endless loops from its code's.
//
// Note [HDF5's own defects]: the HDF5 library (1.10 in Debian 12) crashes by itself on some
// damaged files, for example in variable-length string data, and spins without end on
// others (a damaged global heap behind a variable-length string attribute, HDF5 issue
// #1707; h5dump spins on such a file too), whoever reads them. dtrain cannot catch a
// segfault inside the library, nor interrupt it. So each input is first read whole by the
// library alone in a child process (every object, dataset, attribute and chunk index, no
// dtrain code) with kCpuSeconds of CPU time: inputs that kill that child or use up its
// time are skipped (counted in a summary at exit), and every crash or hang that remains
// is one that dtrain's code takes part in.
#pragma once

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

// The sanitizers' runtime, when linked (weak: absent from a plain build).
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace dtrain::fuzz::hdf5_screen {

// The child's CPU time: a seed or any sane small file is read in well under 0.1 s.
inline constexpr rlim_t kCpuSeconds = 3;


// Reads an attribute or a dataset whole, in its native type, reclaiming variable-length
// data.
inline void read_all(hid_t obj, bool attribute) {
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

inline herr_t visit_attribute(hid_t loc, const char* name, const H5A_info_t*, void*) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a >= 0) {
    read_all(a, true);
    H5Aclose(a);
  }
  return 0;
}

inline herr_t visit_object(hid_t file, const char* name, const H5O_info_t* info, void*) {
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

inline std::atomic<long> library_crashes{0}, library_hangs{0}, inputs{0};

inline void report_at_exit() {
  std::fprintf(stderr, "fuzz: %ld of %ld inputs crashed the HDF5 library by itself and %ld spun past %lu s of CPU "
                       "in it; they were skipped (Note [HDF5's own defects])\n",
               library_crashes.load(), inputs.load(), library_hangs.load(), static_cast<unsigned long>(kCpuSeconds));
}

// False when reading the file with the HDF5 library alone ends its process abnormally or
// uses up its CPU time.
inline bool library_survives(const std::string& path) {
  ++inputs;
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    if (null_fd >= 0) ::dup2(null_fd, 2);
    // A sanitizer report here is the library's: end quietly, without libFuzzer saving the
    // input as a finding of this target.
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(+[] { ::_exit(3); });
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGXCPU}) ::signal(sig, SIG_DFL);
    const rlimit cpu{kCpuSeconds, kCpuSeconds + 1};
    ::setrlimit(RLIMIT_CPU, &cpu);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
      H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_object, nullptr, H5O_INFO_BASIC);
      H5Fclose(f);
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (library_crashes + library_hangs == 0) std::atexit(report_at_exit);
  const bool out_of_time = WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL);
  ++(out_of_time ? library_hangs : library_crashes);
  return false;
}

}  // namespace dtrain::fuzz::hdf5_screen
