// Checkpoint files (core/checkpoint.h): the round trip, every kind of damaged or foreign
// checkpoint refused with a message that names the file and the problem, a failed write
// leaving the previous good checkpoint intact, keep-last pruning, find_latest skipping
// bad ones with a warning, and the XXH64 checksum against libxxhash when it is present.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/io/h5.h"

namespace {

namespace fs = std::filesystem;
using namespace dtrain;

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("dtrain_ckpt_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static ckpt::Contents contents(int64_t step, int64_t hidden = 5) {
    ckpt::Contents c;
    c.model = {{"0.weight", Tensor::from_vector<float>(std::vector<float>(static_cast<size_t>(3 * hidden), 0.25f),
                                                         {hidden, 3})},
               {"0.bias", Tensor::from_vector<float>({1.f, -2.f, 3.5f, 0.f, 7.f}, {5})},
               {"1.num_batches_tracked", Tensor::from_vector<int64_t>({step}, {})}};
    c.optimizer = {{"0.weight.momentum_buffer",
                    Tensor::from_vector<float>(std::vector<float>(static_cast<size_t>(3 * hidden), -1.5f), {hidden, 3})}};
    c.optimizer_steps = step;
    c.rng = {{0, "dropout.classifier.2", {11, 22}}, {1, "dropout.classifier.2", {0xFFFFFFFFFFFFFFF0ULL, 44}}};
    c.trainer.step = step;
    c.trainer.epoch = 2;
    c.trainer.cursor = 96;
    c.trainer.seed = 7;
    c.trainer.world_size = 2;
    c.trainer.global_batch = 32;
    c.trainer.schedule_step = step;
    c.trainer.config = "seed = 7\nbatch_size = 16\n";
    c.trainer.build = "dtrain test";
    return c;
  }
  std::string path(int64_t step) const { return (fs::path(dir_) / ckpt::file_name(step)).string(); }
  std::string marker(int64_t step) const { return (fs::path(dir_) / ckpt::marker_name(step)).string(); }

  std::string dir_;
};

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST_F(Checkpoint, WriteReadRoundTrip) {
  ckpt::Contents c = contents(12);
  std::string p = ckpt::write(dir_, c);
  EXPECT_EQ(p, path(12));
  EXPECT_TRUE(fs::exists(marker(12)));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  ckpt::Contents r = ckpt::read(p);
  ASSERT_EQ(r.model.size(), c.model.size());
  for (const auto& [n, t] : c.model) {
    bool found = false;
    for (const auto& [m, u] : r.model) {
      if (m == n) {
        found = true;
        EXPECT_TRUE(same_bytes(t, u)) << n;
      }
    }
    EXPECT_TRUE(found) << n;
  }
  ASSERT_EQ(r.optimizer.size(), 1u);
  EXPECT_TRUE(same_bytes(r.optimizer[0].second, c.optimizer[0].second));
  EXPECT_EQ(r.optimizer_steps, 12);
  ASSERT_EQ(r.rng.size(), 2u);
  for (const ckpt::RngStream& s : r.rng) {
    EXPECT_EQ(s.name, "dropout.classifier.2");
    EXPECT_EQ(s.state, (s.rank == 0 ? Generator::State{11, 22} : Generator::State{0xFFFFFFFFFFFFFFF0ULL, 44}));
  }
  EXPECT_EQ(r.trainer.step, 12);
  EXPECT_EQ(r.trainer.epoch, 2);
  EXPECT_EQ(r.trainer.cursor, 96);
  EXPECT_EQ(r.trainer.seed, 7);
  EXPECT_EQ(r.trainer.world_size, 2);
  EXPECT_EQ(r.trainer.global_batch, 32);
  EXPECT_EQ(r.trainer.schedule_step, 12);
  EXPECT_EQ(r.trainer.config, c.trainer.config);
  EXPECT_EQ(r.trainer.build, "dtrain test");
  EXPECT_EQ(r.trainer.format_version, ckpt::kFormatVersion);
  // The documented layout, readable by any HDF5 tool.
  io::H5File f = io::H5File::open_read(p);
  EXPECT_TRUE(f.has("/model/0.weight"));
  EXPECT_TRUE(f.has("/optimizer/0.weight.momentum_buffer"));
  EXPECT_TRUE(f.has("/rng/rank1/dropout.classifier.2"));
  EXPECT_EQ(f.get_attribute<int64_t>("/trainer", "step"), 12);
}

TEST_F(Checkpoint, TruncatedFileIsRefused) {
  std::string p = ckpt::write(dir_, contents(3));
  fs::resize_file(p, fs::file_size(p) / 2);
  std::string e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, p) && contains(e, "truncated")) << e;
  EXPECT_THROW(ckpt::read(p), IoError);
}

