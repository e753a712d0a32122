// Running a program without a shell: see process.h.
#include "launcher/slurm/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace dtrain::slurm {

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input) {
  CommandResult r;
  if (argv.empty()) {
    r.output = "no command";
    return r;
  }
  int out_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.output = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    r.output = std::string("pipe: ") + std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 2);
  // The child starts with default signal dispositions and an empty mask, whatever
  // handlers the training process installed (SIGUSR1/SIGTERM only set a flag there).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    r.not_found = (rc == ENOENT);
    r.output = rc == ENOENT ? "'" + argv[0] + "' not found on PATH" : "cannot run '" + argv[0] + "': " + std::strerror(rc);
    return r;
  }
  r.started = true;

  // Feed stdin and drain stdout/stderr together, so neither side can block the other.
  size_t written = 0;
  int in_fd = in_pipe[1], out_fd = out_pipe[0];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
  }
  // Writing to a child that exited must not kill us with SIGPIPE.
  struct sigaction ign {}, old_pipe {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  char buf[4096];
  while (out_fd >= 0) {
    pollfd fds[2];
    int n = 0;
    fds[n++] = {out_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(out_fd, buf, sizeof buf);
      if (got > 0) {
        r.output.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(out_fd);
        out_fd = -1;
      }
    }
    if (in_fd >= 0 && n > 1 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = write(in_fd, input.data() + written, input.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if ((put < 0 && errno != EINTR && errno != EAGAIN) || written == input.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.output += "\n(killed by signal " + std::to_string(WTERMSIG(status)) + ")";
  }
  return r;
}

}  // namespace dtrain::slurm
