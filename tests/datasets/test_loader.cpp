// Loader: batches hold exactly the planned rows (labels, normalized or raw pixels),
// augmentation is deterministic whatever the threads, held batches are never
// overwritten, worker errors reach the consumer, and destruction mid-prefetch is clean.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/runtime.h"
#include "data_test_util.h"
#include "datasets/convert.h"
#include "datasets/loader.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;
using testing::test_label;
using testing::test_pixel;
using testing::write_test_images;

class LoaderTest : public TempDirTest {
 protected:
  LoaderConfig config(const std::string& path, int64_t batch) {
    LoaderConfig c;
    c.path = path;
    c.batch_size = batch;
    c.seed = 5;
    c.window_blocks = 4;
    return c;
  }
  // The file rows of a batch, from its plan.
  static std::vector<int64_t> rows_of(const Loader& l, const Batch& b) {
    std::vector<int64_t> rows;
    for (const RowRange& r : l.sampler().plan(b.at).ranges) {
      for (int64_t i = 0; i < r.count; ++i) rows.push_back(r.start + i);
    }
    return rows;
  }
};

TEST_F(LoaderTest, NormalizedBatchesHoldThePlannedRows) {
  const int64_t n = 100, h = 3, w = 5, c = 2;
  std::string p = file("img.h5");
  write_test_images(p, n, h, w, c, 4, 8);
  LoaderConfig cfg = config(p, 6);
  cfg.world_size = 2;
  cfg.rank = 1;
  Loader l(cfg);
  EXPECT_EQ(l.batches_per_epoch(), 8);
  for (int step = 0; step < 10; ++step) {  // crosses into epoch 1
    Position before = l.position();
    Batch b = l.next();
    EXPECT_EQ(b.at, l.sampler().normalize(before));
    EXPECT_EQ(l.position(), b.next);
    ASSERT_EQ(b.images.shape(), (Shape{6, c, h, w}));
    ASSERT_EQ(b.images.dtype(), DType::F32);
    ASSERT_EQ(b.labels.shape(), (Shape{6}));
    std::vector<int64_t> rows = rows_of(l, b);
    const float* x = b.images.data<float>();
    const int64_t* y = b.labels.data<int64_t>();
    for (int64_t i = 0; i < 6; ++i) {
      EXPECT_EQ(y[i], test_label(rows[static_cast<size_t>(i)], 4));
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t yx = 0; yx < h * w; ++yx) {
          float want = static_cast<float>((test_pixel(rows[static_cast<size_t>(i)], yx * c + ch) / 255.0 - 0.5) / 0.25);
          ASSERT_NEAR(x[(i * c + ch) * h * w + yx], want, 1e-5);
        }
      }
    }
  }
  EXPECT_GE(l.wait_seconds(), 0.0);
}

TEST_F(LoaderTest, RawBatchesAreTheStoredBytes) {
  std::string p = file("raw.h5");
  write_test_images(p, 64, 4, 4, 3, 10, 16, /*gzip=*/1);
  LoaderConfig cfg = config(p, 8);
  cfg.raw = true;
  cfg.prefetch = 3;
  cfg.threads = 3;
  Loader l(cfg);
  for (int step = 0; step < 12; ++step) {
    Batch b = l.next();
    ASSERT_EQ(b.images.shape(), (Shape{8, 4, 4, 3}));
    ASSERT_EQ(b.images.dtype(), DType::U8);
    std::vector<int64_t> rows = rows_of(l, b);
    const uint8_t* x = b.images.data<uint8_t>();
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t j = 0; j < 48; ++j) ASSERT_EQ(x[i * 48 + j], test_pixel(rows[static_cast<size_t>(i)], j));
    }
  }
}

TEST_F(LoaderTest, AugmentationIsDeterministicAcrossThreadsAndPrefetch) {
  std::string p = file("aug.h5");
  write_test_images(p, 96, 6, 6, 1, 3, 8);
  auto run = [&](int threads, int prefetch, bool raw) {
    LoaderConfig cfg = config(p, 8);
    cfg.threads = threads;
    cfg.prefetch = prefetch;
    cfg.raw = raw;
    cfg.augment.pad_crop = 2;
    cfg.augment.hflip = true;
    Loader l(cfg);
    std::vector<Tensor> out;
    for (int i = 0; i < 15; ++i) out.push_back(l.next().images.clone());
    return out;
  };
  auto a = run(1, 1, false), b = run(4, 5, false);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_vector<float>(), b[i].to_vector<float>()) << "batch " << i;
  // Augmentation did something: some sample differs from its un-augmented pixels, and
  // padded pixels hold the normalized value of 0.
  auto raw = run(2, 2, true);
  bool changed = false, padded = false;
  LoaderConfig plain = config(p, 8);
  plain.raw = true;
  Loader l(plain);
  for (size_t i = 0; i < raw.size(); ++i) {
    std::vector<uint8_t> aug = raw[i].to_vector<uint8_t>(), orig = l.next().images.to_vector<uint8_t>();
    changed |= aug != orig;
    for (uint8_t v : aug) padded |= v == 0;
  }
  EXPECT_TRUE(changed);
  EXPECT_TRUE(padded);
}

