// The language-identification word set: `dtrain data convert words` on tiny FreeDict
// index files (dedup, the cross-language rule, lower-casing, the seeded split and
// reproducible bytes, errors naming the package), the sequence-classification schema's
// validation, and the loader's batches of that kind (2-rank sharding, seek and resume).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "data_test_util.h"
#include "datasets/convert.h"
#include "datasets/inspect.h"
#include "datasets/loader.h"
#include "datasets/schema.h"
#include "tests/support/run.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;

class WordsTest : public TempDirTest {
 protected:
  // dir/freedict-<lang>-eng.index with one "headword<TAB>offset<TAB>length" line per word.
  void write_index(const std::string& lang, const std::vector<std::string>& heads) {
    std::ofstream f(file("freedict-" + lang + "-eng.index"));
    f << "00databaseinfo\tc\t4u\n00databaseutf8\tA\tB\n";
    for (const std::string& h : heads) f << h << "\tBA\tC\n";
  }
  WordsOptions options() const {
    WordsOptions o;
    o.dict_dir = dir_.string();
    o.test_fraction = 0;
    o.max_per_language = 0;
    return o;
  }
  // (word, language) of every row of a file, decoded through its vocabulary.
  static std::multiset<std::pair<std::string, std::string>> rows(const std::string& path) {
    io::H5File f = io::H5File::open_read(path);
    SequenceSchema s = validate_sequences(f);
    std::vector<int32_t> ids = f.read("/tokens").to_vector<int32_t>(), len = f.read("/lengths").to_vector<int32_t>();
    std::vector<int64_t> labels = f.read("/labels").to_vector<int64_t>();
    std::multiset<std::pair<std::string, std::string>> out;
    for (int64_t i = 0; i < s.n; ++i) {
      std::string w;
      for (int64_t j = 0; j < len[static_cast<size_t>(i)]; ++j) {
        w += s.vocab[static_cast<size_t>(ids[static_cast<size_t>(i * s.max_len + j)])];
      }
      out.insert({w, s.classes[static_cast<size_t>(labels[static_cast<size_t>(i)])]});
    }
    return out;
  }
  static std::string bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
};

TEST_F(WordsTest, DedupCrossLanguageCaseAndSchema) {
  write_index("deu", {"haus", "haus", "Straße", "ÜBER", "aber dalli", "c18", "sonne", "und", "abcdefghijk", "nacht"});
  write_index("fra", {"maison", "été", "chat", "Haus", "nuit", "et"});
  write_index("spa", {"casa", "chat", "noche", "y", "ÑANDÚ"});
  WordsOptions o = options();
  o.max_len = 10;
  std::string report = convert_words(file("train.h5"), file("test.h5"), o, {4, 0});
  // Default languages: every freedict-*-eng.index of the folder, sorted.
  EXPECT_NE(report.find("read 3 FreeDict dictionaries"), std::string::npos) << report;
  EXPECT_NE(report.find("2 not one word of letters"), std::string::npos) << report;
  EXPECT_NE(report.find("1 over 10 characters"), std::string::npos) << report;
  EXPECT_NE(report.find("1 duplicates within a language"), std::string::npos) << report;
  EXPECT_NE(report.find("2 words in several languages (4 entries"), std::string::npos) << report;
  EXPECT_NE(report.find("deu 5/5, fra 4/4, spa 4/4"), std::string::npos) << report;
  EXPECT_NE(report.find("no test file"), std::string::npos) << report;
  // "haus" (deu, and fra as "Haus") and "chat" (fra, spa) are dropped; case is folded.
  std::multiset<std::pair<std::string, std::string>> expected = {
      {"straße", "deu"}, {"über", "deu"},  {"sonne", "deu"}, {"und", "deu"},  {"nacht", "deu"},
      {"maison", "fra"}, {"été", "fra"},   {"nuit", "fra"},  {"et", "fra"},   {"casa", "spa"},
      {"noche", "spa"},  {"y", "spa"},     {"ñandú", "spa"}};
  EXPECT_EQ(rows(file("train.h5")), expected);

  io::H5File f = io::H5File::open_read(file("train.h5"));
  EXPECT_EQ(detect_kind(f), Kind::SequenceClassification);
  SequenceSchema s = validate_sequences(f);
  EXPECT_EQ(s.n, 13);
  EXPECT_EQ(s.max_len, 6);  // "straße", "maison", "ñandú"... the longest word
  EXPECT_EQ(s.classes, (std::vector<std::string>{"deu", "fra", "spa"}));
  EXPECT_EQ(std::vector<std::string>(s.vocab.begin(), s.vocab.begin() + 4), kSpecialTokens);
  EXPECT_EQ(s.tokens, "chars");
  EXPECT_EQ(s.cross_language, "dropped");
  EXPECT_EQ(s.letter_case, "lower");
  EXPECT_EQ(s.chunk_rows, 4);
  EXPECT_EQ(f.dtype_of("/labels"), DType::I64);
  // Every character is one token: 'ß', 'ü', 'é', 'ñ', 'ú' each have a vocabulary entry.
  for (const char* c : {"ß", "ü", "é", "ñ", "ú", "a"}) {
    EXPECT_NE(std::find(s.vocab.begin(), s.vocab.end(), c), s.vocab.end()) << c;
  }
  std::string text = inspect(file("train.h5")).text;
  EXPECT_NE(text.find("schema: sequence classification"), std::string::npos) << text;
  EXPECT_NE(text.find("cross_language: dropped"), std::string::npos) << text;
  EXPECT_NE(text.find("0 deu: 5"), std::string::npos) << text;

  EXPECT_EQ(lowercase_utf8("ÀÉÎÕÜ ŁŚŹŻĄĘĆŃ ÅÄÖ ΑΒΓ АБВ Ÿ"), "àéîõü łśźżąęćń åäö αβγ абв ÿ");
  EXPECT_EQ(lowercase_utf8("ab\xC3"), "");  // cut-off UTF-8
}

