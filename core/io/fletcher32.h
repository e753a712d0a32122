#pragma once
// HDF5's Fletcher-32 checksum, as its "fletcher32" filter (H5Pset_fletcher32) computes it
// over each chunk and stores it, little-endian, in the 4 bytes after the chunk's data.
// RowReader (datasets/row_reader.h) checks chunks with it when it reads them around the
// library (Note [Checksummed chunks]).
#include <cstddef>
#include <cstdint>

namespace dtrain::io {

// The checksum of `bytes` bytes: Fletcher's sums modulo 65535 over the data taken as
// 16-bit big-endian words (an odd last byte is the high byte of a last word).
uint32_t fletcher32(const void* data, size_t bytes);

// True when the 4 stored bytes (as they follow the chunk in the file) hold `sum`. Like
// HDF5's filter, it also accepts the byte order that HDF5 releases before 1.6.3 produced
// on little-endian machines (bytes 1, 0, 3, 2 of the sum).
bool fletcher32_matches(uint32_t sum, const unsigned char stored[4]);

}  // namespace dtrain::io
