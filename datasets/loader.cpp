// Loader: see loader.h, Note [Loader pipeline].
#include "datasets/loader.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <utility>
#include <mutex>
#include <vector>

#include "core/io/h5.h"
#include "core/runtime.h"
#include "core/stream.h"
#include "datasets/image_transform.h"
#include "datasets/row_reader.h"

namespace dtrain::data {

namespace {

// One dataset read per batch: where it comes from and what a sample becomes.
struct Field {
  std::string name;         // "/images", "/labels", ...
  RowReader reader;
  DType out_dtype;
  Shape out_sample;         // shape of one output sample
  size_t out_sample_bytes;
};

// A pinned host buffer (CUDA outputs only), freed with the slot.
struct Pinned {
  void* ptr = nullptr;
  Pinned() = default;
  explicit Pinned(size_t bytes) : ptr(cuda::host_malloc_pinned(bytes)) {}
  Pinned(Pinned&& o) noexcept : ptr(std::exchange(o.ptr, nullptr)) {}
  Pinned& operator=(Pinned&&) = delete;
  ~Pinned() {
    if (ptr != nullptr) cuda::host_free_pinned(ptr);
  }
};

// True when someone besides the slot holds the tensor or a view of its storage.
bool held_elsewhere(const Tensor& t) {
  return t.impl_ptr().use_count() > 1 || t.impl().storage.use_count() > 1;
}

int64_t default_block_rows(const io::H5File& f, const std::string& dataset) {
  io::DatasetLayout layout = f.layout_of(dataset);
  return layout.chunks.empty() ? 64 : layout.chunks[0];
}

}  // namespace

struct Loader::Impl {
  enum class State { Free, Filling, Ready, Failed };
  struct Slot {
    State state = State::Free;
    int64_t seq = -1;
    BatchPlan plan;
    std::exception_ptr error;
    std::vector<Tensor> out;        // per field, batch_size rows: the outputs (CPU or device)
    std::vector<Pinned> pinned;     // per field, CUDA outputs: the host side of the copy
    std::vector<uint8_t> staging;   // (B, H, W, C) u8 images before augmentation / normalization
    Stream consumer;                // the consumer's stream when the fill was scheduled
    Event copied, released;         // CUDA: copy done; consumer done with `out`
    bool copied_recorded = false, released_recorded = false;
  };

  LoaderConfig cfg;
  Kind kind = Kind::ImageClassification;
  ImageSchema images;
  PairSchema pairs;
  SequenceSchema sequences;
  CaptionSchema captions;
  int64_t num_samples = 0;
  std::vector<Field> fields;
  std::vector<float> lut;  // (C, 256) normalization table
  bool direct_images = false;  // read u8 images straight into the output
  // Note [Encoded images in the loader]: encoded-images files, and raw files whose images
  // are fitted (resized, cropped) per sample.
  bool encoded = false;
  bool fitted = false;             // samples go through fit_encoded / fit_pixels
  std::vector<int64_t> offsets;    // encoded: N + 1 byte offsets into /encoded
  int64_t in_h = 0, in_w = 0;      // raw: the stored size
  ImageFit fit;
  bool all_direct = false;     // every reader bypasses the HDF5 library
  std::unique_ptr<BlockSampler> sampler;

  std::mutex io_mu;  // serializes HDF5 reads
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Slot> slots;
  int64_t next_seq = 0, sched_seq = 0;
  int returned = -1;
  Position pos, sched_pos;
  std::exception_ptr error;
  bool stop = false;
  double wait_s = 0;
  Stream copy_stream;
  Stream consumer_stream;

  boost::asio::thread_pool pool;

  explicit Impl(const LoaderConfig& c) : cfg(c), pool(static_cast<size_t>(std::max(1, c.threads))) {}

  bool on_cuda() const { return cfg.device.is_cuda(); }

