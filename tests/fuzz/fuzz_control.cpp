// Fuzz target: the control plane's frame header check and message decoders
// (launcher/control/wire.h) on arbitrary bytes, as a peer on the network could send them.
// What decodes must encode back to the same bytes.
#include <cstring>

#include "launcher/control/wire.h"
#include "tests/fuzz/fuzz_common.h"

using namespace dtrain::control::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  if (size < kHeaderBytes) return 0;
  MsgType type{};
  uint32_t length = 0;
  std::string why = check_header(data, &type, &length);
  // Decode the rest as each message type, whatever the header said, and as the type it
  // named when it was accepted.
  const uint8_t* payload = data + kHeaderBytes;
  const size_t n = size - kHeaderBytes;
  if (dtrain::fuzz::seeds_must_pass()) {
    if (!why.empty()) dtrain::fuzz::seed_refused(why);
    if (length != n) dtrain::fuzz::seed_refused("the header's length differs from the payload's");
    Decoder d(payload, n);
    Hello h;
    Heartbeat hb;
    dtrain::control::Diagnosis v;
    const bool ok = type == MsgType::Hello ? decode(d, h) : type == MsgType::Heartbeat ? decode(d, hb) : decode(d, v, 4);
    if (!ok) dtrain::fuzz::seed_refused(std::string("a malformed ") + type_name(type));
  }
  {
    Decoder d(payload, n);
    Hello h;
    if (decode(d, h)) {
      std::string frame = encode(h);
      if (frame.size() != kHeaderBytes + n || std::memcmp(frame.data() + kHeaderBytes, payload, n) != 0) std::abort();
    }
  }
  {
    Decoder d(payload, n);
    Heartbeat hb;
    if (decode(d, hb)) {
      std::string frame = encode(hb);
      // The phase age's NaN payloads are refused, so the bytes come back unchanged.
      if (frame.size() != kHeaderBytes + n || std::memcmp(frame.data() + kHeaderBytes, payload, n) != 0) std::abort();
    }
  }
  {
    Decoder d(payload, n);
    dtrain::control::Diagnosis v;
    const int world = why.empty() ? static_cast<int>(length % 1024) + 1 : 4;
    if (decode(d, v, world)) {
      for (int r : v.ranks) {
        if (r < 0 || r >= world) std::abort();
      }
    }
  }
  return 0;
}
