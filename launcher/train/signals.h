#pragma once
// Stop requests from signals: SIGTERM (Slurm's and the OS's "please end") and SIGUSR1
// (what `dtrain submit` asks Slurm to send some time before the job's limit) only set a
// flag here. The training loop (launcher/train/loop.h) reads it once per step and carries
// it on the per-step all-gather, so every rank stops after the same step and rank 0 writes
// a checkpoint (docs/CHECKPOINTS.md). Nothing else happens inside the handler: it is
// async-signal-safe by doing nothing but store a sig_atomic_t.
//
// The flag is process-wide state by nature (a signal is delivered to the process), the
// one exception to "no mutable globals".
namespace dtrain::signals {

// Installs the SIGTERM and SIGUSR1 handlers (SA_RESTART, so interrupted system calls
// resume). Idempotent.
void install_stop_handlers();
// True once SIGTERM or SIGUSR1 arrived (since install or reset).
bool stop_requested();
// The signal that set the flag (the last one), 0 when none.
int stop_signal();
// Sets the flag as signal `sig` would (an authorised `dtrain stop` uses SIGTERM's path).
void request_stop(int sig);
// Clears the flag (tests).
void reset();

}  // namespace dtrain::signals