TEST_F(WordsTest, SeededStratifiedSplitIsReproducible) {
  std::vector<std::string> deu, fra;
  for (int i = 0; i < 60; ++i) {
    std::string w;
    for (int k = i; k > 0 || w.empty(); k /= 5) w += static_cast<char>('a' + k % 5);
    deu.push_back("d" + w);
    fra.push_back("f" + w + "é");
  }
  write_index("deu", deu);
  write_index("fra", fra);
  WordsOptions o = options();
  o.languages = {"fra", "deu"};  // class order as given
  o.test_fraction = 0.25;
  o.max_per_language = 40;
  o.seed = 7;
  std::string report = convert_words(file("a_train.h5"), file("a_test.h5"), o, {8, 0});
  EXPECT_NE(report.find("fra 40/60, deu 40/60"), std::string::npos) << report;
  EXPECT_NE(report.find("40 over 40 per language"), std::string::npos) << report;
  auto train = rows(file("a_train.h5")), test = rows(file("a_test.h5"));
  EXPECT_EQ(train.size(), 60u);
  EXPECT_EQ(test.size(), 20u);
  std::map<std::string, int> test_per_lang;
  for (const auto& [w, l] : test) test_per_lang[l]++;
  EXPECT_EQ(test_per_lang, (std::map<std::string, int>{{"deu", 10}, {"fra", 10}}));  // stratified
  for (const auto& r : test) EXPECT_EQ(train.count(r), 0u) << r.first;
  io::H5File tr = io::H5File::open_read(file("a_train.h5")), te = io::H5File::open_read(file("a_test.h5"));
  SequenceSchema a = validate_sequences(tr), b = validate_sequences(te);
  EXPECT_EQ(a.classes, (std::vector<std::string>{"fra", "deu"}));
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.max_len, b.max_len);  // padded to the longest word of either split

  // Same inputs and seed: the same bytes; another seed: another sample and split.
  convert_words(file("b_train.h5"), file("b_test.h5"), o, {8, 0});
  EXPECT_EQ(bytes(file("a_train.h5")), bytes(file("b_train.h5")));
  EXPECT_EQ(bytes(file("a_test.h5")), bytes(file("b_test.h5")));
  o.seed = 8;
  convert_words(file("c_train.h5"), file("c_test.h5"), o, {8, 0});
  EXPECT_NE(rows(file("c_test.h5")), test);
}

