// PNG through libpng's simplified API (png_image), PGM/PPM by hand.
#include "core/io/image.h"

#include <png.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/error.h"

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

Image read_png(const std::string& path) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str())) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot read PNG ", path, ": ", why);
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
    DT_THROW(IoError, "cannot read PNG ", path, ": ", why, " (is the file damaged or truncated?)");
  }
  return image;
}

void write_png(const std::string& path, const Image& image) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&png, path.c_str(), 0, image.pixels.data(), 0, nullptr)) {
    std::string why = png.message;
    png_image_free(&png);
    DT_THROW(IoError, "cannot write PNG ", path, ": ", why);
  }
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

Image read_netpbm(const std::string& path, std::ifstream& in, int64_t channels) {
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
  DT_CHECK_AS(image.width * image.height <= (int64_t{1} << 31), IoError, "cannot read ", path,
              ": image too large (", image.width, "x", image.height, ")");
  in.get();  // the single whitespace byte after maxval
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
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  DT_CHECK_AS(out.is_open(), IoError, "cannot write ", path, ": ", std::strerror(errno));
  out << (image.channels == 3 ? "P6" : "P5") << "\n" << image.width << " " << image.height << "\n255\n";
  out.write(reinterpret_cast<const char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  out.close();
  DT_CHECK_AS(!out.fail(), IoError, "cannot write ", path, ": write failed (disk full?)");
}

}  // namespace

Image read_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DT_CHECK_AS(in.is_open(), IoError, "cannot open image ", path, ": ", std::strerror(errno));
  unsigned char magic[8] = {};
  in.read(reinterpret_cast<char*>(magic), sizeof(magic));
  std::streamsize got = in.gcount();
  in.clear();
  if (got == 8 && png_sig_cmp(magic, 0, 8) == 0) return read_png(path);
  if (got >= 2 && magic[0] == 'P' && magic[1] == '5') return read_netpbm(path, in, 1);
  if (got >= 2 && magic[0] == 'P' && magic[1] == '6') return read_netpbm(path, in, 3);
  DT_THROW(IoError, "cannot read image ", path,
           ": not a PNG, binary PGM (P5) or binary PPM (P6) file (other formats: convert first, e.g. to PNG)");
}

void write_image(const std::string& path, const Image& image) {
  check_image(path, image);
  std::string ext = lower_extension(path);
  if (ext == ".png") return write_png(path, image);
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
           "'; use .png, .pgm (grayscale) or .ppm (RGB)");
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

}  // namespace dtrain::io
