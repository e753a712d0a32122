#pragma once
// Whole-file reads for the converters: plain or gzip-compressed (zlib reads both, so a
// .gz suffix is not required). Throws IoError naming the file.
#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::data {

std::vector<uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace dtrain::data
