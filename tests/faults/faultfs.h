/* faultfs: a test library that makes chosen file-system calls fail (docs/CHECKPOINTS.md,
 * "Fault injection"). It defines open, write, pwrite, ftruncate, fsync, fdatasync, close
 * and rename; a process that links it (dtrain_fault_tests) or loads it with LD_PRELOAD
 * (the dtrain program in the loop-level tests) runs its own code, HDF5's sec2 driver and
 * libstdc++ through it. Disarmed, every call goes straight to the C library.
 *
 * Armed, a call named `call` whose file path contains one of the comma-separated
 * substrings of `paths` ("" matches every path; for write/pwrite/ftruncate/fsync/
 * fdatasync/close the path is the descriptor's, from /proc/self/fd; for rename either
 * name) is a *matching call*. Matching calls number from 1; calls nth .. nth+count-1
 * (count -1: every call from nth on) fail with errno `err` and do nothing. nth 0 only
 * counts them.
 *
 * From the environment, read when the library loads (for LD_PRELOAD):
 *   DTRAIN_FAULT_CALL=fsync DTRAIN_FAULT_PATH=step-8.h5 DTRAIN_FAULT_NTH=1
 *   DTRAIN_FAULT_COUNT=1 DTRAIN_FAULT_ERRNO=EIO|ENOSPC|EDQUOT|EROFS|EFBIG|<number>
 *   DTRAIN_FAULT_LOG=file   each injected failure appends "call errno path" to file
 */
#ifndef DTRAIN_TESTS_FAULTFS_H
#define DTRAIN_TESTS_FAULTFS_H

#ifdef __cplusplus
extern "C" {
#endif

void faultfs_arm(const char* call, const char* paths, long nth, long count, int err);
void faultfs_disarm(void);
long faultfs_matched(void); /* matching calls since arming */
long faultfs_failed(void);  /* calls made to fail since arming */

#ifdef __cplusplus
}
#endif

#endif
