#pragma once
// The Slurm job this process runs in, and its requeue after a checkpointed stop
// (docs/SLURM.md).
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"

namespace dtrain::slurm {

// The job this process runs in, from the environment Slurm sets (SLURM_JOB_ID, and for
// array tasks SLURM_ARRAY_JOB_ID / SLURM_ARRAY_TASK_ID). nullopt outside Slurm.
struct JobInfo {
  std::string job_id;       // SLURM_JOB_ID
  std::string requeue_id;   // what scontrol requeue needs: "<array job>_<task>" for array tasks
  bool is_array_task = false;
};
std::optional<JobInfo> current_job();

// After a checkpointed stop (rank 0 only): `scontrol requeue <requeue_id>`. Returns a
// description of what happened ("requeued job 42", or why not: not in a Slurm job,
// scontrol missing, scontrol failed with its message); logs it through `log`.
std::string requeue_current_job(const Logger& log);

}  // namespace dtrain::slurm
