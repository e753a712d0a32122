/* faultfs: see faultfs.h. */
#define _GNU_SOURCE
#include "faultfs.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char armed_call[32];   /* "" = disarmed */
static char armed_paths[1024];
static long armed_nth, armed_count;
static int armed_err;
static long matched, failed;
static char log_path[1024];

void faultfs_arm(const char* call, const char* paths, long nth, long count, int err) {
  pthread_mutex_lock(&mu);
  snprintf(armed_call, sizeof armed_call, "%s", call ? call : "");
  snprintf(armed_paths, sizeof armed_paths, "%s", paths ? paths : "");
  armed_nth = nth;
  armed_count = count;
  armed_err = err;
  matched = failed = 0;
  pthread_mutex_unlock(&mu);
}

void faultfs_disarm(void) {
  pthread_mutex_lock(&mu);
  armed_call[0] = '\0';
  pthread_mutex_unlock(&mu);
}

long faultfs_matched(void) {
  pthread_mutex_lock(&mu);
  long n = matched;
  pthread_mutex_unlock(&mu);
  return n;
}

long faultfs_failed(void) {
  pthread_mutex_lock(&mu);
  long n = failed;
  pthread_mutex_unlock(&mu);
  return n;
}

static int errno_named(const char* s) {
  static const struct { const char* name; int value; } names[] = {
      {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"EFBIG", EFBIG}, {"EACCES", EACCES}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    if (strcmp(s, names[i].name) == 0) return names[i].value;
  }
  int v = atoi(s);
  return v > 0 ? v : EIO;
}

__attribute__((constructor)) static void faultfs_from_environment(void) {
  const char* call = getenv("DTRAIN_FAULT_CALL");
  if (!call || !*call) return;
  const char* paths = getenv("DTRAIN_FAULT_PATH");
  const char* nth = getenv("DTRAIN_FAULT_NTH");
  const char* count = getenv("DTRAIN_FAULT_COUNT");
  const char* err = getenv("DTRAIN_FAULT_ERRNO");
  const char* log = getenv("DTRAIN_FAULT_LOG");
  if (log) snprintf(log_path, sizeof log_path, "%s", log);
  faultfs_arm(call, paths ? paths : "", nth ? atol(nth) : 1, count ? atol(count) : 1, err ? errno_named(err) : EIO);
}

static int path_matches(const char* path) {
  if (!armed_paths[0]) return 1;
  if (!path) return 0;
  char buf[sizeof armed_paths];
  snprintf(buf, sizeof buf, "%s", armed_paths);
  char* save = NULL;
  for (char* tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (*tok && strstr(path, tok)) return 1;
  }
  return 0;
}

static void fd_path(int fd, char* out, size_t n) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, out, n - 1);
  out[k > 0 ? k : 0] = '\0';
}

/* Whether this call fails; sets errno when it does. `path` may be NULL when `fd` is given. */
static int should_fail(const char* call, const char* path, const char* path2, int fd) {
  if (!armed_call[0]) return 0; /* the fast path: a racy read of a flag set before use */
  pthread_mutex_lock(&mu);
  int fail = 0;
  int err = armed_err;
  char fdbuf[4096];
  if (armed_call[0] && strcmp(call, armed_call) == 0) {
    if (!path && fd >= 0) {
      fd_path(fd, fdbuf, sizeof fdbuf);
      path = fdbuf;
    }
    if (path_matches(path) || (path2 && path_matches(path2))) {
      ++matched;
      if (armed_nth > 0 && matched >= armed_nth && (armed_count < 0 || matched < armed_nth + armed_count)) {
        fail = 1;
        ++failed;
        if (log_path[0]) {
          FILE* f = fopen(log_path, "a");
          if (f) {
            fprintf(f, "%s %s %s\n", call, strerrorname_np(err) ? strerrorname_np(err) : "?", path ? path : "");
            fclose(f);
          }
        }
      }
    }
  }
  pthread_mutex_unlock(&mu);
  if (fail) errno = err;
  return fail;
}

/* The C library's `name`, looked up once. */
#define REAL(name)                        \
  static __typeof__(name)* real_##name;   \
  if (!real_##name) real_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)

int open(const char* path, int flags, ...) {
  REAL(open);
  mode_t mode = 0;
  if (flags & (O_CREAT | __O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (should_fail("open", path, NULL, -1)) return -1;
  return real_open(path, flags, mode);
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (should_fail("write", NULL, NULL, fd)) return -1;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  REAL(pwrite);
  if (should_fail("pwrite", NULL, NULL, fd)) return -1;
  return real_pwrite(fd, buf, n, offset);
}

int ftruncate(int fd, off_t length) {
  REAL(ftruncate);
  if (should_fail("ftruncate", NULL, NULL, fd)) return -1;
  return real_ftruncate(fd, length);
}

int fsync(int fd) {
  REAL(fsync);
  if (should_fail("fsync", NULL, NULL, fd)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync);
  if (should_fail("fdatasync", NULL, NULL, fd)) return -1;
  return real_fdatasync(fd);
}

/* A failed close still releases the descriptor (as Linux's close does on EIO), so that
 * a test does not leak it. */
int close(int fd) {
  REAL(close);
  if (should_fail("close", NULL, NULL, fd)) {
    int err = errno;
    real_close(fd);
    errno = err;
    return -1;
  }
  return real_close(fd);
}

int rename(const char* from, const char* to) {
  REAL(rename);
  if (should_fail("rename", from, to, -1)) return -1;
  return real_rename(from, to);
}