TEST_F(Checkpoint, FlippedByteIsRefused) {
  std::string p = ckpt::write(dir_, contents(3));
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(p) / 2));
    char b;
    f.read(&b, 1);
    b = static_cast<char>(b ^ 0x10);
    f.seekp(static_cast<std::streamoff>(fs::file_size(p) / 2));
    f.write(&b, 1);
  }
  std::string e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, p) && contains(e, "corrupt") && contains(e, "checksum")) << e;
}

TEST_F(Checkpoint, MissingMarkerIsRefused) {
  std::string p = ckpt::write(dir_, contents(3));
  fs::remove(marker(3));
  std::string e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, p) && contains(e, "marker") && contains(e, "missing")) << e;
}

TEST_F(Checkpoint, MalformedOrForeignMarkerIsRefused) {
  std::string p = ckpt::write(dir_, contents(3));
  std::ofstream(marker(3)) << "hello\n";  // not a marker
  std::string e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, marker(3)) && contains(e, "is malformed")) << e;
  // Another checkpoint's marker copied beside this file.
  std::string q = ckpt::write(dir_, contents(4));
  fs::copy_file(marker(4), marker(3), fs::copy_options::overwrite_existing);
  e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, "belongs to 'step-4.h5', not to 'step-3.h5'")) << e;
  EXPECT_NO_THROW(ckpt::verify(q));
}

TEST_F(Checkpoint, OtherFormatVersionIsRefused) {
  ckpt::Contents c = contents(3);
  c.trainer.format_version = 99;
  std::string p = ckpt::write(dir_, c);
  std::string e = error_of([&] { ckpt::verify(p); });
  EXPECT_TRUE(contains(e, p) && contains(e, "format version 99")) << e;
}

TEST_F(Checkpoint, CheckpointOfAnotherModelIsRefused) {
  std::string p = ckpt::write(dir_, contents(3, /*hidden=*/5));
  ckpt::Contents r = ckpt::read(p);
  EXPECT_NO_THROW(ckpt::check_model(p, r.model, contents(3).model));
  // Another shape.
  std::string e = error_of([&] { ckpt::check_model(p, r.model, contents(3, /*hidden=*/6).model); });
  EXPECT_TRUE(contains(e, p) && contains(e, "another model") && contains(e, "0.weight") && contains(e, "[5, 3]") &&
              contains(e, "[6, 3]"))
      << e;
  // Another name.
  nn::NamedTensors other = contents(3).model;
  other[1].first = "0.other";
  e = error_of([&] { ckpt::check_model(p, r.model, other); });
  EXPECT_TRUE(contains(e, "another model") && contains(e, "0.other")) << e;
  // A tensor the model lacks.
  other = contents(3).model;
  other.pop_back();
  e = error_of([&] { ckpt::check_model(p, r.model, other); });
  EXPECT_TRUE(contains(e, "which this model lacks") && contains(e, "num_batches_tracked")) << e;
  EXPECT_THROW(ckpt::check_model(p, r.model, other), ValueError);
}

TEST_F(Checkpoint, FailedWriteLeavesThePreviousCheckpointIntact) {
  ckpt::write(dir_, contents(1));
  const uint64_t before = ckpt::hash_file(path(1));
  // An error in the middle of writing the datasets, then one after the rename but
  // before the marker (the file is in place but does not count).
  for (const char* stage : {"datasets", "synced", "renamed"}) {
    std::string e = error_of([&] {
      ckpt::write(dir_, contents(2), [&](const std::string& s) {
        if (s == stage) throw IoError(std::string("injected at ") + stage);
      });
    });
    EXPECT_TRUE(contains(e, "injected")) << e;
    EXPECT_FALSE(fs::exists(marker(2))) << stage;
    EXPECT_FALSE(fs::exists(path(2) + ".tmp")) << stage;
    auto complete = ckpt::list_complete(dir_);
    ASSERT_EQ(complete.size(), 1u) << stage;
    EXPECT_EQ(complete[0].first, 1);
    testing::internal::CaptureStderr();
    auto latest = ckpt::find_latest(dir_, Logger());
    std::string warnings = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->first, 1);
    // Nothing of the failed write stays behind, not even the renamed file without its
    // marker, so find_latest has nothing to warn about.
    EXPECT_FALSE(fs::exists(path(2))) << stage;
    EXPECT_FALSE(fs::exists(marker(2) + ".tmp")) << stage;
    EXPECT_TRUE(warnings.empty()) << stage << ": " << warnings;
  }
  EXPECT_EQ(ckpt::hash_file(path(1)), before);
  EXPECT_NO_THROW(ckpt::verify(path(1)));

  // A directory that cannot be created: a plain file is in the way.
  std::string blocked = (fs::path(dir_) / "file").string();
  std::ofstream(blocked) << "x";
  std::string e = error_of([&] { ckpt::write(blocked + "/sub", contents(5)); });
  EXPECT_TRUE(contains(e, "cannot create the directory")) << e;
  EXPECT_NO_THROW(ckpt::verify(path(1)));
}

