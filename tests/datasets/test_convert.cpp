// Converters (IDX plain and gzip, CIFAR-10, sentence pairs), synthetic sets, and `dtrain
// data` end to end. (The HDF5 row API they write through: tests/core/test_h5.cpp; reading
// it back in row ranges: test_row_reader.cpp.)
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "data_test_util.h"
#include "datasets/convert.h"
#include "datasets/schema.h"
#include "datasets/text.h"
#include "tests/support/run.h"

namespace dtrain::data {
namespace {

using testing::TempDirTest;

class ConvertTest : public TempDirTest {};

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
  }
}

// IDX images (n, 3, 2) with pixel i*6+j and labels i % 3.
void write_idx(const std::string& images, const std::string& labels, int n, bool gzip) {
  std::vector<uint8_t> img, lab;
  put_be32(img, 0x803);
  put_be32(img, static_cast<uint32_t>(n));
  put_be32(img, 3);
  put_be32(img, 2);
  for (int i = 0; i < n * 6; ++i) img.push_back(static_cast<uint8_t>(i));
  put_be32(lab, 0x801);
  put_be32(lab, static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) lab.push_back(static_cast<uint8_t>(i % 3));
  write_bytes(images, img, gzip);
  write_bytes(labels, lab, gzip);
}

TEST_F(ConvertTest, IdxPlainAndGzip) {
  for (bool gz : {false, true}) {
    std::string im = file(gz ? "i.gz" : "i.idx"), lb = file(gz ? "l.gz" : "l.idx"), out = file("out.h5");
    write_idx(im, lb, 10, gz);
    convert_idx(im, lb, out, {"a", "b", "c"}, {4, gz ? 3 : 0});
    io::H5File f = io::H5File::open_read(out);
    ImageSchema s = validate_images(f, true);
    EXPECT_EQ(s.n, 10);
    EXPECT_EQ(s.height, 3);
    EXPECT_EQ(s.width, 2);
    EXPECT_EQ(s.channels, 1);
    EXPECT_EQ(s.chunk_rows, 4);
    EXPECT_EQ(s.classes, (std::vector<std::string>{"a", "b", "c"}));
    // Checksums by default (WriteOptions::checksum), last in the pipeline.
    EXPECT_EQ(s.filters, gz ? (std::vector<std::string>{"gzip(3)", "fletcher32"})
                            : (std::vector<std::string>{"fletcher32"}));
    std::vector<uint8_t> px = f.read("/images").to_vector<uint8_t>();
    for (int i = 0; i < 60; ++i) ASSERT_EQ(px[static_cast<size_t>(i)], i);
    EXPECT_EQ(f.read("/labels").to_vector<int64_t>()[4], 1);
    EXPECT_NEAR(s.mean[0], 29.5 / 255.0, 1e-9);
  }
}

TEST_F(ConvertTest, IdxErrorsNameTheFile) {
  std::string im = file("i.idx"), lb = file("l.idx");
  write_idx(im, lb, 10, false);
  // Swapped arguments: wrong magic.
  try {
    convert_idx(lb, im, file("o.h5"), {}, {});
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(lb), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("magic"), std::string::npos);
  }
  std::filesystem::resize_file(im, 40);
  try {
    convert_idx(im, lb, file("o.h5"), {}, {});
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(convert_idx(file("none"), lb, file("o.h5"), {}, {}), IoError);
  // Sizes whose product passes 2^64 (found by fuzzing: the product overflowed int64).
  std::vector<uint8_t> huge;
  put_be32(huge, 0x803);
  for (int i = 0; i < 3; ++i) put_be32(huge, 0xffffffffu);
  huge.resize(huge.size() + 6);
  write_bytes(im, huge, false);
  try {
    convert_idx(im, lb, file("o.h5"), {}, {});
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("promises more than 2^64 bytes of data but the file holds 6"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(ConvertTest, Cifar) {
  std::vector<uint8_t> bytes;
  for (int r = 0; r < 3; ++r) {
    bytes.push_back(static_cast<uint8_t>(r + 7));
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) bytes.push_back(static_cast<uint8_t>(c * 50 + r));
    }
  }
  write_bytes(file("b1.bin"), bytes, false);
  write_bytes(file("b2.bin"), bytes, false);
  convert_cifar({file("b1.bin"), file("b2.bin")}, file("c.h5"), {}, {});
  io::H5File f = io::H5File::open_read(file("c.h5"));
  ImageSchema s = validate_images(f, true);
  EXPECT_EQ(s.n, 6);
  EXPECT_EQ(s.channels, 3);
  EXPECT_EQ(s.classes.at(9), "truck");
  Tensor row = f.read_rows("/images", 4, 1);  // file 2, record 1
  std::vector<uint8_t> v = row.to_vector<uint8_t>();
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 51);
  EXPECT_EQ(v[2], 101);
  EXPECT_EQ(f.read("/labels").to_vector<int64_t>(), (std::vector<int64_t>{7, 8, 9, 7, 8, 9}));
  bytes.pop_back();
  write_bytes(file("bad.bin"), bytes, false);
  EXPECT_THROW(convert_cifar({file("bad.bin")}, file("d.h5"), {}, {}), IoError);
}