  void open() {
    DT_CHECK(cfg.batch_size > 0, "Loader: batch_size must be positive, got ", cfg.batch_size);
    DT_CHECK(cfg.prefetch >= 0, "Loader: prefetch must be >= 0 (0: automatic), got ", cfg.prefetch);
    DT_CHECK(cfg.threads >= 1, "Loader: threads must be at least 1, got ", cfg.threads);
    DT_CHECK(cfg.augment.pad_crop >= 0, "Loader: pad_crop must be >= 0, got ", cfg.augment.pad_crop);
    DT_CHECK(cfg.window_blocks >= 0, "Loader: window_blocks must be >= 0 (0: automatic), got ", cfg.window_blocks);
    if (on_cuda()) cuda::check_device(cfg.device.index);
    io::H5File f = io::H5File::open_read(cfg.path);
    kind = detect_kind(f);
    if (cfg.images_only && (kind == Kind::ImageClassification || kind == Kind::ImageCaptions)) kind = Kind::ImageOnly;
    int64_t n = 0;
    std::string lead;
    if (kind == Kind::SequencePairs || kind == Kind::SequenceClassification) {
      const bool is_pairs = kind == Kind::SequencePairs;
      DT_CHECK_AS(!cfg.augment.any(), ValueError, "Loader: '", cfg.path, "' holds ",
                  is_pairs ? "sequence pairs" : "sequences", "; image augmentation does not apply");
      if (is_pairs) {
        pairs = validate_pairs(f);
        n = pairs.n;
        lead = "/src";
      } else {
        sequences = validate_sequences(f);
        n = sequences.n;
        lead = "/tokens";
      }
      std::vector<std::pair<const char*, DType>> names;
      if (is_pairs) {
        names = {{"/src", DType::I32}, {"/tgt", DType::I32}, {"/src_len", DType::I32}, {"/tgt_len", DType::I32}};
      } else {
        names = {{"/tokens", DType::I32}, {"/lengths", DType::I32}, {"/labels", DType::I64}};
      }
      for (auto [name, dtype] : names) {  // stored as delivered: rows are copied as they are
        RowReader r = RowReader::open(f, name, 0);
        Shape sample(r.shape().begin() + 1, r.shape().end());
        size_t bytes = r.row_bytes();
        fields.push_back({name, std::move(r), dtype, sample, bytes});
      }
    } else {
      if (kind == Kind::ImageCaptions) {
        // Left and right are words of the captions: a flip or a shift would make them lie.
        DT_CHECK_AS(!cfg.augment.any(), ValueError, "Loader: '", cfg.path, "' holds image captions that say where "
                    "each item is; image augmentation (flips, crops) does not apply");
        captions = validate_captions(f);
        images = captions.images;
      } else {
        images = validate_images(f, kind == Kind::ImageClassification);
      }
      n = images.n;
      encoded = images.encoded;
      lead = encoded ? (f.has("/labels") ? "/labels" : "/offsets") : "/images";
      DT_CHECK(cfg.image_size >= 0 && cfg.eval_resize >= 0, "Loader: image_size and eval_resize must be >= 0, got ",
               cfg.image_size, " and ", cfg.eval_resize);
      in_h = images.height;
      in_w = images.width;
      if (cfg.image_size > 0) {
        images.height = images.width = cfg.image_size;
      } else if (images.height == 0) {
        DT_THROW(ConfigError, "dataset file '", cfg.path, "': its images differ in size, so the loader needs an "
                 "output size: set data.image_size (e.g. 224)");
      }
      const int64_t h = images.height, w = images.width, c = images.channels;
      DT_CHECK_AS(cfg.eval_resize == 0 || cfg.eval_resize >= std::max(h, w), ConfigError, "data.eval_resize = ",
                  cfg.eval_resize, " is smaller than the output size ", h, "x", w,
                  "; the centre crop needs a shorter side of at least that (or 0)");
      fitted = encoded || cfg.augment.random_resized_crop || h != in_h || w != in_w || cfg.eval_resize > 0;
      fit.out_height = h;
      fit.out_width = w;
      fit.channels = c;
      fit.eval_resize = cfg.eval_resize;
      fit.reduced_decode = cfg.reduced_decode;
      fit.augment = cfg.augment;
      fit.seed = cfg.seed;
      fit.num_samples = n;
      if (encoded) {
        offsets = read_encoded_offsets(f);
        // Direct reads (no cache): the byte ranges of a batch are read once.
        fields.push_back({"/encoded", RowReader::open(f, "/encoded", 0), cfg.raw ? DType::U8 : DType::F32,
                          cfg.raw ? Shape{h, w, c} : Shape{c, h, w},
                          static_cast<size_t>(h * w * c) * (cfg.raw ? 1 : 4)});
      } else {
        // Uncompressed chunks go straight from the file to our buffer (no cache copy);
        // compressed ones are cached, a window's worth, so segments of one chunk read by
        // consecutive batches decompress it once.
        int64_t chunk_bytes = std::max<int64_t>(images.chunk_rows, 1) * in_h * in_w * c;
        int64_t window = cfg.window_blocks > 0 ? cfg.window_blocks : 16;
        int64_t cache = images.filters.empty() ? 0 : std::min<int64_t>(int64_t{512} << 20, 2 * window * chunk_bytes);
        RowReader r = RowReader::open(f, "/images", cache);
        direct_images = cfg.raw && !cfg.augment.any() && !fitted;
        if (cfg.raw) {
          fields.push_back({"/images", std::move(r), DType::U8, {h, w, c}, static_cast<size_t>(h * w * c)});
        } else {
          fields.push_back({"/images", std::move(r), DType::F32, {c, h, w}, static_cast<size_t>(h * w * c) * 4});
        }
      }
      if (!cfg.raw) {
        lut.resize(static_cast<size_t>(c * 256));
        for (int64_t ch = 0; ch < c; ++ch) {
          for (int v = 0; v < 256; ++v) {
            lut[static_cast<size_t>(ch * 256 + v)] =
                static_cast<float>((v / 255.0 - images.mean[static_cast<size_t>(ch)]) / images.std[static_cast<size_t>(ch)]);
          }
        }
      }
      if (kind == Kind::ImageClassification) {
        fields.push_back({"/labels", RowReader::open(f, "/labels", 0), DType::I64, {}, 8});
      } else if (kind == Kind::ImageCaptions) {
        RowReader r = RowReader::open(f, "/captions", 0);
        const size_t bytes = r.row_bytes();
        fields.push_back({"/captions", std::move(r), DType::I32, {captions.max_len}, bytes});
        fields.push_back({"/caption_len", RowReader::open(f, "/caption_len", 0), DType::I32, {}, 4});
      }
    }
    num_samples = n;
    all_direct = std::all_of(fields.begin(), fields.end(), [](const Field& fd) { return fd.reader.direct(); });
    SamplerConfig sc;
    sc.num_samples = n;
    sc.batch_size = cfg.batch_size;
    sc.world_size = cfg.world_size;
    sc.rank = cfg.rank;
    sc.block_rows = cfg.block_rows > 0 ? cfg.block_rows : default_block_rows(f, lead);
    sc.window_blocks = cfg.window_blocks > 0 ? cfg.window_blocks : std::max<int64_t>(16, 2048 / sc.block_rows);
    sc.segment_rows = cfg.segment_rows;
    sc.seed = cfg.seed;
    sc.shuffle = cfg.shuffle;
    sc.drop_last = cfg.drop_last;
    sampler = std::make_unique<BlockSampler>(sc);

    if (cfg.prefetch == 0) {
      // Deep enough to hide the hand-off of small batches, shallow enough that the ring of
      // prefetch + 1 batch buffers stays in the last-level cache for large ones (measured:
      // 3x224x224 batches of 64 read 20-40% slower into a ring of 9 than a ring of 3).
      size_t batch_bytes = 0;
      for (const Field& fd : fields) batch_bytes += static_cast<size_t>(cfg.batch_size) * fd.out_sample_bytes;
      constexpr size_t kRingBudget = size_t{16} << 20;
      cfg.prefetch = static_cast<int>(std::clamp<size_t>(kRingBudget / std::max<size_t>(batch_bytes, 1), 2, 8));
    }
    slots.resize(static_cast<size_t>(cfg.prefetch + 1));
    if (on_cuda()) {
      copy_stream = Stream::create(cfg.device);
      consumer_stream = Stream::current(cfg.device);
      for (Slot& s : slots) {
        s.copied = Event::create(cfg.device);
        s.released = Event::create(cfg.device);
        for (const Field& fd : fields) s.pinned.emplace_back(static_cast<size_t>(cfg.batch_size) * fd.out_sample_bytes);
      }
    }
  }