TEST_F(Checkpoint, RewritingAStepNeverLeavesAStaleMarkerVouchingForIt) {
  ckpt::write(dir_, contents(4));
  ckpt::Contents c = contents(4);
  c.trainer.cursor = 1234;  // another file for the same step
  EXPECT_THROW(ckpt::write(dir_, c,
                           [](const std::string& s) {
                             if (s == "renamed") throw IoError("crash after the rename");
                           }),
               IoError);
  // The old marker was removed before the new file took the name.
  EXPECT_FALSE(fs::exists(marker(4)));
  ckpt::write(dir_, c);
  EXPECT_EQ(ckpt::read(path(4)).trainer.cursor, 1234);
}

TEST_F(Checkpoint, KeepLastPrunesOnlyOlderCompleteOnes) {
  for (int64_t s = 1; s <= 5; ++s) {
    ckpt::write(dir_, contents(s));
    ckpt::prune(dir_, 2);
  }
  auto complete = ckpt::list_complete(dir_);
  ASSERT_EQ(complete.size(), 2u);
  EXPECT_EQ(complete[0].first, 5);
  EXPECT_EQ(complete[1].first, 4);
  // Leftovers of abandoned writes older than the newest are removed; newer ones are kept
  // (a write may be in progress).
  std::ofstream(path(3) + ".tmp") << "partial";
  std::ofstream(path(2)) << "no marker";
  std::ofstream(path(9) + ".tmp") << "in progress";
  ckpt::prune(dir_, 2);
  EXPECT_FALSE(fs::exists(path(3) + ".tmp"));
  EXPECT_FALSE(fs::exists(path(2)));
  EXPECT_TRUE(fs::exists(path(9) + ".tmp"));
  EXPECT_TRUE(fs::exists(path(4)) && fs::exists(path(5)));
  // keep_last 0 keeps everything.
  EXPECT_TRUE(ckpt::prune(dir_, 0).empty());
}

TEST_F(Checkpoint, FindLatestSkipsDamagedOnesWithAWarning) {
  EXPECT_FALSE(ckpt::find_latest(dir_, Logger()).has_value());  // no directory
  for (int64_t s : {2, 4, 6, 8}) ckpt::write(dir_, contents(s));
  fs::resize_file(path(8), 100);                       // truncated
  fs::remove(marker(6));                               // interrupted
  ckpt::Contents v = contents(4);
  v.trainer.format_version = 7;
  ckpt::write(dir_, v);                                // from another dtrain
  testing::internal::CaptureStderr();
  auto latest = ckpt::find_latest(dir_, Logger());
  std::string warnings = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->first, 2);
  EXPECT_EQ(latest->second, path(2));
  EXPECT_TRUE(contains(warnings, "skipping checkpoint '" + path(8) + "'") && contains(warnings, "truncated"))
      << warnings;
  EXPECT_TRUE(contains(warnings, "skipping checkpoint '" + path(6) + "'")) << warnings;
  EXPECT_TRUE(contains(warnings, "skipping checkpoint '" + path(4) + "'") && contains(warnings, "format version 7"))
      << warnings;
}

TEST(CheckpointHash, Xxh64MatchesReferenceValues) {
  auto h = [](const std::string& s) {
    ckpt::Xxh64 x;
    x.update(s.data(), s.size());
    return x.digest();
  };
  EXPECT_EQ(h(""), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(h("abc"), 0x44BC2CF5AD770999ULL);
  // Streaming in odd pieces gives the one-shot value.
  std::mt19937_64 rng(5);
  std::vector<unsigned char> data(10007);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  ckpt::Xxh64 one;
  one.update(data.data(), data.size());
  ckpt::Xxh64 pieces;
  for (size_t at = 0, k = 1; at < data.size(); at += k, k = k * 3 % 97 + 1) {
    pieces.update(data.data() + at, std::min(k, data.size() - at));
  }
  EXPECT_EQ(one.digest(), pieces.digest());
  // Against the system's libxxhash when installed (Debian: libxxhash0).
  void* lib = dlopen("libxxhash.so.0", RTLD_NOW);
  if (!lib) GTEST_SKIP() << "libxxhash.so.0 not installed: the reference comparison is skipped";
  using Fn = unsigned long long (*)(const void*, size_t, unsigned long long);
  auto ref = reinterpret_cast<Fn>(dlsym(lib, "XXH64"));
  ASSERT_NE(ref, nullptr);
  for (size_t n : {0, 1, 3, 4, 7, 8, 15, 31, 32, 33, 63, 64, 100, 1000, 10007}) {
    ckpt::Xxh64 x;
    x.update(data.data(), n);
    EXPECT_EQ(x.digest(), ref(data.data(), n, 0)) << n << " bytes";
  }
  dlclose(lib);
}

}  // namespace
