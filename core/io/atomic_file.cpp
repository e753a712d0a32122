// Atomic replacement of output files: see atomic_file.h, Note [Atomic replace].
#include "core/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace dtrain::io {

namespace {

namespace fs = std::filesystem;

// The directory holding `path` ("." for a bare file name).
std::string directory_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// `call` of `path` failed with errno `err`: IoError "<what>: <call> of '<path>' failed: <strerror>".
[[noreturn]] void fail(const std::string& what, const char* call, const std::string& path, int err) {
  DT_THROW(IoError, what, ": ", call, " of '", path, "' failed: ", std::strerror(err));
}

void fsync_file(const std::string& path, const std::string& what, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(what, "open (to fsync)", path, errno);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(what, "fsync", path, err);
  }
  if (::close(fd) != 0) fail(what, "close", path, errno);
}

// Renames `tmp` over `path` and fsyncs the directory; removes `tmp` when the rename fails.
void rename_into_place(const std::string& tmp, const std::string& path, const std::string& what) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());  // best effort; `path` is untouched
    DT_THROW(IoError, what, ": cannot rename '", tmp, "' to '", path, "': ", std::strerror(err),
             "; the previous '", path, "', if any, is unchanged");
  }
  // The new file is in place; a failed directory fsync means its name may not survive
  // a power loss, which is still an error worth reporting.
  fsync_file(directory_of(path), what, true);
}

}  // namespace

std::string temp_path_for(const std::string& path) {
  std::string tmp = path;
  tmp += ".tmp";
  return tmp;
}

void commit_file(const std::string& tmp, const std::string& path, const std::string& what) {
  try {
    fsync_file(tmp, what, false);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  rename_into_place(tmp, path, what);
}

void write_file_atomic(const std::string& path, const void* data, size_t n, const std::string& what) {
  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(what, "open", tmp, errno);
  try {
    const char* p = static_cast<const char*>(data);
    size_t done = 0;
    while (done < n) {
      const ssize_t k = ::write(fd, p + done, n - done);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) fail(what, "write", tmp, errno);
      done += static_cast<size_t>(k);
    }
    if (::fsync(fd) != 0) fail(what, "fsync", tmp, errno);
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(what, "close", tmp, err);
  }
  rename_into_place(tmp, path, what);
}

}  // namespace dtrain::io
