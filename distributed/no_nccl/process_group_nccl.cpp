// Builds without CUDA: the NCCL backend's entry points say so.
#include "distributed/process_group.h"

namespace dtrain::dist {

std::unique_ptr<ProcessGroup> make_nccl_group(int, int, int, const std::vector<uint8_t>&) {
  DT_THROW(NotBuiltError, "make_nccl_group: this dtrain was built without CUDA, so it has no NCCL backend; "
                          "use the MPI backend for CPU training, or rebuild with the CUDA toolkit and NCCL");
}

std::vector<uint8_t> nccl_unique_id() {
  DT_THROW(NotBuiltError, "nccl_unique_id: this dtrain was built without CUDA, so it has no NCCL backend; "
                          "rebuild with the CUDA toolkit and NCCL");
}

}  // namespace dtrain::dist
