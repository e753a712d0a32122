// PNG through libpng's simplified API (png_image), JPEG through libjpeg-turbo, PGM/PPM by
// hand. Files are read whole and decoded from memory, so the same code serves image
// files and images stored as encoded bytes in a dataset.
#include "core/io/image.h"

#include <png.h>
// jpeglib.h needs size_t and FILE declared first.
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
#include <sstream>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace dtrain::io {

namespace {

std::string lower_extension(const std::string& path) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

void check_image(const std::string& path, const Image& image) {
  DT_CHECK_AS(image.channels == 1 || image.channels == 3, IoError, "writing ", path, ": images have 1 or 3 channels, got ",
              image.channels);
  DT_CHECK_AS(image.height > 0 && image.width > 0, IoError, "writing ", path, ": empty image (", image.height, "x",
              image.width, ")");
  DT_CHECK_AS(image.pixels.size() == static_cast<size_t>(image.height * image.width * image.channels), IoError,
              "writing ", path, ": the image holds ", image.pixels.size(), " bytes, expected height * width * ",
              "channels = ", image.height * image.width * image.channels);
}

// ---- PNG --------------------------------------------------------------------------------

Image decode_png(const uint8_t* data, size_t size, const std::string& name) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, data, size)) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot read PNG ", name, ": ", why);
  }
  Image image;
  image.channels = (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  image.height = png.height;
  image.width = png.width;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot read PNG ", name, ": ", why, " (is the file damaged or truncated?)");
  }
  return image;
}

std::vector<uint8_t> encode_png_bytes(const Image& image) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr)) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot encode PNG: ", why);
  }
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot encode PNG: ", why);
  }
  out.resize(size);
  return out;
}

// Encoded in memory, then written to a temp file and renamed (Note [Atomic replace] in
// core/io/atomic_file.h): a failed write leaves an earlier file at `path` as it was.
void write_png(const std::string& path, const Image& image) {
  const std::vector<uint8_t> bytes = encode_png_bytes(image);
  std::string what = "cannot write PNG ";
  what += path;
  write_file_atomic(path, bytes.data(), bytes.size(), what);
}

// ---- JPEG -------------------------------------------------------------------------------

// libjpeg reports errors through error_exit, which must not return: it jumps back to the
// decode or encode call with the message. Warnings (corrupt data, a premature end of the
// file) are errors too, so a damaged file is refused instead of being filled with gray.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_error_exit(cinfo);  // a warning: corrupt or truncated data
}

void init_jpeg_error(JpegError& err) {
  jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  err.message[0] = 0;
}

// Fills `image` (already declared by the caller, so that no C++ object is created between
// setjmp and a longjmp). Returns "" or the library's message.
std::string decode_jpeg_into(const uint8_t* data, size_t size, const DecodeOptions& options, bool header_only,
                             Image& image) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  init_jpeg_error(err);
  cinfo.err = &err.mgr;
  JSAMPROW row = nullptr;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.message[0] ? err.message : "unknown libjpeg error";
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  if (options.min_short_side > 0) {
    cinfo.scale_num = 1;
    int64_t short_side = std::min<int64_t>(cinfo.image_width, cinfo.image_height);
    for (unsigned denom : {8u, 4u, 2u}) {
      if ((short_side + denom - 1) / denom >= options.min_short_side) {
        cinfo.scale_denom = denom;
        break;
      }
    }
  }
  jpeg_calc_output_dimensions(&cinfo);
  image.height = cinfo.output_height;
  image.width = cinfo.output_width;
  image.channels = gray ? 1 : 3;
  if (header_only) {
    jpeg_destroy_decompress(&cinfo);
    return "";
  }
  if (image.height * image.width > (int64_t{1} << 28)) {
    std::snprintf(err.message, sizeof(err.message), "image too large (%lldx%lld)",
                  static_cast<long long>(image.width), static_cast<long long>(image.height));
    jpeg_destroy_decompress(&cinfo);
    return err.message;
  }
  image.pixels.resize(static_cast<size_t>(image.height * image.width * image.channels));
  bool adobe_inverted = cinfo.saw_Adobe_marker;
  jpeg_start_decompress(&cinfo);
  // CMYK rows are decoded into a scratch row inside the pixel buffer's tail, one at a
  // time, then converted; the buffer is sized for RGB, which is 3/4 of CMYK per row.
  std::vector<uint8_t>& px = image.pixels;
  size_t row_bytes = static_cast<size_t>(image.width) * cinfo.output_components;
  if (cmyk) px.resize(px.size() + row_bytes);
  while (cinfo.output_scanline < cinfo.output_height) {
    size_t y = cinfo.output_scanline;
    uint8_t* dst = cmyk ? px.data() + px.size() - row_bytes : px.data() + y * row_bytes;
    row = dst;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (cmyk) {
      uint8_t* rgb = px.data() + y * static_cast<size_t>(image.width) * 3;
      for (int64_t x = 0; x < image.width; ++x) {
        int c = dst[4 * x], m = dst[4 * x + 1], ye = dst[4 * x + 2], k = dst[4 * x + 3];
        if (!adobe_inverted) c = 255 - c, m = 255 - m, ye = 255 - ye, k = 255 - k;
        // Inverted (Adobe) CMYK: each value is 255 - ink, so the light left is value * K.
        rgb[3 * x] = static_cast<uint8_t>((c * k + 127) / 255);
        rgb[3 * x + 1] = static_cast<uint8_t>((m * k + 127) / 255);
        rgb[3 * x + 2] = static_cast<uint8_t>((ye * k + 127) / 255);
      }
    }
  }
  if (cmyk) px.resize(px.size() - row_bytes);
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

