// Folder of images to HDF5: see convert_folder.h.
#include "datasets/convert_folder.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/io/h5.h"
#include "core/io/image.h"
#include "core/rng.h"
#include "datasets/appendable.h"

namespace dtrain::data {

namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".pgm" || ext == ".ppm";
}

// In-place seeded Fisher-Yates shuffle.
template <typename T>
void shuffle(std::vector<T>& v, Generator& g) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(g.next_below(i));
    std::swap(v[i - 1], v[j]);
  }
}

struct Item {
  std::string rel;  // path relative to the root
  int64_t label = 0;
  int part = 0;     // 0: --out, 1: the held-out file
};

// What a worker makes of one file.
struct Result {
  int64_t seq = -1;
  std::string error;            // non-empty: a bad file
  bool fatal = false;           // an error that skipping cannot fix (a size mismatch)
  std::vector<uint8_t> data;    // encoded bytes, or (H, W, C) pixels for the raw store
  int32_t height = 0, width = 0, channels = 0;  // what `data` decodes to / holds
  std::vector<uint64_t> sum, sumsq;  // per output channel, over the pixels as loaded
};

io::Image to_channels(io::Image img, int64_t channels) {
  if (img.channels == channels) return img;
  if (channels == 1) return io::to_grayscale(img);
  io::Image rgb;
  rgb.height = img.height;
  rgb.width = img.width;
  rgb.channels = 3;
  rgb.pixels.resize(static_cast<size_t>(img.height * img.width * 3));
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    for (size_t c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = img.pixels[i];
  }
  return rgb;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) DT_THROW(IoError, "cannot open '", path, "' for reading (check its permissions)");
  std::streamsize size = in.tellg();
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(std::max<std::streamsize>(size, 0)));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    DT_THROW(IoError, "cannot read '", path, "'");
  }
  return bytes;
}

