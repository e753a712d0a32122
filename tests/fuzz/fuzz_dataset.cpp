// Fuzz target: opening a dataset file (HDF5) and validating its schema, as `dtrain data
// inspect` and the loader do (datasets/schema.h, datasets/inspect.h), then reading rows
// of every dataset it names through the loader's row reader (both the direct pread path
// and the library path) when validation accepted it; inspect's --verify decodes every
// image of an encoded-images file. The input is the file's bytes.
//
// Note [HDF5's own crashes]: the HDF5 library (1.10 in Debian 12) crashes on some damaged
// files by itself, for example in variable-length string data, whoever reads them. Such a
// crash is the library's, and dtrain cannot catch a segfault inside it. So each input is
// first read whole by the library alone in a child process (every object, dataset,
// attribute and chunk index, with no dtrain code): inputs that kill that child are
// skipped (counted in the summary at exit), and every crash that remains is one that
// dtrain's code takes part in.
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

// The sanitizers' runtime, when linked (weak: absent from a plain build).
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#include "core/io/h5.h"
#include "datasets/inspect.h"
#include "datasets/row_reader.h"
#include "datasets/schema.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

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

std::atomic<long> library_crashes{0}, inputs{0};

void report_at_exit() {
  if (library_crashes > 0) {
    std::fprintf(stderr, "fuzz_dataset: %ld of %ld inputs crashed the HDF5 library by itself and were skipped "
                         "(Note [HDF5's own crashes])\n", library_crashes.load(), inputs.load());
  }
}

// False when reading the file with the HDF5 library alone ends its process abnormally.
bool library_survives(const std::string& path) {
  ++inputs;
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    if (null_fd >= 0) ::dup2(null_fd, 2);
    // A sanitizer report here is the library's: end quietly, without libFuzzer saving the
    // input as a finding of this target.
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(+[] { ::_exit(3); });
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
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
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) {
    if (library_crashes++ == 0) std::atexit(report_at_exit);
  }
  return ok;
}

void read_rows(const dtrain::io::H5File& f, const char* name, bool direct) {
  dtrain::data::RowReader r = dtrain::data::RowReader::open(f, name, direct ? 0 : -1, direct);
  if (r.rows() == 0 || r.row_bytes() > (1u << 20)) return;
  const int64_t count = std::min<int64_t>(r.rows(), 3);
  std::vector<unsigned char> buf(r.row_bytes() * static_cast<size_t>(count));
  r.read(0, count, buf.data());
  r.read(r.rows() - count, count, buf.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  static const std::string path = dtrain::fuzz::scratch_path("dataset", ".h5");
  dtrain::fuzz::write_file(path, data, size);
  if (!library_survives(path)) {
    if (dtrain::fuzz::seeds_must_pass()) dtrain::fuzz::seed_refused("the HDF5 library cannot read it");
    return 0;
  }
  dtrain::data::inspect(path);  // never throws, by its contract
  dtrain::data::inspect(path, {true, nullptr});  // --verify: every image read (encoded ones decoded)
  dtrain::fuzz::refuse_cleanly([&] {
    auto f = dtrain::io::H5File::open_read(path);
    using dtrain::data::Kind;
    std::vector<const char*> names;
    switch (dtrain::data::detect_kind(f)) {
      case Kind::ImageClassification: {
        dtrain::data::ImageSchema s = dtrain::data::validate_images(f, true);
        dtrain::data::class_counts(f, s);
        names = s.encoded ? std::vector<const char*>{"encoded", "offsets", "shapes", "labels"}
                          : std::vector<const char*>{"images", "labels"};
        break;
      }
      case Kind::ImageOnly:
        names = dtrain::data::validate_images(f, false).encoded ? std::vector<const char*>{"encoded", "offsets"}
                                                                 : std::vector<const char*>{"images"};
        break;
      case Kind::SequencePairs:
        dtrain::data::validate_pairs(f);
        names = {"src", "tgt", "src_len", "tgt_len"};
        break;
      case Kind::SequenceClassification:
        dtrain::data::class_counts(f, dtrain::data::validate_sequences(f));
        names = {"tokens", "lengths", "labels"};
        break;
      case Kind::ImageCaptions:
        dtrain::data::validate_captions(f);
        names = {"images", "captions", "caption_len"};
        break;
    }
    for (const char* name : names) {
      read_rows(f, name, true);
      read_rows(f, name, false);
    }
  });
  return 0;
}