TEST_F(ConvertTest, PairsDedupeFilterSplitAndVocabulary) {
  {
    std::ofstream tsv(file("p.tsv"));
    for (int i = 0; i < 40; ++i) tsv << "The cat " << i << ".\tDie Katze " << i << ".\n";
    tsv << "The cat 1.\tDie Katze 1.\n";  // duplicate
    tsv << "no tab here\n";
    tsv << "a very long sentence that goes on and on\tkurz\n";
    tsv << "Grüße\tGrüße aus Köln\n";
  }
  PairsOptions o;
  o.max_chars = 20;
  o.test_fraction = 0.25;
  o.seed = 9;
  std::string report = convert_pairs(file("p.tsv"), file("train.h5"), file("test.h5"), o, {16, 0});
  EXPECT_NE(report.find("1 malformed"), std::string::npos) << report;
  EXPECT_NE(report.find("1 duplicate"), std::string::npos) << report;
  EXPECT_NE(report.find("kept 41 pairs"), std::string::npos) << report;
  io::H5File tr = io::H5File::open_read(file("train.h5")), te = io::H5File::open_read(file("test.h5"));
  PairSchema a = validate_pairs(tr), b = validate_pairs(te);
  EXPECT_EQ(a.n + b.n, 41);
  EXPECT_EQ(b.n, 10);
  EXPECT_EQ(a.src_vocab, b.src_vocab);
  EXPECT_EQ(std::vector<std::string>(a.src_vocab.begin(), a.src_vocab.begin() + 4), kSpecialTokens);
  EXPECT_EQ(a.chunk_rows, 16);
  // Deterministic by seed.
  convert_pairs(file("p.tsv"), file("train2.h5"), file("test2.h5"), o, {16, 0});
  io::H5File tr2 = io::H5File::open_read(file("train2.h5"));
  EXPECT_EQ(tr.read("/src").to_vector<int32_t>(), tr2.read("/src").to_vector<int32_t>());
  // tgt rows start with <s> and end with </s> at tgt_len - 1.
  std::vector<int32_t> tgt = tr.read("/tgt").to_vector<int32_t>(), len = tr.read("/tgt_len").to_vector<int32_t>();
  for (int64_t i = 0; i < a.n; ++i) {
    EXPECT_EQ(tgt[static_cast<size_t>(i * a.tgt_max_len)], 1);
    EXPECT_EQ(tgt[static_cast<size_t>(i * a.tgt_max_len + len[static_cast<size_t>(i)] - 1)], 2);
  }
  EXPECT_EQ(tokenize("The cat's toy, isn't it?"),
            (std::vector<std::string>{"the", "cat's", "toy", ",", "isn't", "it", "?"}));
  EXPECT_EQ(tr.get_attribute<std::string>("/", "tokens"), "words");
  EXPECT_EQ(a.tokens, "words");
}