TEST_F(WordsTest, ErrorsNameThePackageAndTheProblem) {
  write_index("deu", {"haus", "sonne"});
  WordsOptions o = options();
  o.languages = {"deu", "xyz"};
  try {
    convert_words(file("t.h5"), file("e.h5"), o, {});
    ADD_FAILURE() << "no error for a missing dictionary";
  } catch (const IoError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("freedict-xyz-eng.index"), std::string::npos) << msg;
    EXPECT_NE(msg.find("apt-get install dict-freedict-xyz-eng"), std::string::npos) << msg;
  }
  write_index("fra", {"12", "a b", "haus"});  // nothing left for fra
  o.languages = {"deu", "fra"};
  try {
    convert_words(file("t.h5"), file("e.h5"), o, {});
    ADD_FAILURE() << "no error for a language without words";
  } catch (const IoError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("no words left for language 'fra'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 also in another language"), std::string::npos) << msg;
  }
  o.languages = {"deu"};
  EXPECT_THROW(convert_words(file("t.h5"), file("e.h5"), o, {}), ValueError);  // one class
  o.languages = {};
  o.dict_dir = file("empty");
  std::filesystem::create_directories(o.dict_dir);
  try {
    convert_words(file("t.h5"), file("e.h5"), o, {});
    ADD_FAILURE() << "no error for a folder without dictionaries";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dict-freedict-"), std::string::npos) << e.what();
  }
}

TEST_F(WordsTest, CommandLine) {
  write_index("deu", {"haus", "sonne", "nacht"});
  write_index("ita", {"casa", "sole", "notte"});
  auto r = dtrain::testing::run_dtrain("data convert words --dict-dir " + dir_.string() + " --out-train " +
                                       file("tr.h5") + " --out-test " + file("te.h5") + " --test-fraction 0.34");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("words per language (kept/available, lower-cased): deu 3/3, ita 3/3"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("character vocabulary"), std::string::npos) << r.output;
  r = dtrain::testing::run_dtrain("data inspect " + file("te.h5"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 ita: 1"), std::string::npos) << r.output;
  r = dtrain::testing::run_dtrain("data convert words --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--max-per-language"), std::string::npos) << r.output;
  r = dtrain::testing::run_dtrain("data convert words --dict-dir " + dir_.string() + " --languages deu,pol " +
                                  "--out-train " + file("tr.h5") + " --out-test " + file("te.h5"));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("apt-get install dict-freedict-pol-eng"), std::string::npos) << r.output;
  r = dtrain::testing::run_dtrain("data convert words --out-train " + file("tr.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--out-test is required"), std::string::npos) << r.output;
}

class SequenceSchemaTest : public TempDirTest {
 protected:
  // A valid 3-row file: "ab", "b", "aab" over the vocabulary specials + a b.
  std::string good() {
    std::string p = file("seq.h5");
    io::H5File f = io::H5File::create(p);
    f.write("/tokens", Tensor::from_vector<int32_t>({4, 5, 0, 5, 0, 0, 4, 4, 5}, {3, 3}));
    f.write("/lengths", Tensor::from_vector<int32_t>({2, 1, 3}, {3}));
    f.write("/labels", Tensor::from_vector<int64_t>({0, 1, 1}, {3}));
    f.write_strings("/vocab", {"<pad>", "<s>", "</s>", "<unk>", "a", "b"});
    f.set_attribute("/", "classes", std::vector<std::string>{"x", "y"});
    return p;
  }
  void expect_invalid(const std::string& path, const std::vector<std::string>& fragments) {
    for (int via_loader = 0; via_loader < 2; ++via_loader) {
      try {
        if (via_loader) {
          LoaderConfig c;
          c.path = path;
          c.batch_size = 2;
          Loader loader(c);
        } else {
          validate_sequences(io::H5File::open_read(path));
        }
        ADD_FAILURE() << "no error for " << path << (via_loader ? " (loader)" : "");
      } catch (const IoError& e) {
        std::string msg = e.what();
        for (const std::string& frag : fragments) {
          EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
        }
      }
    }
    EXPECT_FALSE(inspect(path).valid);
  }
  void edit(const std::function<void(io::H5File&)>& fn) {
    io::H5File f = io::H5File::open_readwrite(file("seq.h5"));
    fn(f);
  }
};

