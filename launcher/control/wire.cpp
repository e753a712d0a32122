// The control plane's wire format. Every message is a frame: a 12-byte header, then the
// payload.
//   header   4 bytes magic "DTC1", 1 byte type (1 Hello, 2 Heartbeat, 3 Verdict), 3 bytes
//            reserved (0), 4 bytes payload length (at most 64 KiB)
//   Hello    i32 rank, i32 pid, str host, str token
//   Heartbeat i32 rank, i64 step, u8 phase, i32 detail, u64 issued, u64 done, u8 last_kind,
//            u8 waiting_kind, u64 waiting_seq, f64 phase_age_s
//   Verdict  u8 kind, u32 count, count x i32 rank, str text
// Integers are little-endian, a double is its IEEE-754 bits as a u64, a str is a u32
// length and the bytes.
#include "launcher/control/wire.h"

#include <bit>
#include <cstring>

namespace dtrain::control::wire {


const char* type_name(MsgType t) {
  switch (t) {
    case MsgType::Hello: return "hello";
    case MsgType::Heartbeat: return "heartbeat";
    case MsgType::Verdict: return "verdict";
  }
  return "unknown message";
}

std::string check_header(const uint8_t* header, MsgType* type, uint32_t* length) {
  if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) return "bad magic (not a dtrain control connection)";
  const uint8_t t = header[4];
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(header[8 + i]) << (8 * i);
  if (len > kMaxPayload) {
    std::string why = "a frame of ";
    why += std::to_string(len);
    why += " bytes, over the limit of ";
    why += std::to_string(kMaxPayload);
    return why;
  }
  if (t < static_cast<uint8_t>(MsgType::Hello) || t > static_cast<uint8_t>(MsgType::Verdict)) {
    return "unknown message type " + std::to_string(t);
  }
  *type = static_cast<MsgType>(t);
  *length = len;
  return "";
}

namespace {

// ---- encoding ---------------------------------------------------------------------

class Encoder {
 public:
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    buf_ += s;
  }
  // The frame: header and payload. Payloads are built by this file and stay far below
  // the limit (a verdict's text is clipped).
  std::string frame(MsgType type) const {
    Encoder h;
    for (char c : kMagic) h.u8(static_cast<uint8_t>(c));
    h.u8(static_cast<uint8_t>(type));
    h.u8(0);
    h.u8(0);
    h.u8(0);
    h.u32(static_cast<uint32_t>(buf_.size()));
    return h.buf_ + buf_;
  }

 private:
  std::string buf_;
};

}  // namespace

std::string encode(const Hello& h) {
  Encoder e;
  e.i32(h.rank);
  e.i32(h.pid);
  e.str(h.host);
  e.str(h.token);
  return e.frame(MsgType::Hello);
}

bool decode(Decoder& d, Hello& h) {
  h.rank = d.i32();
  h.pid = d.i32();
  h.host = d.str();
  h.token = d.str();
  return d.complete();
}



std::string encode(const Heartbeat& hb) {
  const ProgressSnapshot& p = hb.progress;
  Encoder e;
  e.i32(hb.rank);
  e.i64(p.step);
  e.u8(static_cast<uint8_t>(p.phase));
  e.i32(p.detail);
  e.u64(p.issued);
  e.u64(p.done);
  e.u8(static_cast<uint8_t>(p.last_kind));
  e.u8(static_cast<uint8_t>(p.waiting_kind));
  e.u64(p.waiting_seq);
  e.f64(p.phase_age_s);
  return e.frame(MsgType::Heartbeat);
}

bool decode(Decoder& d, Heartbeat& hb) {
  ProgressSnapshot& p = hb.progress;
  hb.rank = d.i32();
  p.step = d.i64();
  const uint8_t phase = d.u8();
  p.detail = d.i32();
  p.issued = d.u64();
  p.done = d.u64();
  const uint8_t last_kind = d.u8(), waiting_kind = d.u8();
  p.waiting_seq = d.u64();
  p.phase_age_s = d.f64();
  constexpr auto kMaxKind = static_cast<uint8_t>(CollectiveKind::Barrier);
  if (!d.complete() || phase > static_cast<uint8_t>(Phase::Finished) || last_kind > kMaxKind ||
      waiting_kind > kMaxKind || !(p.phase_age_s >= 0 && p.phase_age_s < 1e9)) {
    return false;
  }
  p.phase = static_cast<Phase>(phase);
  p.last_kind = static_cast<CollectiveKind>(last_kind);
  p.waiting_kind = static_cast<CollectiveKind>(waiting_kind);
  return true;
}

std::string encode(const Diagnosis& v) {
  Encoder e;
  e.u8(static_cast<uint8_t>(v.kind));
  e.u32(static_cast<uint32_t>(v.ranks.size()));
  for (int r : v.ranks) e.i32(r);
  e.str(v.text.substr(0, kMaxPayload / 2));
  return e.frame(MsgType::Verdict);
}

bool decode(Decoder& d, Diagnosis& v, int world_size) {
  const uint8_t kind = d.u8();
  const uint32_t n = d.u32();
  if (kind > static_cast<uint8_t>(Diagnosis::Kind::CoordinatorSilent) || n > static_cast<uint32_t>(world_size)) {
    return false;
  }
  v.kind = static_cast<Diagnosis::Kind>(kind);
  for (uint32_t i = 0; i < n; ++i) {
    const int32_t r = d.i32();
    if (r < 0 || r >= world_size) return false;
    v.ranks.push_back(r);
  }
  v.text = d.str();
  return d.complete();
}

}  // namespace dtrain::control::wire
