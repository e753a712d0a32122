#include "core/stream.h"

#include "core/runtime.h"

namespace dtrain {

Stream Stream::create(Device device) {
  Stream s;
  s.device_ = device;
  if (device.is_cuda()) {
    int index = device.index;
    s.handle_ = std::shared_ptr<void>(cuda::stream_create(index), [index](void* h) { cuda::stream_destroy(h, index); });
  }
  return s;
}

Stream Stream::current(Device device) {
  Stream s;
  s.device_ = device;
  if (device.is_cuda()) s.borrowed_ = cuda::thread_stream(device.index);
  return s;
}

void Stream::synchronize() const {
  if (device_.is_cuda()) cuda::stream_synchronize(handle(), device_.index);
}

Event Event::create(Device device, bool timing) {
  Event e;
  e.device_ = device;
  if (device.is_cuda()) {
    int index = device.index;
    e.handle_ = std::shared_ptr<void>(cuda::event_create(index, timing), [index](void* h) { cuda::event_destroy(h, index); });
  }
  return e;
}

void Event::record(const Stream& stream) {
  if (device_.is_cuda()) cuda::event_record(handle_.get(), stream.handle(), device_.index);
}
void Event::wait(const Stream& stream) const {
  if (device_.is_cuda()) cuda::stream_wait_event(stream.handle(), handle_.get(), device_.index);
}
void Event::synchronize() const {
  if (device_.is_cuda()) cuda::event_synchronize(handle_.get());
}
bool Event::query() const { return device_.is_cuda() ? cuda::event_query(handle_.get()) : true; }
float Event::elapsed_ms(const Event& end) const {
  return device_.is_cuda() ? cuda::event_elapsed_ms(handle_.get(), end.handle_.get()) : 0.0f;
}

StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()) {
  if (device_.is_cuda()) {
    previous_ = cuda::thread_stream(device_.index);
    cuda::set_thread_stream(device_.index, stream.handle());
  }
}
StreamGuard::~StreamGuard() {
  if (device_.is_cuda()) cuda::set_thread_stream(device_.index, previous_);
}

}  // namespace dtrain