std::string encode_jpeg_into(const Image& image, int quality, std::vector<uint8_t>& out) {
  jpeg_compress_struct cinfo;
  JpegError err;
  init_jpeg_error(err);
  cinfo.err = &err.mgr;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  JSAMPROW row = nullptr;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    return err.message[0] ? err.message : "unknown libjpeg error";
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = static_cast<int>(image.channels);
  cinfo.in_color_space = image.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    row = const_cast<uint8_t*>(image.pixels.data()) + cinfo.next_scanline * row_bytes;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  out.assign(buffer, buffer + size);
  std::free(buffer);
  return "";
}

// ---- PGM / PPM (binary, maxval <= 255) ------------------------------------------------------

// Reads the next header integer, skipping whitespace and # comments.
int64_t netpbm_int(std::istream& in, const std::string& path, const char* field) {
  int c;
  while ((c = in.peek()) != EOF) {
    if (std::isspace(c)) {
      in.get();
    } else if (c == '#') {
      std::string comment;
      std::getline(in, comment);
    } else {
      break;
    }
  }
  int64_t v = -1;
  if (!(in >> v) || v < 0) DT_THROW(IoError, "cannot read ", path, ": bad or missing ", field, " in the header");
  return v;
}

Image read_netpbm(const std::string& path, std::istream& in, int64_t channels, bool header_only = false) {
  in.seekg(2);
  Image image;
  image.channels = channels;
  image.width = netpbm_int(in, path, "width");
  image.height = netpbm_int(in, path, "height");
  int64_t maxval = netpbm_int(in, path, "maxval");
  DT_CHECK_AS(image.width > 0 && image.height > 0, IoError, "cannot read ", path, ": empty image (", image.width,
              "x", image.height, ")");
  DT_CHECK_AS(maxval > 0 && maxval <= 255, IoError, "cannot read ", path, ": maxval ", maxval,
              " is not supported (8-bit images only, maxval 1..255)");
  // Divided, not multiplied: the header's numbers can be anything (found by fuzz_image).
  DT_CHECK_AS(image.width <= (int64_t{1} << 31) / image.height, IoError, "cannot read ", path,
              ": image too large (", image.width, "x", image.height, ")");
  in.get();  // the single whitespace byte after maxval
  if (header_only) return image;
  image.pixels.resize(static_cast<size_t>(image.width * image.height * channels));
  in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  DT_CHECK_AS(in.gcount() == static_cast<std::streamsize>(image.pixels.size()), IoError, "cannot read ", path,
              ": truncated pixel data (", in.gcount(), " of ", image.pixels.size(), " bytes)");
  if (maxval != 255) {
    for (uint8_t& p : image.pixels) {
      p = static_cast<uint8_t>(std::lround(std::min<int64_t>(p, maxval) * 255.0 / static_cast<double>(maxval)));
    }
  }
  return image;
}

void write_netpbm(const std::string& path, const Image& image) {
  std::ostringstream header;
  header << (image.channels == 3 ? "P6" : "P5") << "\n" << image.width << " " << image.height << "\n255\n";
  std::string bytes = header.str();
  bytes.append(reinterpret_cast<const char*>(image.pixels.data()), image.pixels.size());
  std::string what = "cannot write ";
  what += path;
  write_file_atomic(path, bytes.data(), bytes.size(), what);
}

}  // namespace

