// `dtrain train`'s TOML configuration, end to end through the program: values from the
// file, --set overrides with dotted keys, the canonical dump (--print-config, which stops
// before MPI starts), and the ConfigErrors for unknown keys, wrong types, bad values,
// malformed and missing files (exit code 2, the key and the file named).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace {

namespace fs = std::filesystem;

using CliRun = dtrain::testing::CommandResult;

CliRun dtrain(const std::string& args) { return dtrain::testing::run_dtrain(args); }

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

class TrainConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dtrain::testing::make_test_dir("config");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Writes `text` to NAME in the test's folder and returns the path.
  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  fs::path dir_;
};

constexpr const char* kBase = R"(
batch_size = 32
epochs = 2

[model]
name = "small_cnn"

[data]
train = "train.h5"
test = "test.h5"
augment.hflip = true

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9

[schedule]
name = "cosine"
warmup = 10
)";

TEST_F(TrainConfig, PrintsFileValuesAndDefaults) {
  std::string cfg = write("a.toml", kBase);
  CliRun r = dtrain("train " + cfg + " --print-config");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line : {"batch_size = 32\n", "epochs = 2\n", "model.name = \"small_cnn\"\n",
                           "data.train = \"train.h5\"\n", "data.augment.hflip = true\n", "optimizer.lr = 0.05\n",
                           "optimizer.momentum = 0.9\n", "schedule.name = \"cosine\"\n", "schedule.warmup = 10\n",
                           // defaults
                           "grad_accum = 1\n", "device = \"cpu\"\n", "optimizer.betas = [0.9, 0.999]\n",
                           "log.interval = 50\n", "eval.interval = 0\n", "buckets.mib = 25.0\n"}) {
    EXPECT_TRUE(contains(r.output, line)) << "missing '" << line << "' in\n" << r.output;
  }
}

TEST_F(TrainConfig, SetOverridesDottedKeysInOrder) {
  std::string cfg = write("a.toml", kBase);
  CliRun r = dtrain("train " + cfg +
                    " --set optimizer.lr=0.5 --set model.name=mlp --set data.augment.hflip=false"
                    " --set optimizer.betas=[0.8,0.95] --set log.metrics=out/m.jsonl --set=batch_size=8"
                    " --set batch_size=16 --set data.test=\"\" --print-config");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line : {"optimizer.lr = 0.5\n", "model.name = \"mlp\"\n", "data.augment.hflip = false\n",
                           "optimizer.betas = [0.8, 0.95]\n", "log.metrics = \"out/m.jsonl\"\n",
                           "batch_size = 16\n", "data.test = \"\"\n"}) {
    EXPECT_TRUE(contains(r.output, line)) << "missing '" << line << "' in\n" << r.output;
  }
}

// Note [Non-ASCII outside strings]: a non-ASCII character where TOML allows none is
// reported with its line and column (toml++ itself would reach undefined behaviour on
// some); in comments and every kind of string it is kept.
TEST_F(TrainConfig, NonAsciiIsRefusedOutsideStringsAndKeptInThem) {
  std::string bad = write("bad.toml", "batch_size = 32\nepochs\xc2\xa1 = 2\n");
  CliRun r = dtrain("train " + bad);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, bad + ":2:7: not valid TOML: '\xc2\xa1' outside a string or comment")) << r.output;
  // A quote where no string may begin does not hide what follows it.
  std::string stray = write("stray.toml", "batch_size = 32\n[log]\ninterval= 2\"\xef\xbb\xb7x\"\n");
  CliRun q = dtrain("train " + stray);
  EXPECT_EQ(q.exit_code, 2) << q.output;
  EXPECT_TRUE(contains(q.output, stray + ":3:13: not valid TOML: '\xef\xbb\xb7' outside a string or comment")) << q.output;
  CliRun set = dtrain("train " + write("a.toml", kBase) + " --set optimizer.lr=0.5\xe3\x80\x80");
  EXPECT_EQ(set.exit_code, 2) << set.output;
  EXPECT_TRUE(contains(set.output, "optimizer.lr must be a number")) << set.output;

  // Comments, a basic string with an escaped quote, a multi-line literal string.
  std::string good = write("good.toml", std::string(kBase) +
                                            "# caf\xc3\xa9 \xc2\xa1\n"
                                            "[log]\n"
                                            "metrics = \"runs/caf\xc3\xa9 \\\"\xc2\xa1\\\".jsonl\"  # \xe2\x80\x94\n"
                                            "[checkpoint]\n"
                                            "dir = '''runs/\xc2\xa1'''\n");
  CliRun ok = dtrain("train " + good + " --print-config");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(contains(ok.output, "log.metrics = \"runs/caf\xc3\xa9 \\\"\xc2\xa1\\\".jsonl\"")) << ok.output;
  EXPECT_TRUE(contains(ok.output, "checkpoint.dir = \"runs/\xc2\xa1\"")) << ok.output;
}

TEST_F(TrainConfig, CanonicalDumpIsValidTomlThatRoundTrips) {
  std::string cfg = write("a.toml", kBase);
  CliRun first = dtrain("train " + cfg + " --set optimizer.weight_decay=5e-4 --print-config");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  std::string again = write("b.toml", first.output);
  CliRun second = dtrain("train " + again + " --print-config");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(first.output, second.output);
}

TEST_F(TrainConfig, UnknownKeyNamesTheKeyAndTheFile) {
  std::string cfg = write("typo.toml", std::string(kBase) + "\n[log]\nintervall = 10\n");
  CliRun r = dtrain("train " + cfg);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "unknown key 'log.intervall'")) << r.output;
  EXPECT_TRUE(contains(r.output, cfg)) << r.output;
  EXPECT_TRUE(contains(r.output, "interval")) << r.output;  // the keys of [log] are listed

  std::string t = write("table.toml", std::string(kBase) + "\n[optimiser]\nlr = 1\n");
  CliRun tr = dtrain("train " + t);
  EXPECT_EQ(tr.exit_code, 2) << tr.output;
  EXPECT_TRUE(contains(tr.output, "unknown table [optimiser]")) << tr.output;

}

