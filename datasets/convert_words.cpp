// FreeDict headwords to language-identification files: see convert.h.
//
// Pipeline, per language in the order given: read the headwords of
// freedict-<lang>-eng.index (the first tab-separated field of each line; dictfmt writes
// them lower-cased and without punctuation, and the index needs no decompression), skip
// the 00database* header entries, lower-case (lowercase_utf8), keep those that are one
// word of letters (no ASCII space, digit, punctuation or control character, no Latin-1
// symbol U+0080..U+00BF, × or ÷, no General Punctuation U+2000..U+206F, valid UTF-8) of
// at most max_len characters, and deduplicate (a std::set: byte order). Then drop every
// word found in two or more languages (its label would be ambiguous), shuffle each
// language's words with a Philox stream seeded by (seed, "words.<lang>"), keep the first
// max_per_language, and cut the first test_fraction of them off for the test file
// (a split stratified by language). Each file's rows are then shuffled (streams
// "words.train" / "words.test"), the character vocabulary is built from the train split
// (detail::build_vocab), and the words are encoded one code point per token, without
// <s> or </s>, padded with <pad> to the longest word of either split.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "datasets/convert.h"
#include "datasets/convert_text.h"
#include "datasets/schema.h"

namespace dtrain::data {

namespace {

// Decodes UTF-8; false for a malformed sequence.
bool decode_utf8(const std::string& s, std::vector<uint32_t>* out) {
  out->clear();
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (extra < 0 || i + static_cast<size_t>(extra) >= s.size()) return false;  // bad lead byte, or cut short
    uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;  // overlong, surrogate
    out->push_back(cp);
    i += static_cast<size_t>(extra) + 1;
  }
  return true;
}

void encode_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t to_lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;  // Latin-1 capitals
  if (c == 0x178) return 0xFF;                             // Ÿ
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c % 2 == 0 ? c + 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 1 ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;  // Greek
  if (c >= 0x410 && c <= 0x42F) return c + 32;                // Cyrillic
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool is_letter(uint32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z';
  if (c < 0xC0 || c == 0xD7 || c == 0xF7) return false;
  return !(c >= 0x2000 && c <= 0x206F);
}

std::string index_path(const std::string& dir, const std::string& lang) {
  return (std::filesystem::path(dir) / ("freedict-" + lang + "-eng.index")).string();
}

struct Language {
  std::string code;
  int64_t entries = 0, not_words = 0, too_long = 0, duplicates = 0, shared = 0, sampled_out = 0;
  std::set<std::string> words;
  std::vector<std::string> kept;
};

void read_headwords(const std::string& dir, Language* lang, int64_t max_len) {
  const std::string path = index_path(dir, lang->code);
  std::ifstream in(path);
  if (!in) {
    DT_THROW(IoError, "no FreeDict dictionary for language '", lang->code, "': '", path,
             "' is missing or unreadable; install it with: apt-get install dict-freedict-", lang->code,
             "-eng (scripts/install-deps.sh installs the ones dtrain uses)");
  }
  std::string line;
  std::vector<uint32_t> cps;
  while (std::getline(in, line)) {
    std::string head = line.substr(0, line.find('\t'));
    if (head.rfind("00database", 0) == 0 || head.rfind("00-database", 0) == 0) continue;  // dictfmt's header
    ++lang->entries;
    std::string word = lowercase_utf8(head);
    if (word.empty() || !decode_utf8(word, &cps) || !std::all_of(cps.begin(), cps.end(), is_letter)) {
      ++lang->not_words;
      continue;
    }
    if (static_cast<int64_t>(cps.size()) > max_len) {
      ++lang->too_long;
      continue;
    }
    if (!lang->words.insert(word).second) ++lang->duplicates;
  }
  if (in.bad()) DT_THROW(IoError, "cannot read FreeDict index '", path, "': read error");
}

void write_split(const std::string& path, const std::vector<std::vector<int32_t>>& tokens,
                 const std::vector<int64_t>& labels, int64_t max_len, const detail::Vocab& vocab,
                 const std::vector<std::string>& classes, const WriteOptions& options) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  DT_CHECK_AS(n > 0, IoError, "convert_words: the split written to '", path,
              "' would be empty; raise max_per_language or change test_fraction");
  io::H5File f = io::H5File::create(path);
  io::CreateOptions co{options.chunk_rows, options.gzip_level, false, options.checksum};
  detail::write_padded(f, "/tokens", "/lengths", tokens, max_len, co);
  f.create_dataset("/labels", {n}, DType::I64, co);
  f.write_rows("/labels", 0, Tensor::from_vector(labels, {n}));
  f.write_strings("/vocab", vocab.words);
  f.set_attribute("/", "classes", classes);
  f.set_attribute("/", "format", std::string("dtrain sequence-classification dataset v1"));
  f.set_attribute("/", "tokens", std::string("chars"));
  f.set_attribute("/", "case", std::string("lower"));
  f.set_attribute("/", "cross_language", std::string("dropped"));
  f.set_attribute("/", "source", std::string("FreeDict headwords (Debian dict-freedict-<lang>-eng)"));
  f.close();
}

}  // namespace