TEST_F(ConvertTest, PairsCharsEncoding) {
  EXPECT_EQ(tokenize_chars("  A\tb  c, \r\n"), (std::vector<std::string>{"a", " ", "b", " ", "c", ","}));
  // 2-, 3- and 4-byte UTF-8 characters are one token each; only ASCII is lowercased.
  EXPECT_EQ(tokenize_chars("Kö€\xF0\x9F\x98\x80Ä"),
            (std::vector<std::string>{"k", "ö", "€", "\xF0\x9F\x98\x80", "Ä"}));
  EXPECT_TRUE(tokenize_chars(" \t ").empty());

  std::ofstream(file("c.tsv")) << "Ba   ää b \tÄb\n";
  PairsOptions o;
  o.test_fraction = 0;
  o.tokens = "chars";
  std::string report = convert_pairs(file("c.tsv"), file("train.h5"), file("test.h5"), o, {16, 0});
  EXPECT_NE(report.find("character vocabularies"), std::string::npos) << report;
  io::H5File f = io::H5File::open_read(file("train.h5"));
  PairSchema s = validate_pairs(f);
  EXPECT_EQ(s.tokens, "chars");
  EXPECT_EQ(f.get_attribute<std::string>("/", "tokens"), "chars");
  // Source "ba ää b": ' ', b, ä twice each (in byte order), then a once.
  EXPECT_EQ(s.src_vocab, (std::vector<std::string>{"<pad>", "<s>", "</s>", "<unk>", " ", "b", "ä", "a"}));
  // Target "Äb": once each, b (0x62) before Ä (0xC3 0x84).
  EXPECT_EQ(s.tgt_vocab, (std::vector<std::string>{"<pad>", "<s>", "</s>", "<unk>", "b", "Ä"}));
  // src = b a ' ' ä ä ' ' b </s>; tgt = <s> Ä b </s>.
  EXPECT_EQ(f.read("/src").to_vector<int32_t>(), (std::vector<int32_t>{5, 7, 4, 6, 6, 4, 5, 2}));
  EXPECT_EQ(f.read("/src_len").to_vector<int32_t>(), (std::vector<int32_t>{8}));
  EXPECT_EQ(f.read("/tgt").to_vector<int32_t>(), (std::vector<int32_t>{1, 5, 4, 2}));
  EXPECT_EQ(f.read("/tgt_len").to_vector<int32_t>(), (std::vector<int32_t>{4}));

  o.tokens = "bytes";
  EXPECT_THROW(convert_pairs(file("c.tsv"), file("train.h5"), file("test.h5"), o, {16, 0}), ValueError);
}

// Row i of a sequence-pair dataset as text.
std::string row_text(const io::H5File& f, const std::string& data, const std::vector<std::string>& vocab, int64_t i,
                     const std::string& tokens) {
  std::vector<int32_t> all = f.read(data).to_vector<int32_t>();
  const int64_t lmax = f.shape_of(data)[1];
  std::vector<int64_t> ids(all.begin() + i * lmax, all.begin() + (i + 1) * lmax);
  return detokenize(ids, vocab, tokens);
}

std::string without_spaces(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ' '), s.end());
  return s;
}