TEST_F(SequenceSchemaTest, GoodFileAndEachViolation) {
  std::string p = good();
  {
    io::H5File f = io::H5File::open_read(p);
    EXPECT_EQ(detect_kind(f), Kind::SequenceClassification);
    SequenceSchema s = validate_sequences(f);
    EXPECT_EQ(s.n, 3);
    EXPECT_EQ(s.max_len, 3);
    EXPECT_EQ(s.tokens, "chars");  // no attribute: characters
    EXPECT_EQ(class_counts(f, s), (std::vector<int64_t>{1, 2}));
  }
  edit([](io::H5File& f) { f.write("/labels", Tensor::from_vector<int64_t>({0, 2, 1}, {3})); });
  expect_invalid(p, {p, "/labels", "label 2 at row 1", "out of range [0, 2)"});
  edit([](io::H5File& f) { f.write("/labels", Tensor::from_vector<int32_t>({0, 1, 1}, {3})); });
  expect_invalid(p, {p, "/labels", "wrong dtype"});
  edit([](io::H5File& f) { f.write("/labels", Tensor::from_vector<int64_t>({0, 1}, {2})); });
  expect_invalid(p, {p, "/labels", "length mismatch"});
  edit([](io::H5File& f) { f.write("/labels", Tensor::from_vector<int64_t>({0, 1, 1}, {3})); });
  edit([](io::H5File& f) { f.write("/lengths", Tensor::from_vector<int32_t>({2, 0, 3}, {3})); });
  expect_invalid(p, {p, "/lengths", "length 0 at row 1", "outside [1, 3]"});
  edit([](io::H5File& f) { f.write("/lengths", Tensor::from_vector<int32_t>({2, 1, 2}, {3})); });
  expect_invalid(p, {p, "/tokens", "position 2", "past the row's length 2", "<pad>"});
  edit([](io::H5File& f) { f.write("/lengths", Tensor::from_vector<int32_t>({2, 1, 3}, {3})); });
  edit([](io::H5File& f) { f.write_strings("/vocab", {"<pad>", "<s>", "</s>", "<unk>", "a"}); });
  expect_invalid(p, {p, "/tokens", "token id 5", "outside the vocabulary [0, 5)"});
  edit([](io::H5File& f) { f.write_strings("/vocab", {"<pad>", "<s>", "</s>", "a", "b", "c"}); });
  expect_invalid(p, {p, "/vocab", "lacks the special token '<unk>'"});
  edit([](io::H5File& f) { f.write_strings("/vocab", {"<pad>", "<s>", "</s>", "<unk>", "a", "b"}); });
  edit([](io::H5File& f) { f.set_attribute("/", "tokens", "bytes"); });
  expect_invalid(p, {p, "attribute 'tokens'", "'bytes'"});
  edit([](io::H5File& f) { f.set_attribute("/", "tokens", "chars"); });
  edit([](io::H5File& f) { f.set_attribute("/", "classes", std::vector<std::string>{}); });
  expect_invalid(p, {p, "attribute 'classes'", "empty"});
  edit([](io::H5File& f) { f.set_attribute("/", "classes", std::vector<std::string>{"x", "y"}); });
  edit([](io::H5File& f) { f.write("/tokens", Tensor::from_vector<int64_t>({4, 5, 0, 5, 0, 0, 4, 4, 5}, {3, 3})); });
  expect_invalid(p, {p, "/tokens", "wrong dtype"});
  EXPECT_NO_THROW(validate_sequences(io::H5File::open_read(good())));
  std::string q = file("novocab.h5");
  {
    io::H5File f = io::H5File::create(q);
    f.write("/tokens", Tensor::from_vector<int32_t>({4, 5}, {2, 1}));
    f.write("/lengths", Tensor::from_vector<int32_t>({1, 1}, {2}));
    f.write("/labels", Tensor::from_vector<int64_t>({0, 0}, {2}));
    f.set_attribute("/", "classes", std::vector<std::string>{"x"});
  }
  expect_invalid(q, {q, "missing dataset '/vocab'", "sequence-classification schema"});
}

// Loader batches of a sequence-classification file: the planned rows' tokens, lengths and
// labels; 2 ranks split each global batch without overlap and together read what one rank
// at the doubled batch reads; seek and a fresh loader at a saved position resume exactly.
class WordsLoaderTest : public WordsTest {
 protected:
  std::string make_file() {
    std::vector<std::string> deu, ita;
    for (int i = 0; i < 50; ++i) {
      std::string w;
      for (int k = i; k > 0 || w.empty(); k /= 4) w += static_cast<char>('a' + k % 4);
      deu.push_back("ü" + w);
      ita.push_back(w + "òo");
    }
    write_index("deu", deu);
    write_index("ita", ita);
    WordsOptions o = options();
    convert_words(file("w.h5"), file("unused.h5"), o, {8, 0});
    return file("w.h5");
  }
  static LoaderConfig config(const std::string& path, int64_t batch, int world, int rank) {
    LoaderConfig c;
    c.path = path;
    c.batch_size = batch;
    c.world_size = world;
    c.rank = rank;
    c.seed = 3;
    c.window_blocks = 4;
    return c;
  }
  struct Row {
    std::vector<int32_t> tokens;
    int32_t length;
    int64_t label;
    bool operator<(const Row& o) const {
      return std::tie(tokens, length, label) < std::tie(o.tokens, o.length, o.label);
    }
    bool operator==(const Row& o) const = default;
  };
  static std::vector<Row> batch_rows(const Batch& b) {
    std::vector<Row> out;
    const int64_t l = b.tokens.size(1);
    for (int64_t i = 0; i < b.size; ++i) {
      const int32_t* t = b.tokens.data<int32_t>() + i * l;
      out.push_back({std::vector<int32_t>(t, t + l), b.lengths.data<int32_t>()[i], b.labels.data<int64_t>()[i]});
    }
    return out;
  }
};

