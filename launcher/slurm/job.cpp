// Slurm job detection and requeue: see job.h and docs/SLURM.md.
#include "launcher/slurm/job.h"

#include <cstdlib>

#include "launcher/slurm/process.h"

namespace dtrain::slurm {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\n' || s[b] == '\t')) ++b;
  return s.substr(b);
}

}  // namespace

std::optional<JobInfo> current_job() {
  std::string id = env("SLURM_JOB_ID");
  if (id.empty()) id = env("SLURM_JOBID");  // older Slurm spelling, still set
  if (!all_digits(id)) return std::nullopt;
  JobInfo info;
  info.job_id = id;
  info.requeue_id = id;
  std::string array_job = env("SLURM_ARRAY_JOB_ID"), array_task = env("SLURM_ARRAY_TASK_ID");
  if (all_digits(array_job) && all_digits(array_task)) {
    // An array task has its own SLURM_JOB_ID too, but the array form is what users see
    // in squeue and what scontrol documents for array tasks.
    info.is_array_task = true;
    info.requeue_id = array_job + "_" + array_task;
  }
  return info;
}

std::string requeue_current_job(const Logger& log) {
  std::optional<JobInfo> job = current_job();
  if (!job) {
    std::string msg = "not requeueing: not running in a Slurm job (SLURM_JOB_ID is not set); run again with --resume auto";
    log.warn(msg);
    return msg;
  }
  CommandResult r = run_command({"scontrol", "requeue", job->requeue_id});
  std::string out = trim(r.output);
  std::string msg;
  if (!r.started) {
    msg = "could not requeue Slurm job " + job->requeue_id + ": " + out +
          " (requeue it yourself: scontrol requeue " + job->requeue_id + ", or resubmit; it resumes with --resume auto)";
    log.warn(msg);
  } else if (r.exit_code != 0) {
    msg = "could not requeue Slurm job " + job->requeue_id + ": 'scontrol requeue " + job->requeue_id + "' failed" +
          (r.exit_code >= 0 ? " with exit code " + std::to_string(r.exit_code) : std::string()) +
          (out.empty() ? std::string() : ": " + out) +
          " (only batch jobs submitted with --requeue, or under JobRequeue=1, can be requeued; requeue it by hand "
          "or resubmit it: it resumes with --resume auto)";
    log.warn(msg);
  } else {
    msg = "requeued Slurm job " + job->requeue_id + "; it resumes from the checkpoint when it runs again";
    if (!out.empty()) msg += " (scontrol: " + out + ")";
    log.info(msg);
  }
  return msg;
}

}  // namespace dtrain::slurm
