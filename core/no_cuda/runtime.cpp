// core/runtime.h for builds without CUDA: no devices, and every device operation throws.
#include "core/runtime.h"

#include "core/error.h"

namespace dtrain::cuda {

namespace {
[[noreturn]] void not_built(const char* what) {
  DT_THROW(NotBuiltError, "dtrain was built without CUDA: ", what,
           " is unavailable; rebuild with -DCMAKE_CUDA_COMPILER=/path/to/nvcc");
}
}  // namespace

bool compiled() { return false; }
bool emulated() { return false; }
int device_count(std::string* why) {
  if (why) *why = "dtrain was built without CUDA";
  return 0;
}
void check_device(int device) {
  DT_THROW(NotBuiltError, "cuda:", device, " requested, but dtrain was built without CUDA; rebuild with "
           "-DCMAKE_CUDA_COMPILER=/path/to/nvcc");
}
void set_device(int) { not_built("set_device"); }
void* raw_malloc(size_t, int) { not_built("device memory"); }
void raw_free(void*, int) { not_built("device memory"); }
void* host_malloc_pinned(size_t) { not_built("pinned host memory"); }
void host_free_pinned(void*) { not_built("pinned host memory"); }
void memcpy(void*, Device, const void*, Device, size_t, void*) { not_built("device copies"); }
void memset_zero(void*, size_t, int, void*) { not_built("device memset"); }
void* stream_create(int) { not_built("streams"); }
void stream_destroy(void*, int) { not_built("streams"); }
void stream_synchronize(void*, int) { not_built("streams"); }
void* event_create(int, bool) { not_built("events"); }
void event_destroy(void*, int) { not_built("events"); }
void event_record(void*, void*, int) { not_built("events"); }
void stream_wait_event(void*, void*, int) { not_built("events"); }
void event_synchronize(void*) { not_built("events"); }
bool event_query(void*) { not_built("events"); }
float event_elapsed_ms(void*, void*) { not_built("events"); }
ops::Exec thread_exec(int) { not_built("CUDA execution"); }
void set_thread_stream(int, void*) { not_built("streams"); }
void* thread_stream(int) { not_built("streams"); }

}  // namespace dtrain::cuda
