// Fuzz target: the image decoders (core/io/image.h) on arbitrary bytes, as they arrive
// from image files and from datasets that store encoded images. The first byte picks the
// reduced-scale JPEG decoding that the loader may ask for.
#include "core/io/image.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  if (size < 1) return 0;
  const int64_t min_side = data[0] % 4 == 0 ? 0 : data[0];
  ++data;
  --size;
  dtrain::fuzz::refuse_cleanly([&] {
    dtrain::io::ImageShape shape = dtrain::io::peek_image(data, size, "fuzz input");
    if (shape.height * shape.width > (int64_t{1} << 22)) return;  // skip huge (valid) images: slow, not wrong
    dtrain::io::Image im = dtrain::io::decode_image(data, size, "fuzz input", {min_side});
    // The decoded image is consistent with its shape.
    if (im.pixels.size() != static_cast<size_t>(im.height * im.width * im.channels)) std::abort();
    if (im.channels != 1 && im.channels != 3) std::abort();
  });
  return 0;
}