TEST_F(TrainConfig, UnknownKeyInSet) {
  std::string cfg = write("a.toml", kBase);
  CliRun r = dtrain("train " + cfg + " --set optimizer.learning_rate=0.1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--set optimizer.learning_rate=0.1")) << r.output;
  EXPECT_TRUE(contains(r.output, "unknown key 'optimizer.learning_rate'")) << r.output;
  CliRun n = dtrain("train " + cfg + " --set lr");
  EXPECT_EQ(n.exit_code, 2) << n.output;
  EXPECT_TRUE(contains(n.output, "expected KEY=VALUE")) << n.output;
}

TEST_F(TrainConfig, WrongTypeNamesTheKeyAndTheTypes) {
  std::string cfg = write("types.toml", "seed = \"one\"\n" + std::string(kBase));
  CliRun r = dtrain("train " + cfg);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, cfg)) << r.output;
  EXPECT_TRUE(contains(r.output, "seed must be an integer, got a string")) << r.output;

  std::string base = write("a.toml", kBase);
  CliRun s = dtrain("train " + base + " --set optimizer.lr=fast");
  EXPECT_EQ(s.exit_code, 2) << s.output;
  EXPECT_TRUE(contains(s.output, "optimizer.lr must be a number, got 'fast'")) << s.output;
  CliRun b = dtrain("train " + base + " --set data.augment.hflip=1");
  EXPECT_EQ(b.exit_code, 2) << b.output;
  EXPECT_TRUE(contains(b.output, "data.augment.hflip must be true or false, got an integer")) << b.output;
  // A table written as a value.
  std::string v = write("value.toml", "model = \"mlp\"\n[data]\ntrain = \"x.h5\"\n");
  CliRun t = dtrain("train " + v);
  EXPECT_EQ(t.exit_code, 2) << t.output;
  EXPECT_TRUE(contains(t.output, "'model' is a table")) << t.output;
  EXPECT_TRUE(contains(t.output, "model.name")) << t.output;
}

TEST_F(TrainConfig, BadValuesAreRejectedWithTheirKey) {
  std::string cfg = write("a.toml", kBase);
  struct Case {
    const char* set;
    const char* message;
  };
  for (const Case& c : {Case{"optimizer.name=rmsprop", "optimizer.name must be one of sgd, adam, adamw; got 'rmsprop'"},
                        Case{"batch_size=0", "batch_size must be >= 1"},
                        Case{"model.name=resnet", "model.name must be one of"},
                        Case{"optimizer.lr=-1", "optimizer.lr must be > 0"},
                        Case{"optimizer.betas=[0.9]", "optimizer.betas must be two numbers"},
                        Case{"device=tpu", "device must be one of cpu, cuda"},
                        Case{"schedule.name=linear", "schedule.name must be one of constant, step, cosine"}}) {
    CliRun r = dtrain("train " + cfg + " --set " + c.set);
    EXPECT_EQ(r.exit_code, 2) << c.set << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, c.message)) << c.set << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, std::string("--set ") + c.set)) << r.output;
  }
  std::string bad = write("bad.toml", "grad_accum = 0\n" + std::string(kBase));
  CliRun r = dtrain("train " + bad);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, bad + ": grad_accum must be >= 1")) << r.output;
}

TEST_F(TrainConfig, MissingMalformedAndIncompleteFiles) {
  CliRun missing = dtrain("train " + (dir_ / "nope.toml").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "cannot read the config file")) << missing.output;
  EXPECT_TRUE(contains(missing.output, "nope.toml")) << missing.output;

  std::string broken = write("broken.toml", "batch_size = 32\n[optimizer\nlr = 1\n");
  CliRun m = dtrain("train " + broken);
  EXPECT_EQ(m.exit_code, 2) << m.output;
  EXPECT_TRUE(contains(m.output, broken + ":2:")) << m.output;
  EXPECT_TRUE(contains(m.output, "not valid TOML")) << m.output;

  // A table header whose key starts with '=' (Note [toml++'s internal checks]): reported
  // as bad TOML, never an assertion of the parser's.
  std::string header = write("header.toml", "batch_size = 32\n[=]\nlr = 1\n");
  CliRun h = dtrain("train " + header);
  EXPECT_EQ(h.exit_code, 2) << h.output;
  EXPECT_TRUE(contains(h.output, header + ":2:")) << h.output;
  EXPECT_TRUE(contains(h.output, "expected bare key starting character")) << h.output;

  std::string empty = write("empty.toml", "epochs = 1\n");
  CliRun e = dtrain("train " + empty);
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_TRUE(contains(e.output, "data.train is required")) << e.output;

  CliRun none = dtrain("train");
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_TRUE(contains(none.output, "missing argument CONFIG")) << none.output;
}

TEST_F(TrainConfig, ShippedConfigsParse) {
  for (const char* name : {"fashion_mnist_cnn.toml", "vgg16_cifar.toml"}) {
    fs::path p = fs::path(dtrain::testing::fixture_path("")).parent_path().parent_path().parent_path() / "configs" / name;
    if (!fs::exists(p)) GTEST_SKIP() << p << " not found (tests run outside the source tree)";
    CliRun r = dtrain("train " + p.string() + " --print-config");
    EXPECT_EQ(r.exit_code, 0) << name << "\n" << r.output;
  }
}

}  // namespace
