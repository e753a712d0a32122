// Tab-separated sentence pairs to sequence-pair HDF5 files: see convert.h.
//
// Pipeline: parse lines (source TAB target), drop malformed lines and exact duplicates
// (keeping the first), drop pairs with a side over max_chars characters (UTF-8 code
// points), shuffle with a Philox stream seeded by `seed` and cut the test share off the
// front, tokenize (words, or characters: `tokens`), build each side's vocabulary from the
// train split (specials first, then tokens by descending frequency, ties by byte order),
// and encode: src = tokens </s>, tgt = <s> tokens </s>, padded with <pad> (id 0) to the
// longest sequence of either split. Tokenizing after the shuffle keeps the split
// independent of the token mode.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/rng.h"
#include "datasets/convert.h"
#include "datasets/convert_text.h"
#include "datasets/schema.h"

namespace dtrain::data {

namespace {

using detail::build_vocab;
using detail::trim;
using detail::utf8_chars;
using detail::Vocab;

// <s>? words </s> as ids, unknown words as <unk> (id 3).
std::vector<int32_t> encode(const std::vector<std::string>& words, const Vocab& v, bool with_bos, int64_t* unknown) {
  std::vector<int32_t> ids;
  if (with_bos) ids.push_back(1);
  for (const std::string& w : words) {
    auto it = v.ids.find(w);
    if (it == v.ids.end()) ++*unknown;
    ids.push_back(it == v.ids.end() ? 3 : it->second);
  }
  ids.push_back(2);
  return ids;
}

void write_split(const std::string& path, const std::vector<std::vector<int32_t>>& src,
                 const std::vector<std::vector<int32_t>>& tgt, int64_t src_len, int64_t tgt_len, const Vocab& sv,
                 const Vocab& tv, const std::string& tokens, const WriteOptions& options) {
  const int64_t n = static_cast<int64_t>(src.size());
  DT_CHECK_AS(n > 0, IoError, "convert_pairs: the split written to '", path,
              "' would be empty; lower max_chars filtering or change test_fraction");
  io::H5File f = io::H5File::create(path);
  io::CreateOptions co{options.chunk_rows, options.gzip_level, false, options.checksum};
  detail::write_padded(f, "/src", "/src_len", src, src_len, co);
  detail::write_padded(f, "/tgt", "/tgt_len", tgt, tgt_len, co);
  f.write_strings("/src_vocab", sv.words);
  f.write_strings("/tgt_vocab", tv.words);
  f.set_attribute("/", "format", std::string("dtrain sequence-pair dataset v1"));
  f.set_attribute("/", "tokens", tokens);
  f.close();
}

}  // namespace

std::vector<std::string> tokenize(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      flush();
    } else if (c < 0x80 && std::ispunct(c) && c != '\'' && c != '-') {
      flush();
      out.emplace_back(1, ch);
    } else {
      cur.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : ch);
    }
  }
  flush();
  return out;
}

std::vector<std::string> tokenize_chars(const std::string& text) {
  std::vector<std::string> out;
  bool space = false;  // a whitespace run is pending (emitted before the next character)
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {  // the word tokenizer's whitespace
      space = !out.empty();  // leading whitespace is dropped
      continue;
    }
    if (space) out.emplace_back(" ");
    space = false;
    if ((c & 0xC0) == 0x80 && !out.empty() && out.back() != " ") {
      out.back().push_back(ch);  // a continuation byte extends the current code point
    } else {
      out.emplace_back(1, c < 0x80 ? static_cast<char>(std::tolower(c)) : ch);
    }
  }
  return out;  // a trailing whitespace run was never emitted
}

