#pragma once
// The control plane's wire format (see the comment at the top of wire.cpp): frames of a
// 12-byte header and a payload, and the three messages. Kept apart from the connections
// so that the decoder can be tested and fuzzed on arbitrary bytes (tests/fuzz).
#include <cstddef>
#include <cstdint>
#include <string>

#include "launcher/control/control_plane.h"
#include "launcher/control/progress.h"

namespace dtrain::control::wire {

constexpr char kMagic[4] = {'D', 'T', 'C', '1'};
constexpr size_t kHeaderBytes = 12;
constexpr uint32_t kMaxPayload = 64 * 1024;

enum class MsgType : uint8_t { Hello = 1, Heartbeat = 2, Verdict = 3 };

const char* type_name(MsgType t);

// Checks a frame's header: "" and its type and payload length, or why it is refused
// (bad magic, an unknown type, a payload over kMaxPayload).
std::string check_header(const uint8_t* header, MsgType* type, uint32_t* length);

// Reads a payload; any read past its end marks it bad instead of throwing.
class Decoder {
 public:
  Decoder(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return take(1) ? p_[pos_++] : 0; }
  uint32_t u32() {
    if (!take(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p_[pos_++]) << (8 * i);
    return v;
  }
  uint64_t u64() {
    if (!take(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p_[pos_++]) << (8 * i);
    return v;
  }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  double f64() { return std::bit_cast<double>(u64()); }
  std::string str() {
    const uint32_t len = u32();
    if (!take(len)) return {};
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  // Every byte read, none missing.
  bool complete() const { return ok_ && pos_ == n_; }

 private:
  bool take(size_t k) {
    if (!ok_ || n_ - pos_ < k) ok_ = false;
    return ok_;
  }
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  bool ok_ = true;
};

struct Hello {
  int32_t rank = 0, pid = 0;
  std::string host, token;
};

struct Heartbeat {
  int32_t rank = 0;
  ProgressSnapshot progress;
};

std::string encode(const Hello& h);
bool decode(Decoder& d, Hello& h);
std::string encode(const Heartbeat& hb);
bool decode(Decoder& d, Heartbeat& hb);
std::string encode(const Diagnosis& v);
// A verdict's ranks must lie in [0, world_size).
bool decode(Decoder& d, Diagnosis& v, int world_size);

}  // namespace dtrain::control::wire