TEST_F(ConvertTest, PairsCharsSplitMatchesWords) {
  // 64 distinct pairs; each word and character occurs in at least 32 of them, so all are in
  // the train vocabulary of either mode whatever the split, and rows decode exactly.
  std::map<std::string, std::string> expected;  // normalized source -> normalized target
  {
    std::ofstream tsv(file("p.tsv"));
    for (int i = 0; i < 64; ++i) {
      std::string src, tgt;
      for (int k = 0; k < 6; ++k) {
        bool bit = (i >> k) & 1;
        src += std::string(k ? "  " : "") + (bit ? "B" : "a") + std::to_string(k);
        tgt += std::string(k ? " " : "") + (bit ? "ö" : "ä") + std::to_string(k);
      }
      tsv << src << ".\t" << tgt << "!\n";
      std::string norm_src;
      for (const std::string& c : tokenize_chars(src + ".")) norm_src += c;
      expected[norm_src] = tgt + "!";
    }
  }
  ASSERT_EQ(expected.size(), 64u);
  PairsOptions o;
  o.test_fraction = 0.25;
  o.seed = 5;
  convert_pairs(file("p.tsv"), file("w_train.h5"), file("w_test.h5"), o, {16, 0});
  o.tokens = "chars";
  convert_pairs(file("p.tsv"), file("c_train.h5"), file("c_test.h5"), o, {16, 0});
  std::set<std::string> seen;
  for (const char* split : {"train", "test"}) {
    io::H5File w = io::H5File::open_read(file(std::string("w_") + split + ".h5"));
    io::H5File c = io::H5File::open_read(file(std::string("c_") + split + ".h5"));
    PairSchema ws = validate_pairs(w), cs = validate_pairs(c);
    EXPECT_EQ(ws.tokens, "words");
    EXPECT_EQ(cs.tokens, "chars");
    ASSERT_EQ(ws.n, cs.n) << split;
    EXPECT_EQ(cs.n, std::string(split) == "test" ? 16 : 48);
    for (int64_t i = 0; i < cs.n; ++i) {
      std::string csrc = row_text(c, "/src", cs.src_vocab, i, "chars");
      std::string ctgt = row_text(c, "/tgt", cs.tgt_vocab, i, "chars");
      ASSERT_EQ(expected.count(csrc), 1u) << csrc;
      EXPECT_EQ(ctgt, expected[csrc]);
      EXPECT_TRUE(seen.insert(csrc).second) << csrc << " twice";
      // The word file holds the same pair in the same row.
      std::string wsrc = row_text(w, "/src", ws.src_vocab, i, "words");
      std::string wtgt = row_text(w, "/tgt", ws.tgt_vocab, i, "words");
      EXPECT_EQ(without_spaces(wsrc), without_spaces(csrc)) << split << " row " << i;
      EXPECT_EQ(without_spaces(wtgt), without_spaces(ctgt)) << split << " row " << i;
      EXPECT_EQ(wsrc.find("<unk>"), std::string::npos) << wsrc;
    }
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST_F(ConvertTest, SynthIsSeeded) {
  synth_images(file("a.h5"), 50, 4, 4, 3, 5, 1, {8, 0});
  synth_images(file("b.h5"), 50, 4, 4, 3, 5, 1, {8, 0});
  synth_images(file("c.h5"), 50, 4, 4, 3, 5, 2, {8, 0});
  auto pixels = [&](const char* n) { return io::H5File::open_read(file(n)).read("/images").to_vector<uint8_t>(); };
  EXPECT_EQ(pixels("a.h5"), pixels("b.h5"));
  EXPECT_NE(pixels("a.h5"), pixels("c.h5"));
  io::H5File f = io::H5File::open_read(file("a.h5"));
  EXPECT_NO_THROW(validate_images(f, true));
  synth_pairs(file("p.h5"), 30, 5, 12, 1, {8, 0});
  io::H5File p = io::H5File::open_read(file("p.h5"));
  EXPECT_EQ(validate_pairs(p).tokens, "words");
  EXPECT_EQ(p.get_attribute<std::string>("/", "tokens"), "words");
}

using CliRun = dtrain::testing::CommandResult;

CliRun dtrain_cli(const std::string& args) { return dtrain::testing::run_dtrain(args); }

TEST_F(ConvertTest, DataCommandEndToEnd) {
  CliRun r = dtrain_cli("data synth images --out " + file("s.h5") + " --n 20 --height 4 --width 4 --classes 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = dtrain_cli("data inspect " + file("s.h5"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("validation: OK"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("classes: 2"), std::string::npos) << r.output;
  // Checksums by default; --no-checksum leaves them out (and inspect says so).
  EXPECT_NE(r.output.find("checksums: Fletcher-32 on every chunk (/images, /labels)"), std::string::npos) << r.output;
  r = dtrain_cli("data synth images --out " + file("n.h5") + " --n 20 --height 4 --width 4 --classes 2 --no-checksum");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = dtrain_cli("data inspect " + file("n.h5") + " --verify");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checksums: none"), std::string::npos) << r.output;
  std::ofstream(file("bad.h5")) << "nope";
  r = dtrain_cli("data inspect " + file("bad.h5"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not an HDF5 file"), std::string::npos) << r.output;
  r = dtrain_cli("data convert idx --out " + file("x.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--images is required"), std::string::npos) << r.output;
  std::ofstream(file("p.tsv")) << "Hallo Welt\tHello world\nJa\tYes\n";
  r = dtrain_cli("data convert pairs --input " + file("p.tsv") + " --out-train " + file("ptr.h5") + " --out-test " +
                 file("pte.h5") + " --test-fraction 0 --tokens chars");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = dtrain_cli("data inspect " + file("ptr.h5"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tokens: chars"), std::string::npos) << r.output;
  r = dtrain_cli("data convert pairs --input " + file("p.tsv") + " --out-train " + file("ptr.h5") + " --out-test " +
                 file("pte.h5") + " --tokens bytes");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--tokens must be 'words' or 'chars', got 'bytes'"), std::string::npos) << r.output;
  r = dtrain_cli("data convert nope");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* help : {"data --help", "data convert --help", "data convert idx --help", "data convert pairs --help",
                           "data convert cifar --help", "data synth images --help", "data synth pairs --help",
                           "data inspect --help"}) {
    r = dtrain_cli(help);
    EXPECT_EQ(r.exit_code, 0) << help << ": " << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << help;
  }
}

}  // namespace
}  // namespace dtrain::data