ImageFormat sniff_image(const uint8_t* data, size_t size) {
  if (size >= 8 && png_sig_cmp(const_cast<uint8_t*>(data), 0, 8) == 0) return ImageFormat::Png;
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return ImageFormat::Jpeg;
  if (size >= 2 && data[0] == 'P' && data[1] == '5') return ImageFormat::Pgm;
  if (size >= 2 && data[0] == 'P' && data[1] == '6') return ImageFormat::Ppm;
  return ImageFormat::Unknown;
}

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Pgm: return "PGM";
    case ImageFormat::Ppm: return "PPM";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

namespace {

[[noreturn]] void unknown_format(const std::string& name) {
  DT_THROW(IoError, "cannot read image ", name,
           ": not a PNG, JPEG, binary PGM (P5) or binary PPM (P6) file (other formats: convert first, e.g. to PNG)");
}

Image decode_netpbm(const uint8_t* data, size_t size, const std::string& name, int64_t channels, bool header_only) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  return read_netpbm(name, in, channels, header_only);
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& options) {
  switch (sniff_image(data, size)) {
    case ImageFormat::Png: return decode_png(data, size, name);
    case ImageFormat::Jpeg: {
      Image image;
      std::string why = decode_jpeg_into(data, size, options, false, image);
      if (!why.empty()) DT_THROW(IoError, "cannot read JPEG ", name, ": ", why, " (is the file damaged or truncated?)");
      return image;
    }
    case ImageFormat::Pgm: return decode_netpbm(data, size, name, 1, false);
    case ImageFormat::Ppm: return decode_netpbm(data, size, name, 3, false);
    case ImageFormat::Unknown: break;
  }
  unknown_format(name);
}

