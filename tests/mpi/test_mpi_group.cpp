// The MPI backend under mpiexec (registered in CTest with label mpi for 2 and 4 ranks):
// the collective cases shared with the threads suites (tests/distributed/cases.h), the
// Reducer's W-ranks-vs-one-process equivalence (the reference is computed locally at
// batch W * B on every rank) with and without gradient accumulation, and the agreement
// failures. Prints one line per case on rank 0 and "N passed, N failed"; exits non-zero
// when any rank failed any case.
#include <mpi.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tests/distributed/cases.h"

namespace {

using namespace dtrain;
using namespace dtrain::dist;

// Average completes through is_completed() polling as well as through wait(), and is
// divided exactly once.
void average_by_polling(ProcessGroup& g) {
  Tensor t = Tensor::full({1000}, g.rank() + 1.0, DType::F64);
  WorkPtr w = g.all_reduce(t, ReduceOp::Average);
  while (!w->is_completed()) {
  }
  w->wait();
  DT_CASE_CHECK(w->is_completed(), "still completed");
  std::vector<double> v = t.to_vector<double>();
  const double want = (g.size() + 1) / 2.0;
  DT_CASE_CHECK(v[0] == want && v[999] == want, "got ", v[0], ", want ", want);
}

void identity(ProcessGroup& g) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  DT_CASE_CHECK(g.rank() == rank && g.size() == size && g.backend() == "mpi", "rank/size/backend");
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  int passed = 0, failed = 0;
  {
    std::unique_ptr<ProcessGroup> group = make_mpi_group(reinterpret_cast<void*>(MPI_COMM_WORLD));
    std::vector<std::pair<std::string, std::function<void(ProcessGroup&)>>> all = {{"identity", identity}};
    for (const auto& c : cases::collective_cases()) all.push_back(c);
    all.push_back({"average by polling", average_by_polling});
    all.push_back({"reducer equivalence", [](ProcessGroup& g) { cases::reducer_matches_single_process(g, 1); }});
    all.push_back({"reducer equivalence, 2 micro-batches",
                   [](ProcessGroup& g) { cases::reducer_matches_single_process(g, 2); }});
    all.push_back({"agreement passes", cases::agreement_passes_when_equal});
    all.push_back({"agreement: batch size mismatch", cases::agreement_batch_size_mismatch});
    all.push_back({"agreement: shape and dataset mismatch", cases::agreement_shape_and_dataset_mismatch});
    for (const auto& [name, body] : all) {
      std::string error;
      double start = MPI_Wtime();
      try {
        body(*group);
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (!error.empty()) std::fprintf(stderr, "rank %d: FAIL %s: %s\n", world_rank, name.c_str(), error.c_str());
      // A case passes when it passed on every rank.
      int bad = error.empty() ? 0 : 1, any_bad = 0;
      MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      (any_bad ? failed : passed) += 1;
      if (world_rank == 0) {
        std::printf("%s %s (%.3f s)\n", any_bad ? "FAIL" : "ok  ", name.c_str(), MPI_Wtime() - start);
      }
    }
  }
  if (world_rank == 0) std::printf("%d passed, %d failed\n", passed, failed);
  MPI_Finalize();
  return failed == 0 ? 0 : 1;
}
