// The batch script of `dtrain submit`: see batch_script.h.
#include "launcher/slurm/batch_script.h"

#include <sstream>

#include "core/error.h"

namespace dtrain::slurm {

namespace {

// Note [Batch script]
// --signal=B:USR1@S makes Slurm send SIGUSR1 to the batch shell alone, S seconds before
// the time limit (in practice up to about a minute earlier). The training ranks run in
// the srun step, so the shell must pass the signal on. A shell runs a trap only between
// commands, never while a foreground command runs, so srun runs in the background and the
// shell waits for it in a loop: a trapped signal interrupts `wait` (status > 128), the
// trap forwards it with `kill -USR1 <srun pid>` (srun relays USR1 and TERM to every task),
// and the loop waits again until srun has really exited. Every rank then stops at the same
// step, writes a checkpoint and exits with the "stopped by a signal" code; rank 0 requeues
// the job (`scontrol requeue`), which starts again from the top of this script and resumes
// with --resume auto. SIGTERM (scancel, preemption, the time limit itself) goes the same
// way, so the shell does not die before the step has finished its checkpoint.
//
// A step that the watchdog ended (exit code 86, docs/WATCHDOG.md: a rank froze, stalled
// or the ranks desynchronised; srun --kill-on-bad-exit ends the others) is requeued by the
// shell itself, which is still running when every rank is gone, frozen ones included: at
// most max_restarts times (SLURM_RESTART_COUNT counts every requeue of the job). srun
// reports the highest exit status of its tasks, which is the frozen rank's kill when one
// froze, so the ranks that diagnose the hang also write DTRAIN_WATCHDOG_MARKER, a file on
// the batch shell's node (seen when rank 0 or another rank of that node wrote it).

// Shell word for s: bare when it is plainly safe, single-quoted otherwise.
std::string shell_quote(const std::string& s) {
  if (s.empty()) return "''";
  bool safe = true;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string("@%+=:,./_-").find(c) != std::string::npos;
    if (!ok) safe = false;
  }
  if (safe) return s;
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

}  // namespace

// An #SBATCH value may not hold a newline (it would end the directive early).
void check_script_value(const std::string& what, const std::string& v) {
  if (v.find('\n') != std::string::npos || v.find('\r') != std::string::npos) {
    DT_THROW(ConfigError, "dtrain submit: ", what, " must be one line, got '", v, "'");
  }
}

std::string batch_script(const SubmitOptions& o) {
  std::ostringstream s;
  s << "#!/bin/bash\n";
  s << "# Written by 'dtrain submit' (docs/SLURM.md).\n";
  s << "#SBATCH --job-name=" << o.job_name << "\n";
  s << "#SBATCH --nodes=" << o.nodes << "\n";
  if (o.ntasks_from_gpus) s << "# --ntasks-per-node not given: one rank per GPU (--gpus-per-node)\n";
  s << "#SBATCH --ntasks-per-node=" << o.ntasks_per_node << "\n";
  if (o.gpus_per_node > 0) s << "#SBATCH --gpus-per-node=" << o.gpus_per_node << "\n";
  if (!o.time.empty()) s << "#SBATCH --time=" << o.time << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.account.empty()) s << "#SBATCH --account=" << o.account << "\n";
  if (!o.output.empty()) s << "#SBATCH --output=" << o.output << "\n";
  if (!o.chdir.empty()) s << "#SBATCH --chdir=" << o.chdir << "\n";
  s << "#SBATCH --signal=B:USR1@" << o.signal_seconds << "\n";
  s << "#SBATCH --requeue\n";
  s << "#SBATCH --open-mode=append\n";
  for (const std::string& line : o.extra_sbatch) {
    std::string l = line;
    if (l.rfind("#SBATCH", 0) == 0) l = l.substr(7);
    while (!l.empty() && l[0] == ' ') l.erase(0, 1);
    s << "#SBATCH " << l << "\n";
  }
  s << "\n";
  s << "echo \"dtrain submit: job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) starts on "
       "$(hostname) at $(date -Is)\"\n";
  s << "\n";
  s << "# SIGUSR1 (--signal=B:...) and SIGTERM reach this shell; pass them to the training step\n";
  s << "# (srun relays them to every rank). srun runs in the background so the trap runs at once.\n";
  s << "srun_pid=\n";
  s << "forward() {\n";
  s << "  echo \"dtrain submit: SIG$1 at $(date -Is): asking the ranks to checkpoint and stop\"\n";
  s << "  [ -n \"$srun_pid\" ] && kill -\"$1\" \"$srun_pid\" 2>/dev/null\n";
  s << "}\n";
  s << "trap 'forward USR1' USR1\n";
  s << "trap 'forward TERM' TERM\n";
  s << "\n";
  s << "export DTRAIN_WATCHDOG_MARKER=\"${TMPDIR:-/tmp}/dtrain-watchdog-${SLURM_JOB_ID}\"\n";
  s << "rm -f \"$DTRAIN_WATCHDOG_MARKER\"\n";
  s << "srun --mpi=pmix --kill-on-bad-exit=1";
  s << " " << shell_quote(o.dtrain_binary) << " train";
  bool has_resume = false;
  for (const std::string& a : o.train_args) {
    if (a == "--resume" || a.rfind("--resume=", 0) == 0) has_resume = true;
  }
  for (const std::string& a : o.train_args) s << " " << shell_quote(a);
  if (!has_resume) s << " --resume auto";
  s << " &\n";
  s << "srun_pid=$!\n";
  s << "while :; do\n";
  s << "  wait \"$srun_pid\"\n";
  s << "  rc=$?\n";
  s << "  [ \"$rc\" -gt 128 ] || break\n";
  s << "  # a trapped signal ends 'wait' early (status > 128) while srun still runs\n";
  s << "  kill -0 \"$srun_pid\" 2>/dev/null && continue\n";
  s << "  wait \"$srun_pid\"; r=$?; [ \"$r\" -eq 127 ] || rc=$r  # it ended meanwhile: its own status\n";
  s << "  break\n";
  s << "done\n";
  s << "echo \"dtrain submit: the training step exited with code $rc at $(date -Is)\"\n";
  s << "if [ \"$rc\" -eq 86 ] || [ -s \"$DTRAIN_WATCHDOG_MARKER\" ]; then\n";
  s << "  rm -f \"$DTRAIN_WATCHDOG_MARKER\"\n";
  s << "  restarts=${SLURM_RESTART_COUNT:-0}\n";
  s << "  if [ \"$restarts\" -lt " << o.max_restarts << " ]; then\n";
  s << "    echo \"dtrain submit: the watchdog ended the step (see its diagnosis above): requeueing to resume "
       "from the last checkpoint (restart $((restarts + 1)) of "
    << o.max_restarts << ")\"\n";
  s << "    scontrol requeue \"$SLURM_JOB_ID\" && exit 0\n";
  s << "    echo \"dtrain submit: scontrol requeue failed\"\n";
  s << "  else\n";
  s << "    echo \"dtrain submit: the watchdog ended the step again; not requeued after " << o.max_restarts
    << " restarts (--max-restarts)\"\n";
  s << "  fi\n";
  s << "fi\n";
  s << "exit \"$rc\"\n";
  return s.str();
}

}  // namespace dtrain::slurm
