// Screening the fuzz inputs that are HDF5 files (Note [HDF5's own defects]): the file is
// read whole by the HDF5 library alone, in a separate program with a CPU-time limit
// (dtrain_hdf5_screen, hdf5_screen_main.cpp), so that a target can tell the library's own
// crashes and endless loops from its code's.
//
// Note [HDF5's own defects]: the HDF5 library (1.10 in Debian 12) crashes by itself on some
// damaged files, for example in variable-length string data, and spins without end on
// others (a damaged global heap behind a variable-length string attribute, HDF5 issue
// #1707; h5dump spins on such a file too), whoever reads them. dtrain cannot catch a
// segfault inside the library, nor interrupt it. So each input is first read whole by the
// library alone in another program (every object, dataset, attribute and chunk index, no
// dtrain code) with 3 s of CPU time: inputs that kill it or use up its time are skipped
// (counted in a summary at exit), and every crash or hang that remains is one that
// dtrain's code takes part in. A program of its own, not a fork of the target: a fork
// would carry libFuzzer's malloc limit and crash handlers into the child, which then
// saved the library's failures as findings of the target.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

extern char** environ;

namespace dtrain::fuzz::hdf5_screen {

inline std::atomic<long> library_crashes{0}, library_hangs{0}, inputs{0};

inline void report_at_exit() {
  std::fprintf(stderr, "fuzz: %ld of %ld inputs crashed the HDF5 library by itself and %ld spun past its CPU "
                       "limit in it; they were skipped (Note [HDF5's own defects])\n",
               library_crashes.load(), inputs.load(), library_hangs.load());
}

// False when reading the file with the HDF5 library alone (DTRAIN_HDF5_SCREEN, the path of
// dtrain_hdf5_screen) ends abnormally or uses up its CPU time.
inline bool library_survives(const std::string& path) {
  ++inputs;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const char* program = DTRAIN_HDF5_SCREEN;
  char* const argv[] = {const_cast<char*>(program), const_cast<char*>(path.c_str()), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, program, &actions, nullptr, argv, environ) != 0) {
    std::fprintf(stderr, "fuzz: cannot start %s\n", program);
    std::abort();
  }
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (library_crashes + library_hangs == 0) std::atexit(report_at_exit);
  const bool out_of_time = WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL);
  ++(out_of_time ? library_hangs : library_crashes);
  return false;
}

}  // namespace dtrain::fuzz::hdf5_screen