ImageShape peek_image(const uint8_t* data, size_t size, const std::string& name) {
  Image image;
  switch (sniff_image(data, size)) {
    case ImageFormat::Png: {
      png_image png;
      std::memset(&png, 0, sizeof(png));
      png.version = PNG_IMAGE_VERSION;
      if (!png_image_begin_read_from_memory(&png, data, size)) {
        std::string why = png.message;
        png_image_free(&png);
        DT_THROW(IoError, "cannot read PNG ", name, ": ", why);
      }
      ImageShape shape{png.height, png.width, (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1};
      png_image_free(&png);
      return shape;
    }
    case ImageFormat::Jpeg: {
      std::string why = decode_jpeg_into(data, size, {}, true, image);
      if (!why.empty()) DT_THROW(IoError, "cannot read JPEG ", name, ": ", why, " (is the file damaged or truncated?)");
      break;
    }
    case ImageFormat::Pgm: image = decode_netpbm(data, size, name, 1, true); break;
    case ImageFormat::Ppm: image = decode_netpbm(data, size, name, 3, true); break;
    case ImageFormat::Unknown: unknown_format(name);
  }
  return {image.height, image.width, image.channels};
}

Image read_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DT_CHECK_AS(in.is_open(), IoError, "cannot open image ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DT_CHECK_AS(!in.bad(), IoError, "cannot read image ", path, ": ", std::strerror(errno));
  return decode_image(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> encode_png(const Image& image) {
  check_image("a PNG", image);
  return encode_png_bytes(image);
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  check_image("a JPEG", image);
  DT_CHECK_AS(quality >= 1 && quality <= 100, IoError, "JPEG quality must be 1..100, got ", quality);
  std::vector<uint8_t> out;
  std::string why = encode_jpeg_into(image, quality, out);
  if (!why.empty()) DT_THROW(IoError, "cannot encode JPEG: ", why);
  return out;
}

void write_image(const std::string& path, const Image& image) {
  check_image(path, image);
  std::string ext = lower_extension(path);
  if (ext == ".png") return write_png(path, image);
  if (ext == ".jpg" || ext == ".jpeg") {
    const std::vector<uint8_t> bytes = encode_jpeg(image);
    std::string what = "cannot write JPEG ";
    what += path;
    write_file_atomic(path, bytes.data(), bytes.size(), what);
    return;
  }
  if (ext == ".pgm") {
    DT_CHECK_AS(image.channels == 1, IoError, "cannot write ", path,
                ": PGM holds grayscale images, this one is RGB (write .ppm or .png)");
    return write_netpbm(path, image);
  }
  if (ext == ".ppm") {
    DT_CHECK_AS(image.channels == 3, IoError, "cannot write ", path,
                ": PPM holds RGB images, this one is grayscale (write .pgm or .png)");
    return write_netpbm(path, image);
  }
  DT_THROW(IoError, "cannot write ", path, ": unknown image extension '", ext,
           "'; use .png, .jpg, .pgm (grayscale) or .ppm (RGB)");
}

Image to_grayscale(const Image& image) {
  if (image.channels == 1) return image;
  DT_CHECK(image.channels == 3, "to_grayscale: expected 1 or 3 channels, got ", image.channels);
  Image gray;
  gray.height = image.height;
  gray.width = image.width;
  gray.channels = 1;
  gray.pixels.resize(static_cast<size_t>(image.height * image.width));
  for (size_t i = 0; i < gray.pixels.size(); ++i) {
    const uint8_t* p = &image.pixels[3 * i];
    gray.pixels[i] = static_cast<uint8_t>(std::lround(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
  }
  return gray;
}

Tensor image_to_tensor(const Image& image) {
  int64_t h = image.height, w = image.width, c = image.channels;
  std::vector<float> v(static_cast<size_t>(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) v[static_cast<size_t>((ch * h + y) * w + x)] = image.at(y, x, ch);
    }
  }
  return Tensor::from_vector(v, {1, c, h, w});
}

Image tensor_to_image(const Tensor& t) {
  DT_CHECK(t.ndim() == 3 || (t.ndim() == 4 && t.size(0) == 1), "tensor_to_image: expected (C, H, W) or ",
           "(1, C, H, W), got ", t.str());
  int64_t c = t.size(-3), h = t.size(-2), w = t.size(-1);
  DT_CHECK(c == 1 || c == 3, "tensor_to_image: expected 1 or 3 channels, got ", t.str());
  std::vector<double> v = t.to(Device::cpu()).to(DType::F64).to_vector<double>();
  Image image;
  image.height = h;
  image.width = w;
  image.channels = c;
  image.pixels.resize(v.size());
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < h * w; ++i) {
      double raw = v[static_cast<size_t>(ch * h * w + i)];
      double p = std::isnan(raw) ? 0.0 : std::clamp(std::round(raw), 0.0, 255.0);
      image.pixels[static_cast<size_t>(i * c + ch)] = static_cast<uint8_t>(p);
    }
  }
  return image;
}

// ---- Resampling -----------------------------------------------------------------------------

namespace {

// For each output index along one axis: the first source index and the normalized
// triangle-filter weights, with the filter stretched by the reduction factor.
struct AxisWeights {
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<float> weights;  // out_size * taps
  int64_t taps = 0;
};

AxisWeights axis_weights(int64_t in, int64_t out) {
  AxisWeights a;
  double scale = static_cast<double>(in) / static_cast<double>(out);
  double filter_scale = std::max(scale, 1.0);
  double support = filter_scale;  // the triangle's half-width is 1 source pixel, stretched
  a.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.first.resize(static_cast<size_t>(out));
  a.count.resize(static_cast<size_t>(out));
  a.weights.assign(static_cast<size_t>(out * a.taps), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    double center = (static_cast<double>(i) + 0.5) * scale;
    int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    int64_t n = std::min(hi - lo, a.taps);
    double total = 0;
    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      double x = (static_cast<double>(lo + j) - center + 0.5) / filter_scale;
      w[static_cast<size_t>(j)] = std::max(0.0, 1.0 - std::abs(x));
      total += w[static_cast<size_t>(j)];
    }
    a.first[static_cast<size_t>(i)] = lo;
    a.count[static_cast<size_t>(i)] = n;
    for (int64_t j = 0; j < n; ++j) {
      a.weights[static_cast<size_t>(i * a.taps + j)] = static_cast<float>(total > 0 ? w[static_cast<size_t>(j)] / total : 0);
    }
  }
  return a;
}

// Rounded half away from zero (as std::lround) and clamped to [0, 255], without the libm
// call, which took a third of a 224x224 resize.
uint8_t to_u8(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  const int i = static_cast<int>(v);
  return static_cast<uint8_t>(i + (v - static_cast<float>(i) >= 0.5f ? 1 : 0));
}

// One output pixel of the horizontal pass: n taps of C channels (C fixed for the
// compiler; the sums run in the same order as the generic loop).
template <int C>
void horizontal_taps(const uint8_t* s0, const float* w, int64_t n, float* dst) {
  float acc[C] = {};
  for (int64_t j = 0; j < n; ++j) {
    for (int ch = 0; ch < C; ++ch) acc[ch] += w[j] * s0[j * C + ch];
  }
  for (int ch = 0; ch < C; ++ch) dst[ch] = acc[ch];
}

}  // namespace

Image resize(const Image& image, int64_t height, int64_t width) {
  DT_CHECK_AS(height > 0 && width > 0, IoError, "resize: target size must be positive, got ", height, "x", width);
  DT_CHECK_AS(image.height > 0 && image.width > 0, IoError, "resize: empty image");
  const int64_t c = image.channels;
  if (height == image.height && width == image.width) return image;
  AxisWeights wx = axis_weights(image.width, width), wy = axis_weights(image.height, height);
  // Horizontal pass into floats (source rows x output columns), then vertical.
  std::vector<float> mid(static_cast<size_t>(image.height * width * c));
  for (int64_t y = 0; y < image.height; ++y) {
    const uint8_t* src = image.pixels.data() + y * image.width * c;
    float* dst = mid.data() + y * width * c;
    for (int64_t x = 0; x < width; ++x) {
      const float* w = wx.weights.data() + x * wx.taps;
      const uint8_t* s0 = src + wx.first[static_cast<size_t>(x)] * c;
      const int64_t n = wx.count[static_cast<size_t>(x)];
      if (c == 3) {
        horizontal_taps<3>(s0, w, n, dst + x * 3);
        continue;
      }
      if (c == 1) {
        horizontal_taps<1>(s0, w, n, dst + x);
        continue;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        float acc = 0;
        for (int64_t j = 0; j < wx.count[static_cast<size_t>(x)]; ++j) acc += w[j] * s0[j * c + ch];
        dst[x * c + ch] = acc;
      }
    }
  }
  Image out;
  out.height = height;
  out.width = width;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(height * width * c));
  const int64_t row = width * c;
  std::vector<float> acc(static_cast<size_t>(row));
  for (int64_t y = 0; y < height; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const float* w = wy.weights.data() + y * wy.taps;
    for (int64_t j = 0; j < wy.count[static_cast<size_t>(y)]; ++j) {
      const float* src = mid.data() + (wy.first[static_cast<size_t>(y)] + j) * row;
      for (int64_t i = 0; i < row; ++i) acc[static_cast<size_t>(i)] += w[j] * src[i];
    }
    uint8_t* dst = out.pixels.data() + y * row;
    for (int64_t i = 0; i < row; ++i) dst[i] = to_u8(acc[static_cast<size_t>(i)]);
  }
  return out;
}