TEST_F(WordsLoaderTest, BatchesShardingAndResume) {
  std::string p = make_file();
  io::H5File f = io::H5File::open_read(p);
  SequenceSchema s = validate_sequences(f);
  ASSERT_EQ(s.n, 100);
  std::vector<int32_t> tokens = f.read("/tokens").to_vector<int32_t>(), lengths = f.read("/lengths").to_vector<int32_t>();
  std::vector<int64_t> labels = f.read("/labels").to_vector<int64_t>();

  Loader one(config(p, 8, 1, 0));
  Loader r0(config(p, 4, 2, 0)), r1(config(p, 4, 2, 1));
  EXPECT_EQ(one.kind(), Kind::SequenceClassification);
  EXPECT_EQ(one.num_samples(), 100);
  EXPECT_EQ(one.sequence_schema().classes, (std::vector<std::string>{"deu", "ita"}));
  EXPECT_THROW(one.image_schema(), ValueError);
  EXPECT_EQ(r0.batches_per_epoch(), 12);
  std::vector<std::vector<Row>> history;
  std::vector<Position> positions;
  for (int step = 0; step < 15; ++step) {  // crosses into epoch 1
    positions.push_back(r0.position());
    Batch b0 = r0.next(), b1 = r1.next(), b = one.next();
    ASSERT_EQ(b0.tokens.shape(), (Shape{4, s.max_len}));
    ASSERT_EQ(b0.tokens.dtype(), DType::I32);
    ASSERT_EQ(b0.lengths.shape(), (Shape{4}));
    ASSERT_EQ(b0.lengths.dtype(), DType::I32);
    ASSERT_EQ(b0.labels.shape(), (Shape{4}));
    ASSERT_EQ(b0.labels.dtype(), DType::I64);
    EXPECT_FALSE(b0.images.defined());
    EXPECT_EQ(b0.next, b1.next);
    EXPECT_EQ(b0.next, b.next);
    // Each row is the file's row that the plan names.
    std::set<int64_t> seen;
    int64_t i = 0;
    std::vector<Row> got = batch_rows(b0);
    for (const RowRange& r : r0.sampler().plan(b0.at).ranges) {
      for (int64_t row = r.start; row < r.start + r.count; ++row, ++i) {
        seen.insert(row);
        const Row& x = got[static_cast<size_t>(i)];
        EXPECT_EQ(x.length, lengths[static_cast<size_t>(row)]);
        EXPECT_EQ(x.label, labels[static_cast<size_t>(row)]);
        EXPECT_EQ(x.tokens, std::vector<int32_t>(tokens.begin() + row * s.max_len,
                                                 tokens.begin() + (row + 1) * s.max_len));
      }
    }
    for (const RowRange& r : r1.sampler().plan(b1.at).ranges) {
      for (int64_t row = r.start; row < r.start + r.count; ++row) EXPECT_TRUE(seen.insert(row).second) << row;
    }
    EXPECT_EQ(seen.size(), 8u);
    // The two ranks together hold the single rank's batch of 8.
    std::vector<Row> both = got, single = batch_rows(b);
    for (const Row& x : batch_rows(b1)) both.push_back(x);
    std::sort(both.begin(), both.end());
    std::sort(single.begin(), single.end());
    EXPECT_EQ(both, single) << "step " << step;
    history.push_back(got);
  }
  // Resume at step 5 with a fresh loader, and by seek.
  Loader again(config(p, 4, 2, 0), positions[5]);
  for (size_t k = 5; k < 15; ++k) EXPECT_EQ(batch_rows(again.next()), history[k]) << "step " << k;
  r0.seek(positions[9]);
  for (size_t k = 9; k < 15; ++k) EXPECT_EQ(batch_rows(r0.next()), history[k]) << "step " << k;
  // Image augmentation does not apply to sequences.
  LoaderConfig aug = config(p, 4, 1, 0);
  aug.augment.hflip = true;
  EXPECT_THROW(Loader bad(aug), ValueError);
}

}  // namespace
}  // namespace dtrain::data