TEST_F(LoaderTest, DrawsDependOnSampleNotThread) {
  Augment aug{2, true};
  AugmentDraw a = draw_augment(1, 3, 17, 100, aug), b = draw_augment(1, 3, 17, 100, aug);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dy, b.dy);
  EXPECT_EQ(a.flip, b.flip);
  int flips = 0;
  for (int64_t row = 0; row < 200; ++row) {
    AugmentDraw d = draw_augment(1, 0, row, 200, aug);
    EXPECT_GE(d.dx, 0);
    EXPECT_LE(d.dx, 4);
    flips += d.flip;
  }
  EXPECT_GT(flips, 60);
  EXPECT_LT(flips, 140);
  // A flip without crop mirrors each row.
  uint8_t src[6] = {1, 2, 3, 4, 5, 6}, dst[6];
  augment_u8(src, dst, 2, 3, 1, 0, AugmentDraw{0, 0, true});
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 6), (std::vector<uint8_t>{3, 2, 1, 6, 5, 4}));
  // A crop shifted by one pixel down-right with pad 1.
  augment_u8(src, dst, 2, 3, 1, 1, AugmentDraw{2, 2, false});
  EXPECT_EQ(std::vector<uint8_t>(dst, dst + 6), (std::vector<uint8_t>{5, 6, 0, 0, 0, 0}));
}

TEST_F(LoaderTest, HeldBatchesAreNotOverwritten) {
  std::string p = file("held.h5");
  write_test_images(p, 64, 2, 2, 1, 2, 8);
  LoaderConfig cfg = config(p, 4);
  cfg.prefetch = 2;
  Loader l(cfg);
  Batch first = l.next();
  std::vector<float> copy = first.images.to_vector<float>();
  std::vector<int64_t> labels = first.labels.to_vector<int64_t>();
  for (int i = 0; i < 20; ++i) l.next();
  EXPECT_EQ(first.images.to_vector<float>(), copy);
  EXPECT_EQ(first.labels.to_vector<int64_t>(), labels);
}

TEST_F(LoaderTest, SeekResumesTheSameBatches) {
  std::string p = file("seek.h5");
  write_test_images(p, 80, 2, 2, 1, 5, 8);
  LoaderConfig cfg = config(p, 5);
  Loader a(cfg);
  std::vector<std::vector<int64_t>> labels;
  Position at_3;
  for (int i = 0; i < 22; ++i) {  // 16 per epoch: crosses an epoch
    if (i == 3) at_3 = a.position();
    labels.push_back(a.next().labels.to_vector<int64_t>());
  }
  Loader b(cfg, at_3);
  for (int i = 3; i < 22; ++i) EXPECT_EQ(b.next().labels.to_vector<int64_t>(), labels[static_cast<size_t>(i)]);
  a.seek(at_3);
  for (int i = 3; i < 8; ++i) EXPECT_EQ(a.next().labels.to_vector<int64_t>(), labels[static_cast<size_t>(i)]);
}