Image resize_shorter_side(const Image& image, int64_t short_side) {
  DT_CHECK_AS(short_side > 0, IoError, "resize: the shorter side must be positive, got ", short_side);
  if (image.width <= image.height) {
    return resize(image, std::max<int64_t>(1, short_side * image.height / image.width), short_side);
  }
  return resize(image, short_side, std::max<int64_t>(1, short_side * image.width / image.height));
}

Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  DT_CHECK_AS(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height &&
                  left + width <= image.width,
              IoError, "crop: window ", height, "x", width, " at (", top, ", ", left, ") is outside the ",
              image.height, "x", image.width, " image");
  Image out;
  out.height = height;
  out.width = width;
  out.channels = image.channels;
  out.pixels.resize(static_cast<size_t>(height * width * image.channels));
  const size_t row = static_cast<size_t>(width * image.channels);
  for (int64_t y = 0; y < height; ++y) {
    std::memcpy(out.pixels.data() + static_cast<size_t>(y) * row,
                image.pixels.data() + ((top + y) * image.width + left) * image.channels, row);
  }
  return out;
}

Image center_crop(const Image& image, int64_t height, int64_t width) {
  DT_CHECK_AS(height <= image.height && width <= image.width, IoError, "center crop: ", height, "x", width,
              " is larger than the ", image.height, "x", image.width, " image (resize first)");
  // Rounded half to even, as Python's round() in torchvision's CenterCrop.
  auto top = static_cast<int64_t>(std::nearbyint((image.height - height) / 2.0));
  auto left = static_cast<int64_t>(std::nearbyint((image.width - width) / 2.0));
  return crop(image, top, left, height, width);
}

}  // namespace dtrain::io
