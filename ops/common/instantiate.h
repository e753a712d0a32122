#pragma once
// Expansions of the kernel lists of ops/kernels.inc, for the end of each backend file
// (ops/cpu/<section>.cpp, ops/cuda/<section>.cu, ops/no_cuda/stubs.cpp), inside the
// backend's namespace and after the kernels' definitions:
//   DT_INSTANTIATE_KERNELS(DT_LOSS_KERNELS)   // every loss kernel for float and double
//   DT_CONVERT_PAIRS(DT_INSTANTIATE_CONVERT)  // convert for every pair
// An explicit instantiation names no template arguments: they are deduced from the list's
// parameter types, so an entry that matches no declaration is a compile error.

// One kernel, as X of a list: `template void name(parameter types);`.
#define DT_INSTANTIATE_KERNEL(name, params) template void name params;

// Every kernel of LIST for T = float and T = double (ops/kernels.inc, Conventions).
#define DT_INSTANTIATE_KERNELS(LIST) LIST(DT_INSTANTIATE_KERNEL, float) LIST(DT_INSTANTIATE_KERNEL, double)

// The conversion kernels for one (S, D) pair, as X of DT_CONVERT_PAIRS.
#define DT_INSTANTIATE_CONVERT(S, D) DT_CONVERT_KERNELS(DT_INSTANTIATE_KERNEL, S, D)
