// Pre-flight agreement (agreement.h). Three all-gathers at most, the same on every rank
// whatever the outcome, so the check itself can never break Note [Same call order]:
//
//   1. a header per rank: (item count, hash of the item names). If they differ the
//      ranks are not even checking the same things: every rank throws.
//   2. a fixed-size record per item: (name hash, value hash, value length, the first
//      kPrefixBytes bytes of the value). Every rank now sees every rank's records and
//      computes the same verdict.
//   3. only when some item differs: the full values of the differing items (padded to
//      the longest, capped at kDetailBytes), so the message can show the first line
//      that differs rather than a prefix that may be identical.
#include "distributed/agreement.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

namespace dtrain::dist {
namespace {

constexpr size_t kPrefixBytes = 200;
constexpr size_t kRecordBytes = 3 * sizeof(uint64_t) + kPrefixBytes;
constexpr size_t kDetailBytes = size_t{1} << 20;

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::ostringstream os;
  os << (ranks.size() == 1 ? "rank " : "ranks ");
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? ", " : "") << ranks[i];
  return os.str();
}

// Gathers `bytes` from every rank (all the same length) through the group's device.
std::vector<uint8_t> gather_bytes(ProcessGroup& group, const std::vector<uint8_t>& bytes) {
  const int64_t n = static_cast<int64_t>(bytes.size());
  Tensor in = Tensor::from_vector(bytes, {n}).to(group.device());
  Tensor out = Tensor::zeros({n * group.size()}, DType::U8, group.device());
  group.all_gather(in, out)->wait();
  return out.to_vector<uint8_t>();
}

void put_u64(std::vector<uint8_t>& buf, size_t at, uint64_t v) { std::memcpy(buf.data() + at, &v, sizeof v); }
uint64_t get_u64(const std::vector<uint8_t>& buf, size_t at) {
  uint64_t v;
  std::memcpy(&v, buf.data() + at, sizeof v);
  return v;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream is(s);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

std::string clip(const std::string& s, size_t n = kPrefixBytes) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

// How one group's value is shown next to the others: the whole value when short and on
// one line, otherwise the first line that differs from the first group's value.
std::vector<std::string> excerpts(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  bool multiline = false, long_value = false;
  for (const std::string& v : values) {
    multiline |= v.find('\n') != std::string::npos;
    long_value |= v.size() > kPrefixBytes;
  }
  if (!multiline && !long_value) {
    for (const std::string& v : values) out.push_back("'" + v + "'");
    return out;
  }
  if (multiline) {
    std::vector<std::vector<std::string>> lines;
    for (const std::string& v : values) lines.push_back(split_lines(v));
    size_t first = SIZE_MAX;
    for (size_t g = 1; g < lines.size(); ++g) {
      size_t i = 0;
      while (i < lines[0].size() && i < lines[g].size() && lines[0][i] == lines[g][i]) ++i;
      first = std::min(first, i);
    }
    for (const auto& l : lines) {
      out.push_back(first < l.size() ? "line " + std::to_string(first + 1) + " '" + clip(l[first]) + "'"
                                     : std::to_string(l.size()) + " lines (no line " + std::to_string(first + 1) + ")");
    }
    return out;
  }
  size_t first = SIZE_MAX;
  for (size_t g = 1; g < values.size(); ++g) {
    auto [a, b] = std::mismatch(values[0].begin(), values[0].end(), values[g].begin(), values[g].end());
    first = std::min(first, static_cast<size_t>(a - values[0].begin()));
  }
  size_t from = first > 40 ? first - 40 : 0;
  for (const std::string& v : values) {
    out.push_back((from ? "'..." : "'") + clip(v.substr(std::min(from, v.size())), 160) + "' (" +
                  std::to_string(v.size()) + " characters)");
  }
  return out;
}

}  // namespace