TEST_F(LoaderTest, PartialLastBatchWithoutDropLast) {
  std::string p = file("partial.h5");
  write_test_images(p, 10, 2, 2, 1, 2, 4);
  LoaderConfig cfg = config(p, 4);
  cfg.drop_last = false;
  cfg.world_size = 2;
  cfg.rank = 1;
  Loader l(cfg);
  EXPECT_EQ(l.next().size, 4);
  Batch last = l.next();  // 2 samples left for 2 ranks: one each
  EXPECT_EQ(last.size, 1);
  EXPECT_EQ(last.images.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(l.next().at.epoch, 1);
}

TEST_F(LoaderTest, SequencePairs) {
  std::string p = file("pairs.h5");
  synth_pairs(p, 50, 6, 20, 3, {8, 0});
  LoaderConfig cfg = config(p, 4);
  Loader l(cfg);
  EXPECT_EQ(l.kind(), Kind::SequencePairs);
  io::H5File f = io::H5File::open_read(p);
  std::vector<int32_t> src = f.read("/src").to_vector<int32_t>();
  std::vector<int32_t> tl = f.read("/tgt_len").to_vector<int32_t>();
  for (int s = 0; s < 5; ++s) {
    Batch b = l.next();
    ASSERT_EQ(b.src.shape(), (Shape{4, 7}));
    ASSERT_EQ(b.tgt.shape(), (Shape{4, 8}));
    std::vector<int64_t> rows = rows_of(l, b);
    for (int64_t i = 0; i < 4; ++i) {
      int64_t r = rows[static_cast<size_t>(i)];
      for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(b.src.data<int32_t>()[i * 7 + j], src[static_cast<size_t>(r * 7 + j)]);
      EXPECT_EQ(b.tgt_len.data<int32_t>()[i], tl[static_cast<size_t>(r)]);
    }
  }
}

TEST_F(LoaderTest, WorkerErrorsReachTheConsumer) {
  // A compressed file whose chunk data is damaged after the loader validated it: the
  // read fails in a worker, and next() rethrows it (every time), without hanging.
  std::string p = file("corrupt.h5");
  const int64_t n = 256, side = 32;
  {
    io::H5File f = io::H5File::create(p);
    f.write("/labels", Tensor::zeros({n}, DType::I64));
    f.set_attribute("/", "classes", std::vector<std::string>{"a"});
    f.create_dataset("/images", {n, side, side, 3}, DType::U8, {16, 1, false});
    std::vector<uint8_t> px(static_cast<size_t>(n * side * side * 3));
    uint32_t state = 12345;
    for (auto& v : px) v = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);  // incompressible
    f.write_rows("/images", 0, Tensor::from_vector(px, {n, side, side, 3}));
  }
  LoaderConfig cfg = config(p, 64);
  cfg.shuffle = false;
  Loader l(cfg);
  // Damage the middle of the file: compressed chunk data. The loader's prefetch may have
  // read the first batches already; later ones must fail.
  {
    std::fstream io(p, std::ios::in | std::ios::out | std::ios::binary);
    auto size = static_cast<int64_t>(std::filesystem::file_size(p));
    io.seekp(size / 4);
    std::vector<char> junk(static_cast<size_t>(size / 2), '\x5a');
    io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  LoaderConfig cfg2 = cfg;
  Loader l2(cfg2);  // opened after the damage: its first batches read damaged chunks
  bool threw = false;
  try {
    for (int i = 0; i < 4; ++i) l2.next();
  } catch (const IoError& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/images"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(threw);
  EXPECT_THROW(l2.next(), IoError);  // sticky until seek
}

TEST_F(LoaderTest, DestructionWhilePrefetchingIsClean) {
  std::string p = file("destroy.h5");
  write_test_images(p, 512, 16, 16, 3, 10, 32);
  for (int i = 0; i < 5; ++i) {
    LoaderConfig cfg = config(p, 32);
    cfg.prefetch = 6;
    cfg.threads = 3;
    cfg.augment = {4, true};
    Loader l(cfg);
    if (i % 2) l.next();
  }  // destroyed with fills running or queued
  SUCCEED();
}

TEST_F(LoaderTest, CudaDeviceCopiesOnASideStream) {
  std::string why;
  if (!cuda::available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
  std::string p = file("cuda.h5");
  write_test_images(p, 64, 4, 4, 3, 10, 8);
  LoaderConfig cpu_cfg = config(p, 8), gpu_cfg = config(p, 8);
  gpu_cfg.device = Device::cuda(0);
  gpu_cfg.augment = cpu_cfg.augment = {2, true};
  Loader a(cpu_cfg), b(gpu_cfg);
  std::vector<Batch> held;
  for (int i = 0; i < 12; ++i) {
    Batch x = a.next(), y = b.next();
    ASSERT_TRUE(y.images.device().is_cuda());
    EXPECT_EQ(x.images.to_vector<float>(), y.images.to_vector<float>()) << "batch " << i;
    EXPECT_EQ(x.labels.to_vector<int64_t>(), y.labels.to_vector<int64_t>());
    if (i % 3 == 0) held.push_back(y);
  }
}

}  // namespace
}  // namespace dtrain::data