std::string lowercase_utf8(const std::string& s) {
  std::vector<uint32_t> cps;
  if (!decode_utf8(s, &cps)) return {};
  std::string out;
  out.reserve(s.size());
  for (uint32_t c : cps) encode_utf8(to_lower(c), &out);
  return out;
}

std::vector<std::string> installed_freedict_languages(const std::string& dir) {
  std::vector<std::string> langs;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    const std::string pre = "freedict-", post = "-eng.index";
    if (name.size() > pre.size() + post.size() && name.rfind(pre, 0) == 0 &&
        name.compare(name.size() - post.size(), post.size(), post) == 0) {
      std::string code = name.substr(pre.size(), name.size() - pre.size() - post.size());
      if (code != "eng" && code.find('-') == std::string::npos) langs.push_back(code);
    }
  }
  std::sort(langs.begin(), langs.end());
  return langs;
}

std::string convert_words(const std::string& out_train, const std::string& out_test, const WordsOptions& options,
                          const WriteOptions& write) {
  DT_CHECK(options.test_fraction >= 0 && options.test_fraction < 1, "convert_words: test_fraction ",
           options.test_fraction, " is not in [0, 1)");
  DT_CHECK(options.max_len >= 1, "convert_words: max_len must be at least 1, got ", options.max_len);
  DT_CHECK(options.max_per_language >= 0, "convert_words: max_per_language must be >= 0 (0: all), got ",
           options.max_per_language);
  std::vector<std::string> codes = options.languages;
  if (codes.empty()) {
    codes = installed_freedict_languages(options.dict_dir);
    DT_CHECK_AS(!codes.empty(), IoError, "no FreeDict dictionaries (freedict-<lang>-eng.index) in '", options.dict_dir,
                "'; install some, e.g.: apt-get install dict-freedict-deu-eng dict-freedict-fra-eng "
                "dict-freedict-spa-eng (scripts/install-deps.sh installs the ones dtrain uses)");
  }
  std::set<std::string> unique_codes;
  for (const std::string& c : codes) {
    DT_CHECK(!c.empty() && c.find('/') == std::string::npos && c.find(',') == std::string::npos,
             "convert_words: '", c, "' is not a language code (e.g. deu, fra)");
    DT_CHECK(unique_codes.insert(c).second, "convert_words: language '", c, "' given twice");
  }
  DT_CHECK(codes.size() >= 2, "convert_words: language identification needs at least 2 languages, got ",
           codes.size(), " (", codes.empty() ? std::string() : codes[0], ")");

  std::vector<Language> langs(codes.size());
  for (size_t k = 0; k < codes.size(); ++k) {
    langs[k].code = codes[k];
    read_headwords(options.dict_dir, &langs[k], options.max_len);
  }
  // Words in several languages: counted over the deduplicated sets, then dropped.
  std::map<std::string, int> languages_of;
  for (const Language& l : langs) {
    for (const std::string& w : l.words) languages_of[w]++;
  }
  int64_t shared_words = 0;
  for (const auto& [w, c] : languages_of) shared_words += c > 1;
  for (Language& l : langs) {
    for (const std::string& w : l.words) {
      if (languages_of[w] > 1) {
        ++l.shared;
      } else {
        l.kept.push_back(w);
      }
    }
    DT_CHECK_AS(!l.kept.empty(), IoError, "FreeDict dictionary '", index_path(options.dict_dir, l.code), "': no words ",
                "left for language '", l.code, "' (", l.entries, " entries: ", l.not_words,
                " not one word of letters, ", l.too_long, " over ", options.max_len, " characters, ", l.shared,
                " also in another language)");
  }

  std::vector<std::pair<std::string, int64_t>> train, test;
  for (size_t k = 0; k < langs.size(); ++k) {
    Language& l = langs[k];
    Generator g = Generator::derive(options.seed, 0, ("words." + l.code).c_str());
    detail::shuffle(l.kept, g);
    if (options.max_per_language > 0 && static_cast<int64_t>(l.kept.size()) > options.max_per_language) {
      l.sampled_out = static_cast<int64_t>(l.kept.size()) - options.max_per_language;
      l.kept.resize(static_cast<size_t>(options.max_per_language));
    }
    const size_t n_test = static_cast<size_t>(static_cast<double>(l.kept.size()) * options.test_fraction + 0.5);
    for (size_t i = 0; i < l.kept.size(); ++i) {
      (i < n_test ? test : train).emplace_back(l.kept[i], static_cast<int64_t>(k));
    }
  }
  Generator gtrain = Generator::derive(options.seed, 0, "words.train");
  Generator gtest = Generator::derive(options.seed, 0, "words.test");
  detail::shuffle(train, gtrain);
  detail::shuffle(test, gtest);

  std::vector<std::vector<std::string>> train_chars;
  for (const auto& [w, k] : train) train_chars.push_back(tokenize_chars(w));
  detail::Vocab vocab = detail::build_vocab(train_chars, 1);
  int64_t max_len = 1, unknown_test = 0;
  auto encode = [&](const std::vector<std::pair<std::string, int64_t>>& split, std::vector<std::vector<int32_t>>* ids,
                    std::vector<int64_t>* labels) {
    for (const auto& [w, k] : split) {
      std::vector<int32_t> row;
      for (const std::string& c : tokenize_chars(w)) {
        auto it = vocab.ids.find(c);
        if (it == vocab.ids.end()) ++unknown_test;  // train characters are all in the vocabulary
        row.push_back(it == vocab.ids.end() ? 3 : it->second);
      }
      max_len = std::max<int64_t>(max_len, static_cast<int64_t>(row.size()));
      ids->push_back(std::move(row));
      labels->push_back(k);
    }
  };
  std::vector<std::vector<int32_t>> train_ids, test_ids;
  std::vector<int64_t> train_labels, test_labels;
  encode(train, &train_ids, &train_labels);
  encode(test, &test_ids, &test_labels);
  write_split(out_train, train_ids, train_labels, max_len, vocab, codes, write);
  if (!test.empty()) write_split(out_test, test_ids, test_labels, max_len, vocab, codes, write);

  int64_t duplicates = 0, not_words = 0, too_long = 0, shared = 0, sampled_out = 0;
  std::ostringstream per_lang;
  for (const Language& l : langs) {
    duplicates += l.duplicates;
    not_words += l.not_words;
    too_long += l.too_long;
    shared += l.shared;
    sampled_out += l.sampled_out;
    per_lang << (&l == &langs[0] ? "" : ", ") << l.code << " " << l.kept.size() << "/"
             << l.kept.size() + static_cast<size_t>(l.sampled_out);
  }
  std::ostringstream os;
  os << "read " << langs.size() << " FreeDict dictionaries in " << options.dict_dir << ": ";
  for (const Language& l : langs) os << (&l == &langs[0] ? "" : ", ") << l.code << " " << l.entries;
  os << " headwords\n"
     << "dropped: " << not_words << " not one word of letters, " << too_long << " over " << options.max_len
     << " characters, " << duplicates << " duplicates within a language, " << shared_words
     << " words in several languages (" << shared << " entries; cross_language = dropped)";
  if (sampled_out > 0) os << ", " << sampled_out << " over " << options.max_per_language << " per language";
  os << "\nwords per language (kept/available, lower-cased): " << per_lang.str() << "\n"
     << "wrote " << out_train << ": " << train.size() << " words; ";
  if (!test.empty()) {
    os << "wrote " << out_test << ": " << test.size() << " words (" << unknown_test << " unknown characters)";
  } else {
    os << "no test file (test_fraction 0)";
  }
  os << "\ncharacter vocabulary (from the train split): " << vocab.words.size() << " tokens with <pad> <s> </s> <unk>; "
     << "longest word " << max_len << " characters; " << codes.size() << " classes";
  return os.str();
}

}  // namespace dtrain::data
