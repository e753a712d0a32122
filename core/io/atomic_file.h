#pragma once
// Replacing a file so that readers see the old version or the complete new one, never a
// truncated mix: for every output the program writes over an earlier one (images, sample
// exports, encoded codes). Checkpoints have their own, stricter protocol (a marker with a
// checksum, Note [Checkpoint commit] in core/checkpoint.h).
//
// Note [Atomic replace]: the new contents go to "<path>.tmp" in the same directory; the
// temp file is fsync'ed, renamed over <path> (rename(2) is atomic within a filesystem)
// and the directory is fsync'ed so that the new name is durable. Any failure (a full
// disk, an I/O error at write, fsync, close or rename) throws IoError naming the file,
// the failed call and strerror, removes the temp file and leaves <path> as it was. A
// temp file left by a crash is overwritten by the next write of the same path.
#include <cstddef>
#include <string>

namespace dtrain::io {

// "<path>.tmp": where an atomic write of `path` puts its data first.
std::string temp_path_for(const std::string& path);

// Writes `n` bytes to `path` per Note [Atomic replace] (the directory must exist).
// `what` starts the error message ("cannot write PNG out.png", "gan.export").
void write_file_atomic(const std::string& path, const void* data, size_t n, const std::string& what);

// For writers that write the temp file themselves (HDF5): fsyncs `tmp`, renames it to
// `path` and fsyncs the directory. On failure removes `tmp`, throws IoError; `path` is
// untouched.
void commit_file(const std::string& tmp, const std::string& path, const std::string& what);

}  // namespace dtrain::io