  Shape batch_shape(const Field& fd, int64_t rows) const {
    Shape s{rows};
    s.insert(s.end(), fd.out_sample.begin(), fd.out_sample.end());
    return s;
  }

  // Runs on a pool thread. Touches only its slot (which the consumer leaves alone while
  // it is Filling), the readers (under io_mu) and read-only configuration.
  void fill(int idx) {
    Slot& s = slots[static_cast<size_t>(idx)];
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stop) {
        s.state = State::Free;
        cv.notify_all();
        return;
      }
    }
    try {
      const BatchPlan& plan = s.plan;
      const int64_t cap = cfg.batch_size;
      if (on_cuda() && s.copied_recorded) s.copied.synchronize();  // the pinned buffers are free again
      std::vector<uint8_t*> dst(fields.size());
      for (size_t f = 0; f < fields.size(); ++f) {
        if (on_cuda()) {
          dst[f] = static_cast<uint8_t*>(s.pinned[f].ptr);
        } else {
          if (s.out.size() <= f) s.out.resize(fields.size());
          if (!s.out[f].defined() || held_elsewhere(s.out[f])) {
            s.out[f] = Tensor::empty(batch_shape(fields[f], cap), fields[f].out_dtype);
          }
          dst[f] = static_cast<uint8_t*>(s.out[f].raw_data());
        }
      }
      const bool images = kind == Kind::ImageClassification || kind == Kind::ImageOnly || kind == Kind::ImageCaptions;
      const bool stage = images && !direct_images;
      // Bytes of one stored sample in the staging buffer (raw files; encoded ones vary).
      const int64_t sample_bytes = images ? in_h * in_w * this->images.channels : 0;
      if (stage && encoded) {
        int64_t total = 0;
        for (const RowRange& r : plan.ranges) {
          total += offsets[static_cast<size_t>(r.start + r.count)] - offsets[static_cast<size_t>(r.start)];
        }
        s.staging.resize(static_cast<size_t>(total));
      } else if (stage) {
        s.staging.resize(static_cast<size_t>(cap * sample_bytes));
      }
      {
        // HDF5 serializes its calls anyway; direct reads (Note [Direct row reads] in
        // row_reader.h) run in parallel, so the lock is taken only for the others.
        std::unique_lock<std::mutex> lock(io_mu, std::defer_lock);
        if (!all_direct) lock.lock();
        int64_t at = 0, byte_at = 0;
        for (const RowRange& r : plan.ranges) {
          for (size_t f = 0; f < fields.size(); ++f) {
            const Field& fd = fields[f];
            if (f == 0 && encoded) {
              const int64_t b0 = offsets[static_cast<size_t>(r.start)];
              const int64_t b1 = offsets[static_cast<size_t>(r.start + r.count)];
              fd.reader.read(b0, b1 - b0, s.staging.data() + byte_at);
              byte_at += b1 - b0;
              continue;
            }
            uint8_t* to = f == 0 && stage ? s.staging.data() + at * sample_bytes
                                          : dst[f] + static_cast<size_t>(at) * fd.reader.row_bytes();
            fd.reader.read(r.start, r.count, to);
          }
          at += r.count;
        }
      }
      if (stage && fitted) {
        fit_batch(s, dst[0]);
      } else if (stage) {
        transform(s, dst[0]);
      }
      if (on_cuda()) copy_to_device(s);
      std::lock_guard<std::mutex> lock(mu);
      s.state = State::Ready;
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      s.error = std::current_exception();
      s.state = State::Failed;
    }
    cv.notify_all();
  }

  void transform(const Slot& s, uint8_t* dst) const {
    const int64_t h = images.height, w = images.width, c = images.channels, bytes = images.sample_bytes();
    int64_t i = 0;
    for (const RowRange& r : s.plan.ranges) {
      for (int64_t row = r.start; row < r.start + r.count; ++row, ++i) {
        AugmentDraw d = draw_augment(cfg.seed, s.plan.at.epoch, row, images.n, cfg.augment);
        const uint8_t* src = s.staging.data() + i * bytes;
        if (cfg.raw) {
          augment_u8(src, dst + i * bytes, h, w, c, cfg.augment.pad_crop, d);
        } else {
          augment_to_chw(src, reinterpret_cast<float*>(dst) + i * bytes, h, w, c, cfg.augment.pad_crop, d, lut.data());
        }
      }
    }
  }

  // Note [Encoded images in the loader]: the fitted path, one sample at a time, shared
  // with helper jobs on the pool. A helper that finds no sample left returns at once
  // without touching the slot, so one that runs late (after the batch is done) is harmless.
  void fit_batch(const Slot& s, uint8_t* dst) {
    struct Sample {
      int64_t row;
      int64_t byte_start, bytes;  // encoded: where its bytes are in the staging buffer
    };
    std::vector<Sample> samples;
    samples.reserve(static_cast<size_t>(s.plan.rows));
    int64_t byte_at = 0;
    for (const RowRange& r : s.plan.ranges) {
      for (int64_t row = r.start; row < r.start + r.count; ++row) {
        int64_t bytes = encoded ? offsets[static_cast<size_t>(row + 1)] - offsets[static_cast<size_t>(row)] : 0;
        samples.push_back({row, byte_at, bytes});
        byte_at += bytes;
      }
    }
    struct Shared {
      std::atomic<int64_t> next{0};
      int64_t done = 0;
      std::mutex mu;
      std::condition_variable cv;
      std::exception_ptr error;
    };
    auto shared = std::make_shared<Shared>();
    const int64_t count = static_cast<int64_t>(samples.size());
    const int64_t epoch = s.plan.at.epoch;
    const uint8_t* staging = s.staging.data();
    auto work = [this, shared, count, epoch, staging, dst, samples_ptr = samples.data()] {
      while (true) {
        const int64_t i = shared->next++;
        if (i >= count) return;
        std::exception_ptr err;
        try {
          fit_sample(samples_ptr[i].row, epoch, staging, samples_ptr[i].byte_start, samples_ptr[i].bytes, i, dst);
        } catch (...) {
          err = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(shared->mu);
        if (err && !shared->error) shared->error = err;
        if (++shared->done == count) shared->cv.notify_all();
      }
    };
    const int helpers = std::min<int64_t>(cfg.threads - 1, count - 1) > 0
                            ? static_cast<int>(std::min<int64_t>(cfg.threads - 1, count - 1))
                            : 0;
    for (int k = 0; k < helpers; ++k) boost::asio::post(pool, work);
    work();
    std::unique_lock<std::mutex> lock(shared->mu);
    shared->cv.wait(lock, [&] { return shared->done == count; });
    if (shared->error) std::rethrow_exception(shared->error);
  }

  // Sample i of a batch: decode or take its pixels, fit, then pad-crop/flip and normalize.
  void fit_sample(int64_t row, int64_t epoch, const uint8_t* staging, int64_t byte_start, int64_t bytes, int64_t i,
                  uint8_t* dst) const {
    io::Image img;
    if (encoded) {
      std::string name = "dataset file '";
      name += cfg.path;
      name += "', '/encoded' row ";
      name += std::to_string(row);
      name += " (check the file with 'dtrain data inspect --verify')";
      img = fit_encoded(staging + byte_start, static_cast<size_t>(bytes), name, fit, epoch, row);
    } else {
      const int64_t c = images.channels, sample_bytes = in_h * in_w * c;
      io::Image src;
      src.height = in_h;
      src.width = in_w;
      src.channels = c;
      src.pixels.assign(staging + i * sample_bytes, staging + (i + 1) * sample_bytes);
      img = fit_pixels(std::move(src), fit, epoch, row);
    }
    const int64_t h = images.height, w = images.width, c = images.channels, out = h * w * c;
    AugmentDraw d = draw_augment(cfg.seed, epoch, row, images.n, cfg.augment);
    if (cfg.raw) {
      augment_u8(img.pixels.data(), dst + i * out, h, w, c, cfg.augment.pad_crop, d);
    } else {
      augment_to_chw(img.pixels.data(), reinterpret_cast<float*>(dst) + i * out, h, w, c, cfg.augment.pad_crop, d,
                     lut.data());
    }
  }

  // Pinned host buffers -> the slot's device tensors, on the copy stream.
  void copy_to_device(Slot& s) {
    if (s.out.size() < fields.size()) s.out.resize(fields.size());
    for (size_t f = 0; f < fields.size(); ++f) {
      if (!s.out[f].defined() || held_elsewhere(s.out[f])) {
        s.out[f] = Tensor::empty(batch_shape(fields[f], cfg.batch_size), fields[f].out_dtype, cfg.device);
        // The block may have been freed by the consumer with kernels still queued on its
        // stream (Note [Caching allocator and streams]): order the copy after them.
        Event fresh = Event::create(cfg.device);
        fresh.record(s.consumer);
        fresh.wait(copy_stream);
      } else if (s.released_recorded) {
        s.released.wait(copy_stream);  // the consumer's last use of this buffer
      }
      size_t bytes = static_cast<size_t>(s.plan.rows) * fields[f].out_sample_bytes;
      if (bytes > 0) {
        cuda::memcpy(s.out[f].raw_data(), cfg.device, s.pinned[f].ptr, Device::cpu(), bytes, copy_stream.handle());
      }
    }
    s.copied.record(copy_stream);
    s.copied_recorded = true;
  }

  // With mu held: post fills until `prefetch` batches are ahead of the consumer.
  void schedule_locked() {
    while (!stop && sched_seq - next_seq < cfg.prefetch) {
      int idx = static_cast<int>(sched_seq % static_cast<int64_t>(slots.size()));
      Slot& s = slots[static_cast<size_t>(idx)];
      if (s.state != State::Free || idx == returned) break;
      s.plan = sampler->plan(sched_pos);
      s.seq = sched_seq++;
      s.error = nullptr;
      s.consumer = consumer_stream;
      sched_pos = s.plan.next;
      s.state = State::Filling;
      boost::asio::post(pool, [this, idx] { fill(idx); });
    }
  }

  // With mu held: the consumer gives back the slot it was handed last.
  void release_locked() {
    if (returned < 0) return;
    Slot& s = slots[static_cast<size_t>(returned)];
    if (on_cuda()) {
      s.released.record(Stream::current(cfg.device));
      s.released_recorded = true;
    }
    s.state = State::Free;
    returned = -1;
  }

  Batch next() {
    std::unique_lock<std::mutex> lock(mu);
    release_locked();
    if (error) std::rethrow_exception(error);
    if (on_cuda()) consumer_stream = Stream::current(cfg.device);
    schedule_locked();
    int idx = static_cast<int>(next_seq % static_cast<int64_t>(slots.size()));
    Slot& s = slots[static_cast<size_t>(idx)];
    auto t0 = std::chrono::steady_clock::now();
    cv.wait(lock, [&] { return s.seq == next_seq && (s.state == State::Ready || s.state == State::Failed); });
    wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s.state == State::Failed) {
      error = s.error;
      std::rethrow_exception(error);
    }
    Batch b;
    b.at = s.plan.at;
    b.next = s.plan.next;
    b.size = s.plan.rows;
    std::vector<Tensor> out(fields.size());
    for (size_t f = 0; f < fields.size(); ++f) {
      out[f] = s.plan.rows == cfg.batch_size ? s.out[f] : s.out[f].rows(0, s.plan.rows);
    }
    if (kind == Kind::SequencePairs) {
      b.src = out[0];
      b.tgt = out[1];
      b.src_len = out[2];
      b.tgt_len = out[3];
    } else if (kind == Kind::SequenceClassification) {
      b.tokens = out[0];
      b.lengths = out[1];
      b.labels = out[2];
    } else {
      b.images = out[0];
      if (kind == Kind::ImageClassification) b.labels = out[1];
      if (kind == Kind::ImageCaptions) {
        b.tokens = out[1];
        b.lengths = out[2];
      }
    }
    if (on_cuda()) s.copied.wait(Stream::current(cfg.device));
    returned = idx;
    ++next_seq;
    pos = s.plan.next;
    schedule_locked();
    return b;
  }

  void drain_locked(std::unique_lock<std::mutex>& lock) {
    cv.wait(lock, [&] {
      for (const Slot& s : slots) {
        if (s.state == State::Filling) return false;
      }
      return true;
    });
  }

  void seek(Position p) {
    Position start = sampler->normalize(p);
    std::unique_lock<std::mutex> lock(mu);
    release_locked();
    drain_locked(lock);
    for (Slot& s : slots) {
      s.state = State::Free;
      s.seq = -1;
      s.error = nullptr;
    }
    error = nullptr;
    next_seq = sched_seq = 0;
    pos = sched_pos = start;
    if (on_cuda()) consumer_stream = Stream::current(cfg.device);
    schedule_locked();
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    pool.join();  // running fills finish; queued ones see `stop` and return at once
    if (on_cuda()) {
      for (Slot& s : slots) {
        if (s.copied_recorded) s.copied.synchronize();
      }
    }
  }
};

