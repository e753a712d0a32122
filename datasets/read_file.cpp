// read_maybe_gzip: see read_file.h.
#include "datasets/read_file.h"

#include <zlib.h>

#include <filesystem>

#include "core/error.h"

namespace dtrain::data {

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    DT_THROW(IoError, "cannot read '", path, "': no such file (check the path)");
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) DT_THROW(IoError, "cannot open '", path, "' for reading (check its permissions)");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    int got = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (got < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      DT_THROW(IoError, "cannot read '", path, "': ", msg, " (a truncated or damaged gzip file?)");
    }
    if (got == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + got);
  }
  gzclose(f);
  return out;
}

}  // namespace dtrain::data
