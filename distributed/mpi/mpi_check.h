#pragma once
// MPI_CHECK: every MPI call's return code is checked (the group's communicator uses
// MPI_ERRORS_RETURN, so failures come back as codes instead of aborting the job).
#include <mpi.h>

#include <string>

#include "core/error.h"

namespace dtrain::dist::detail {
inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len));
}
}  // namespace dtrain::dist::detail

#define MPI_CHECK(call)                                                                                 \
  do {                                                                                                  \
    int dt_mpi_rc_ = (call);                                                                            \
    if (dt_mpi_rc_ != MPI_SUCCESS) {                                                                    \
      DT_THROW(::dtrain::DistributedError, #call, " failed: ", ::dtrain::dist::detail::mpi_error_string(dt_mpi_rc_), \
               " (another rank may have failed or left; see its log)");                                \
    }                                                                                                   \
  } while (0)