void process(const std::string& root, const Item& item, const FolderOptions& o, Result& r) {
  const std::string path = (fs::path(root) / item.rel).string();
  try {
    std::vector<uint8_t> bytes = read_bytes(path);
    if (bytes.empty()) DT_THROW(IoError, "'", path, "': empty file");
    if (io::sniff_image(bytes.data(), bytes.size()) == io::ImageFormat::Unknown) {
      DT_THROW(IoError, "'", path, "': not a JPEG, PNG, PGM or PPM image (unrecognized first bytes)");
    }
    io::Image decoded = io::decode_image(bytes.data(), bytes.size(), path);
    const bool transform = o.resize > 0 || o.crop > 0;
    const int64_t decoded_channels = decoded.channels;
    io::Image img = to_channels(std::move(decoded), o.channels);
    // Kept bytes decode to their own channels (the loader converts them); written ones to ours.
    const int64_t stored_channels = o.store == "encoded" && !transform ? decoded_channels : img.channels;
    if (o.resize > 0) img = io::resize_shorter_side(img, o.resize);
    if (o.crop > 0) {
      if (img.height < o.crop || img.width < o.crop) {
        DT_THROW(IoError, "'", path, "': ", img.height, "x", img.width, o.resize > 0 ? " after --resize" : "",
                 " is smaller than --crop ", o.crop, "; use --resize ", o.crop, " (or larger) with --crop");
      }
      img = io::center_crop(img, o.crop, o.crop);
    }
    const size_t c = static_cast<size_t>(img.channels);
    r.sum.assign(c, 0);
    r.sumsq.assign(c, 0);
    for (size_t i = 0; i < img.pixels.size(); ++i) {
      uint64_t v = img.pixels[i];
      r.sum[i % c] += v;
      r.sumsq[i % c] += v * v;
    }
    r.height = static_cast<int32_t>(img.height);
    r.width = static_cast<int32_t>(img.width);
    r.channels = static_cast<int32_t>(stored_channels);
    if (o.store == "raw") {
      r.data = std::move(img.pixels);
    } else if (transform) {
      r.data = o.encode == "png" ? io::encode_png(img) : io::encode_jpeg(img, o.quality);
    } else {
      r.data = std::move(bytes);
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
}

// One output file being written.
struct Output {
  std::string path;
  std::optional<io::H5File> file;
  std::unique_ptr<AppendableDataset> data;  // /encoded or /images
  std::vector<uint8_t> pending;             // encoded bytes not yet appended
  std::vector<int64_t> labels, offsets{0};
  std::vector<int32_t> shapes;
  std::vector<std::string> paths;
  std::vector<double> sum, sumsq;
  int64_t pixels = 0;  // per channel, summed over images
  int64_t h = 0, w = 0;  // raw: the one size
  std::string first_path;  // raw: the image that set the size
  int64_t bytes = 0;
};

// Bytes per chunk of /encoded: 1 MiB, or less for a small set (a chunk is allocated
// whole): about 1/64 of the set's file bytes, a power of two of at least 4 KiB.
int64_t encoded_chunk_bytes(int64_t file_bytes) {
  int64_t chunk = 4096;
  while (chunk < (int64_t{1} << 20) && chunk * 64 < file_bytes) chunk *= 2;
  return chunk;
}
constexpr size_t kFlushBytes = size_t{8} << 20;

void flush(Output& out) {
  if (out.pending.empty()) return;
  out.data->append(out.pending.data(), static_cast<int64_t>(out.pending.size()));
  out.pending.clear();
}

// Appends one good result; returns an error for a raw size mismatch.
std::string add(Output& out, const Item& item, Result& r, const FolderOptions& o, const std::string& root) {
  if (o.store == "raw") {
    if (!out.data) {
      out.h = r.height;
      out.w = r.width;
      out.first_path = (fs::path(root) / item.rel).string();
      out.data = std::make_unique<AppendableDataset>(*out.file, "/images", Shape{out.h, out.w, o.channels}, DType::U8,
                                                     o.chunk_rows, o.checksum);
    } else if (r.height != out.h || r.width != out.w) {
      std::ostringstream os;
      os << "'" << (fs::path(root) / item.rel).string() << "' is " << r.height << "x" << r.width << " but '"
         << out.first_path << "' is " << out.h << "x" << out.w
         << ": the raw schema stores one size; use --resize N --crop N, or --store encoded";
      return os.str();
    }
    out.data->append(r.data.data(), 1);
  } else {
    out.pending.insert(out.pending.end(), r.data.begin(), r.data.end());
    if (out.pending.size() >= kFlushBytes) flush(out);
  }
  out.bytes += static_cast<int64_t>(r.data.size());
  out.offsets.push_back(out.bytes);
  out.labels.push_back(item.label);
  out.shapes.insert(out.shapes.end(), {r.height, r.width, r.channels});
  out.paths.push_back(item.rel);
  for (size_t c = 0; c < r.sum.size(); ++c) {
    out.sum[c] += static_cast<double>(r.sum[c]);
    out.sumsq[c] += static_cast<double>(r.sumsq[c]);
  }
  out.pixels += static_cast<int64_t>(r.height) * r.width;
  return "";
}

void finish(Output& out, const std::vector<std::string>& classes, const FolderOptions& o) {
  const int64_t n = static_cast<int64_t>(out.labels.size());
  if (o.store == "encoded") flush(out);
  out.data->close();
  const int64_t chunk = std::min(o.chunk_rows, n);
  io::CreateOptions co{chunk, 0, false, o.checksum};
  out.file->create_dataset("/labels", {n}, DType::I64, co);
  out.file->write_rows("/labels", 0, Tensor::from_vector(out.labels, {n}));
  if (o.store == "encoded") {
    out.file->create_dataset("/offsets", {n + 1}, DType::I64, {std::min(o.chunk_rows, n + 1), 0, false, o.checksum});
    out.file->write_rows("/offsets", 0, Tensor::from_vector(out.offsets, {n + 1}));
    out.file->create_dataset("/shapes", {n, 3}, DType::I32, co);
    out.file->write_rows("/shapes", 0, Tensor::from_vector(out.shapes, {n, 3}));
    out.file->set_attribute("/", "channels", o.channels);
    out.file->set_attribute("/", "format", std::string("dtrain encoded image dataset v1"));
  } else {
    out.file->set_attribute("/", "format", std::string("dtrain image dataset v1"));
  }
  out.file->write_strings("/paths", out.paths);
  std::vector<double> mean, std;
  const double count = static_cast<double>(out.pixels);
  for (size_t c = 0; c < out.sum.size(); ++c) {
    double m = out.sum[c] / count;
    double var = std::max(0.0, out.sumsq[c] / count - m * m);
    mean.push_back(m / 255.0);
    std.push_back(std::max(std::sqrt(var), 1e-3) / 255.0);
  }
  out.file->set_attribute("/", "mean", mean);
  out.file->set_attribute("/", "std", std);
  out.file->set_attribute("/", "classes", classes);
  out.file->close();
}

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int64_t FolderListing::images() const {
  int64_t n = 0;
  for (const auto& f : files) n += static_cast<int64_t>(f.size());
  return n;
}

FolderListing list_image_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    DT_THROW(IoError, "image folder '", root, "': ", fs::exists(root, ec) ? "not a folder" : "no such folder",
             "; give the folder that holds one subfolder per class");
  }
  FolderListing l;
  std::vector<fs::path> class_dirs;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name[0] != '.') {
      class_dirs.push_back(e.path());
    } else if (!e.is_directory()) {
      l.ignored.push_back(name);
    }
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty()) {
    DT_THROW(IoError, "image folder '", root, "': no class subfolders; the layout is ROOT/<class>/<image>, one "
             "subfolder per class (as torchvision's ImageFolder reads)");
  }
  for (const fs::path& dir : class_dirs) {
    l.classes.push_back(dir.filename().string());
    std::vector<std::string> files;
    auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
    for (auto e = fs::begin(it); e != fs::end(it); ++e) {
      const std::string name = e->path().filename().string();
      if (name[0] == '.') {
        if (e->is_directory()) e.disable_recursion_pending();
        if (!e->is_directory()) l.ignored.push_back(fs::relative(e->path(), root).string());
        continue;
      }
      if (e->is_directory()) continue;
      std::string rel = fs::relative(e->path(), root).string();
      (has_image_extension(e->path()) ? files : l.ignored).push_back(rel);
    }
    std::sort(files.begin(), files.end());
    l.files.push_back(std::move(files));
  }
  std::sort(l.ignored.begin(), l.ignored.end());
  return l;
}

