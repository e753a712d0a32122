#pragma once
// Generator: a counter-based random stream (Philox4x32-10, ops/philox.h).
//
// Its whole state is (seed, offset): the seed is the Philox key and the offset counts
// 128-bit blocks consumed. Saving and restoring those two integers restores the stream
// exactly, and the same (seed, offset) fills the same numbers on the CPU and on a GPU.
// Streams for different purposes and ranks are derived with Generator::derive(seed,
// rank, purpose), so no two ranks or purposes share numbers.
#include <cstdint>

#include "core/tensor.h"

namespace dtrain {

class Generator {
 public:
  struct State {
    uint64_t seed = 0;
    uint64_t offset = 0;
    bool operator==(const State&) const = default;
  };

  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}
  // An independent stream for (seed, rank, purpose), e.g. purpose "init", "dropout", "data".
  static Generator derive(uint64_t seed, uint64_t rank, const char* purpose);

  State state() const { return state_; }
  void set_state(State s) { state_ = s; }
  uint64_t seed() const { return state_.seed; }

  // In-place fills of an f32/f64 tensor on any device.
  void uniform_(Tensor& t, double low = 0.0, double high = 1.0);
  void normal_(Tensor& t, double mean = 0.0, double stddev = 1.0);
  // One uniform double in [0, 1) and one uniform integer in [0, n), on the host.
  double next_double();
  uint64_t next_below(uint64_t n);

 private:
  State state_;
};

}  // namespace dtrain