Loader::Loader(LoaderConfig config, Position start) : impl_(std::make_unique<Impl>(config)) {
  try {
    impl_->open();
    impl_->seek(start);
  } catch (...) {
    impl_->shutdown();
    throw;
  }
}

Loader::~Loader() { impl_->shutdown(); }

Kind Loader::kind() const { return impl_->kind; }
const ImageSchema& Loader::image_schema() const {
  DT_CHECK(impl_->kind == Kind::ImageClassification || impl_->kind == Kind::ImageOnly ||
               impl_->kind == Kind::ImageCaptions,
           "Loader: '", impl_->cfg.path, "' holds ", kind_name(impl_->kind), ", not images");
  return impl_->images;
}
const CaptionSchema& Loader::caption_schema() const {
  DT_CHECK(impl_->kind == Kind::ImageCaptions, "Loader: '", impl_->cfg.path, "' holds ", kind_name(impl_->kind),
           ", not image captions");
  return impl_->captions;
}
const PairSchema& Loader::pair_schema() const {
  DT_CHECK(impl_->kind == Kind::SequencePairs, "Loader: '", impl_->cfg.path, "' holds ", kind_name(impl_->kind),
           ", not sequence pairs");
  return impl_->pairs;
}
const SequenceSchema& Loader::sequence_schema() const {
  DT_CHECK(impl_->kind == Kind::SequenceClassification, "Loader: '", impl_->cfg.path, "' holds ",
           kind_name(impl_->kind), ", not sequence classification");
  return impl_->sequences;
}
int64_t Loader::num_samples() const { return impl_->num_samples; }
const BlockSampler& Loader::sampler() const { return *impl_->sampler; }
int64_t Loader::batches_per_epoch() const { return impl_->sampler->batches_per_epoch(0); }
Batch Loader::next() { return impl_->next(); }
Position Loader::position() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->pos;
}
void Loader::seek(Position p) { impl_->seek(p); }
int Loader::prefetch() const { return impl_->cfg.prefetch; }

double Loader::wait_seconds() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->wait_s;
}

}  // namespace dtrain::data
