#pragma once
// Stream and Event: owning wrappers over CUDA streams/events, and trivial on the CPU
// (where every kernel has completed when it returns). StreamGuard makes a stream the
// calling thread's current stream for its device, so core/ launches kernels there.
#include <memory>

#include "core/device.h"

namespace dtrain {

class Stream {
 public:
  Stream() = default;  // the CPU "stream": work is synchronous
  // A new non-blocking stream on `device` (a CUDA device), destroyed with the last copy.
  static Stream create(Device device);
  // The calling thread's current stream for `device`.
  static Stream current(Device device);

  Device device() const { return device_; }
  void* handle() const { return handle_ ? handle_.get() : borrowed_; }
  void synchronize() const;

 private:
  Device device_ = Device::cpu();
  std::shared_ptr<void> handle_;  // owned
  void* borrowed_ = nullptr;      // not owned (a thread's default stream)
};

class Event {
 public:
  Event() = default;
  static Event create(Device device, bool timing = false);
  void record(const Stream& stream);
  // Makes `stream` wait for this event's work without blocking the host.
  void wait(const Stream& stream) const;
  void synchronize() const;
  bool query() const;
  // Milliseconds between two recorded timing events.
  float elapsed_ms(const Event& end) const;

 private:
  Device device_ = Device::cpu();
  std::shared_ptr<void> handle_;
};

// Scoped: kernels core/ launches for tensors on stream.device() go to `stream`.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Device device_;
  void* previous_ = nullptr;
};

}  // namespace dtrain
