#pragma once
// A process group that tells the watchdog about its collectives (docs/WATCHDOG.md): each
// one issued gets a number in the rank's Progress, and while the caller waits for it
// the rank's phase is "waiting in all-reduce #N". Everything else is the wrapped
// group's. With NCCL, Work::wait() does not block the host, so a hung collective shows
// where the host next blocks (a copy to the host, the step boundary).
#include <memory>

#include "distributed/process_group.h"
#include "launcher/control/progress.h"

namespace dtrain::control {

std::unique_ptr<dist::ProcessGroup> watch(std::unique_ptr<dist::ProcessGroup> inner, Progress& progress);

}  // namespace dtrain::control