void check_agreement(ProcessGroup& group, const AgreementItems& items) {
  const int world = group.size();
  const char* kAdvice = ". Every rank must run the same model, batch size, dataset and dtrain build.";

  // 1. Header.
  uint64_t names_hash = 1469598103934665603ull;
  for (const auto& [name, value] : items) names_hash = fnv1a(name + '\n', names_hash);
  std::vector<uint8_t> header(2 * sizeof(uint64_t));
  put_u64(header, 0, items.size());
  put_u64(header, 8, names_hash);
  std::vector<uint8_t> headers = gather_bytes(group, header);
  std::map<std::pair<uint64_t, uint64_t>, std::vector<int>> header_groups;
  for (int r = 0; r < world; ++r) {
    header_groups[{get_u64(headers, r * 16), get_u64(headers, r * 16 + 8)}].push_back(r);
  }
  if (header_groups.size() > 1) {
    std::ostringstream os;
    os << "ranks disagree before the first step: they do not check the same items:";
    const char* sep = " ";
    for (const auto& [key, ranks] : header_groups) {
      os << sep << rank_list(ranks) << " check " << key.first << " items (names hash " << std::hex << key.second
         << std::dec << ")";
      sep = "; ";
    }
    os << " (this rank: ";
    for (size_t i = 0; i < items.size(); ++i) os << (i ? ", " : "") << items[i].first;
    os << ")" << kAdvice;
    DT_THROW(DistributedError, os.str());
  }

  // 2. Records.
  const size_t n = items.size();
  std::vector<uint8_t> mine(n * kRecordBytes, 0);
  for (size_t i = 0; i < n; ++i) {
    const auto& [name, value] = items[i];
    const size_t at = i * kRecordBytes;
    put_u64(mine, at, fnv1a(name));
    put_u64(mine, at + 8, fnv1a(value));
    put_u64(mine, at + 16, value.size());
    std::memcpy(mine.data() + at + 24, value.data(), std::min(value.size(), kPrefixBytes));
  }
  std::vector<uint8_t> all = gather_bytes(group, mine);
  auto record = [&](int r, size_t i) { return static_cast<size_t>(r) * n * kRecordBytes + i * kRecordBytes; };

  struct Differing {
    size_t item;
    std::vector<std::vector<int>> groups;  // ranks with equal values, first group holds rank 0
    uint64_t max_len = 0;
  };
  std::vector<Differing> differing;
  for (size_t i = 0; i < n; ++i) {
    std::map<std::pair<uint64_t, uint64_t>, size_t> index;  // (hash, length) -> group
    Differing d{i, {}, 0};
    for (int r = 0; r < world; ++r) {
      const size_t at = record(r, i);
      auto key = std::make_pair(get_u64(all, at + 8), get_u64(all, at + 16));
      d.max_len = std::max(d.max_len, key.second);
      auto [it, inserted] = index.emplace(key, d.groups.size());
      if (inserted) d.groups.emplace_back();
      d.groups[it->second].push_back(r);
    }
    if (d.groups.size() > 1) differing.push_back(std::move(d));
  }
  if (differing.empty()) return;

  // 3. Details of the differing items.
  std::ostringstream os;
  os << "ranks disagree before the first step: ";
  for (size_t k = 0; k < differing.size(); ++k) {
    const Differing& d = differing[k];
    const std::string& mine_value = items[d.item].second;
    const size_t width = std::min<size_t>(d.max_len, kDetailBytes);
    std::vector<uint8_t> padded(width + sizeof(uint64_t), 0);
    put_u64(padded, 0, std::min(mine_value.size(), width));
    std::memcpy(padded.data() + 8, mine_value.data(), std::min(mine_value.size(), width));
    std::vector<uint8_t> values = gather_bytes(group, padded);
    std::vector<std::string> representatives;
    for (const auto& ranks : d.groups) {
      const size_t at = static_cast<size_t>(ranks[0]) * padded.size();
      const size_t len = get_u64(values, at);
      representatives.emplace_back(reinterpret_cast<const char*>(values.data() + at + 8), len);
    }
    std::vector<std::string> shown = excerpts(representatives);
    os << (k ? "\n  " : "") << items[d.item].first << ":";
    for (size_t g = 0; g < d.groups.size(); ++g) {
      os << (g ? "; " : " ") << rank_list(d.groups[g]) << (d.groups[g].size() == 1 ? " has " : " have ") << shown[g];
    }
  }
  os << kAdvice;
  DT_THROW(DistributedError, os.str());
}

std::string describe_parameters(const nn::NamedTensors& params) {
  std::ostringstream os;
  for (const auto& [name, t] : params) {
    os << name << " " << dtype_name(t.dtype()) << " " << shape_str(t.shape()) << (t.requires_grad() ? "" : " frozen")
       << "\n";
  }
  return os.str();
}

}  // namespace dtrain::dist