std::string convert_pairs(const std::string& tsv, const std::string& out_train, const std::string& out_test,
                          const PairsOptions& options, const WriteOptions& write) {
  DT_CHECK(options.test_fraction >= 0 && options.test_fraction < 1, "convert_pairs: test_fraction ",
           options.test_fraction, " is not in [0, 1)");
  DT_CHECK(options.min_count >= 1, "convert_pairs: min_count must be at least 1");
  DT_CHECK(options.tokens == "words" || options.tokens == "chars", "convert_pairs: tokens '", options.tokens,
           "' is not a token mode; choose 'words' or 'chars'");
  const bool chars = options.tokens == "chars";
  std::ifstream in(tsv);
  if (!in) DT_THROW(IoError, "cannot read sentence pairs from '", tsv, "': no such file or not readable");
  std::vector<std::pair<std::string, std::string>> pairs;
  std::set<std::pair<std::string, std::string>> seen;
  int64_t lines = 0, malformed = 0, duplicates = 0, too_long = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++lines;
    size_t tab = line.find('\t');
    std::string a = tab == std::string::npos ? "" : trim(line.substr(0, tab));
    std::string b = tab == std::string::npos ? "" : trim(line.substr(tab + 1));
    if (a.empty() || b.empty() || b.find('\t') != std::string::npos) {
      ++malformed;
      continue;
    }
    if (!seen.insert({a, b}).second) {
      ++duplicates;
      continue;
    }
    if (options.max_chars > 0 && (utf8_chars(a) > options.max_chars || utf8_chars(b) > options.max_chars)) {
      ++too_long;
      continue;
    }
    pairs.emplace_back(std::move(a), std::move(b));
  }
  if (in.bad()) DT_THROW(IoError, "cannot read sentence pairs from '", tsv, "': read error");
  DT_CHECK_AS(!pairs.empty(), IoError, "'", tsv, "': no usable sentence pairs (", lines, " lines, ", malformed,
              " without a source TAB target, ", too_long, " over ", options.max_chars, " characters)");

  Generator g = Generator::derive(options.seed, 0, "pairs.split");
  detail::shuffle(pairs, g);
  const size_t n_test = static_cast<size_t>(static_cast<double>(pairs.size()) * options.test_fraction + 0.5);

  std::vector<std::vector<std::string>> src_words, tgt_words;
  for (const auto& [a, b] : pairs) {
    src_words.push_back(chars ? tokenize_chars(a) : tokenize(a));
    tgt_words.push_back(chars ? tokenize_chars(b) : tokenize(b));
  }
  std::vector<std::vector<std::string>> train_src(src_words.begin() + static_cast<std::ptrdiff_t>(n_test), src_words.end());
  std::vector<std::vector<std::string>> train_tgt(tgt_words.begin() + static_cast<std::ptrdiff_t>(n_test), tgt_words.end());
  Vocab sv = build_vocab(train_src, options.min_count), tv = build_vocab(train_tgt, options.min_count);

  std::vector<std::vector<int32_t>> src_ids, tgt_ids;
  int64_t src_len = 1, tgt_len = 1, unk_test = 0, unk_train = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    int64_t* unk = i < n_test ? &unk_test : &unk_train;
    src_ids.push_back(encode(src_words[i], sv, false, unk));
    tgt_ids.push_back(encode(tgt_words[i], tv, true, unk));
    src_len = std::max<int64_t>(src_len, static_cast<int64_t>(src_ids.back().size()));
    tgt_len = std::max<int64_t>(tgt_len, static_cast<int64_t>(tgt_ids.back().size()));
  }
  auto part = [&](const std::vector<std::vector<int32_t>>& v, bool test) {
    return test ? std::vector<std::vector<int32_t>>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n_test))
                : std::vector<std::vector<int32_t>>(v.begin() + static_cast<std::ptrdiff_t>(n_test), v.end());
  };
  write_split(out_train, part(src_ids, false), part(tgt_ids, false), src_len, tgt_len, sv, tv, options.tokens,
              write);
  if (n_test > 0) {
    write_split(out_test, part(src_ids, true), part(tgt_ids, true), src_len, tgt_len, sv, tv, options.tokens, write);
  }

  std::ostringstream os;
  os << "read " << lines << " lines of " << tsv << ": " << malformed << " malformed, " << duplicates
     << " duplicate pairs, " << too_long << " over " << options.max_chars << " characters; kept " << pairs.size()
     << " pairs\n"
     << "wrote " << out_train << ": " << pairs.size() - n_test << " pairs; ";
  if (n_test > 0) {
    os << "wrote " << out_test << ": " << n_test << " pairs (" << unk_test << " unknown "
       << (chars ? "characters" : "words") << ")";
  } else {
    os << "no test file (test_fraction 0)";
  }
  os << "\n" << (chars ? "character" : "word") << " vocabularies (from the train split, min count "
     << options.min_count << "): source " << sv.words.size() << ", target " << tv.words.size()
     << " tokens; longest sequence: source " << src_len << ", target " << tgt_len << " tokens with </s> and <s>";
  return os.str();
}

}  // namespace dtrain::data
