#pragma once
// Threads used by the CPU kernels: OpenMP loops, oneDNN (OpenMP runtime) and OpenBLAS.
// The defaults come from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS or the core count.

namespace dtrain::ops::cpu {

// Sets the thread count of all three; n >= 1.
void set_num_threads(int n);
// The OpenMP thread count the CPU kernels will use.
int num_threads();

}  // namespace dtrain::ops::cpu