std::string convert_folder(const std::string& root, const std::string& out_path, const FolderOptions& o) {
  DT_CHECK_AS(o.store == "encoded" || o.store == "raw", ConfigError, "--store must be 'encoded' or 'raw', got '",
              o.store, "'");
  DT_CHECK_AS(o.encode == "jpeg" || o.encode == "png", ConfigError, "--encode must be 'jpeg' or 'png', got '",
              o.encode, "'");
  DT_CHECK_AS(o.channels == 1 || o.channels == 3, ConfigError, "--channels must be 1 or 3, got ", o.channels);
  DT_CHECK_AS(o.quality >= 1 && o.quality <= 100, ConfigError, "--quality must be in 1..100, got ", o.quality);
  DT_CHECK_AS(o.resize >= 0 && o.crop >= 0, ConfigError, "--resize and --crop must be >= 0");
  DT_CHECK_AS(o.split >= 0 && o.split < 1, ConfigError, "--split must be in [0, 1), got ", o.split);
  DT_CHECK_AS(o.split == 0 || !o.split_out.empty(), ConfigError,
              "--split ", o.split, " needs --split-out FILE, the file for the held-out images");
  DT_CHECK_AS(o.chunk_rows >= 1, ConfigError, "--chunk-rows must be at least 1");
  DT_CHECK_AS(o.split_out.empty() || o.split_out != out_path, ConfigError,
              "--split-out must differ from --out (both are '", out_path, "')");

  FolderListing listing = list_image_folder(root);
  DT_CHECK_AS(listing.images() > 0, IoError, "image folder '", root, "': no images in its ",
              listing.classes.size(), " class folders (files ending in .jpg, .jpeg, .png, .pgm or .ppm)");
  // The split (per class, so that every class keeps its share) and the row order.
  const int parts = o.split > 0 ? 2 : 1;
  std::vector<std::vector<Item>> by_part(static_cast<size_t>(parts));
  Generator split_rng = Generator::derive(o.seed, 0, "folder split");
  for (size_t k = 0; k < listing.classes.size(); ++k) {
    std::vector<std::string> files = listing.files[k];
    if (parts == 2) shuffle(files, split_rng);
    const size_t held = parts == 2 ? static_cast<size_t>(std::llround(o.split * static_cast<double>(files.size()))) : 0;
    for (size_t i = 0; i < files.size(); ++i) {
      const int part = i < held ? 1 : 0;
      by_part[static_cast<size_t>(part)].push_back({files[i], static_cast<int64_t>(k), part});
    }
  }
  if (parts == 2) {
    DT_CHECK_AS(!by_part[1].empty(), ConfigError, "--split ", o.split, " holds out no image (", listing.images(),
                " images; each class's share is rounded): raise --split");
    DT_CHECK_AS(!by_part[0].empty(), ConfigError, "--split ", o.split, " holds out every image: lower --split");
  }
  std::vector<Item> items;
  for (int part = 0; part < parts; ++part) {
    std::vector<Item>& v = by_part[static_cast<size_t>(part)];
    Generator order = Generator::derive(o.seed, static_cast<uint64_t>(part), "folder order");
    shuffle(v, order);
    items.insert(items.end(), v.begin(), v.end());
  }

  std::vector<Output> outs;
  for (int part = 0; part < parts; ++part) {
    Output out;
    out.path = part == 0 ? out_path : o.split_out;
    out.file.emplace(io::H5File::create(out.path));
    if (o.store == "encoded") {
      int64_t file_bytes = 0;
      for (const Item& item : by_part[static_cast<size_t>(part)]) {
        std::error_code ec;
        const auto size = fs::file_size(fs::path(root) / item.rel, ec);
        if (!ec) file_bytes += static_cast<int64_t>(size);
      }
      out.data = std::make_unique<AppendableDataset>(*out.file, "/encoded", Shape{}, DType::U8,
                                                     encoded_chunk_bytes(file_bytes), o.checksum);
    }
    out.sum.assign(static_cast<size_t>(o.channels), 0.0);
    out.sumsq.assign(static_cast<size_t>(o.channels), 0.0);
    outs.push_back(std::move(out));
  }
  auto remove_outputs = [&] {
    for (Output& out : outs) {
      out.data.reset();
      out.file.reset();
      std::error_code ec;
      fs::remove(out.path, ec);
    }
  };

  // Note [Folder pipeline]: workers take items in output order from a shared counter and
  // put each result in a ring slot; the calling thread writes the results strictly in
  // order. A worker waits while its item is more than the ring's size ahead of the
  // writer, which bounds memory whatever the speed of the disk.
  const int workers = o.workers > 0 ? o.workers : available_cores();
  const int64_t total = static_cast<int64_t>(items.size());
  const size_t ring = static_cast<size_t>(std::max(16, 8 * workers));
  std::vector<Result> slots(ring);
  std::mutex mu;
  std::condition_variable cv;
  int64_t written = 0;
  bool abort = false;
  std::atomic<int64_t> next{0};
  auto work = [&] {
    while (true) {
      int64_t i = next++;
      if (i >= total) return;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return abort || i < written + static_cast<int64_t>(ring); });
        if (abort) return;
      }
      Result r;
      process(root, items[static_cast<size_t>(i)], o, r);
      r.seq = i;
      std::lock_guard<std::mutex> lock(mu);
      slots[static_cast<size_t>(i) % ring] = std::move(r);
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < workers; ++t) pool.emplace_back(work);
  auto stop_pool = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      abort = true;
    }
    cv.notify_all();
    for (std::thread& t : pool) {
      if (t.joinable()) t.join();
    }
  };

  const auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  std::vector<std::string> skipped;
  try {
    for (int64_t i = 0; i < total; ++i) {
      Result r;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return slots[static_cast<size_t>(i) % ring].seq == i; });
        r = std::move(slots[static_cast<size_t>(i) % ring]);
        slots[static_cast<size_t>(i) % ring].seq = -1;
      }
      const Item& item = items[static_cast<size_t>(i)];
      if (!r.error.empty()) {
        if (!o.skip_errors) {
          DT_THROW(IoError, r.error, "; fix or remove the file, or pass --on-error skip to leave bad files out");
        }
        skipped.push_back(item.rel);
        if (o.warn) o.warn("skipped: " + r.error);
      } else {
        std::string err = add(outs[static_cast<size_t>(item.part)], item, r, o, root);
        if (!err.empty()) DT_THROW(IoError, err);
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        written = i + 1;
      }
      cv.notify_all();
      auto now = std::chrono::steady_clock::now();
      if (o.progress && (now - last_report > std::chrono::milliseconds(250) || i + 1 == total)) {
        last_report = now;
        o.progress({i + 1, total, std::chrono::duration<double>(now - t0).count()});
      }
    }
    stop_pool();
    for (size_t p = 0; p < outs.size(); ++p) {
      Output& out = outs[p];
      DT_CHECK_AS(!out.labels.empty(), IoError, "'", out.path, "': every image meant for it was skipped as bad; "
                  "nothing to write");
      finish(out, listing.classes, o);
    }
  } catch (...) {
    stop_pool();
    remove_outputs();
    throw;
  }

  // The summary.
  std::ostringstream os;
  for (size_t p = 0; p < outs.size(); ++p) {
    const Output& out = outs[p];
    const int64_t n = static_cast<int64_t>(out.labels.size());
    if (p == 0) {
      os << "wrote ";
    } else {
      os << "\nheld out (--split " << o.split << "): ";
    }
    os << out.path
       << ": " << n << " images, " << listing.classes.size() << " classes, ";
    if (o.store == "raw") {
      os << "raw " << out.h << "x" << out.w << "x" << o.channels << " (" << out.h * out.w * o.channels
         << " bytes per image)";
    } else {
      os << "encoded, " << out.bytes / std::max<int64_t>(n, 1) << " bytes per image on average";
    }
  }
  std::vector<std::string> empty;
  for (size_t k = 0; k < listing.classes.size(); ++k) {
    if (listing.files[k].empty()) empty.push_back(listing.classes[k]);
  }
  if (!empty.empty()) {
    os << "\nempty classes (kept, with no images): ";
    for (size_t i = 0; i < empty.size(); ++i) os << (i ? ", " : "") << empty[i];
  }
  if (!skipped.empty()) {
    os << "\nskipped " << skipped.size() << " bad file(s) (--on-error skip):";
    for (size_t i = 0; i < std::min<size_t>(skipped.size(), 10); ++i) os << " " << skipped[i];
    if (skipped.size() > 10) os << " ...";
  }
  if (!listing.ignored.empty()) {
    os << "\nignored " << listing.ignored.size()
       << " file(s) that are not images by name (or are hidden, or lie outside the class folders):";
    for (size_t i = 0; i < std::min<size_t>(listing.ignored.size(), 10); ++i) os << " " << listing.ignored[i];
    if (listing.ignored.size() > 10) os << " ...";
  }
  return os.str();
}

}  // namespace dtrain::data
