// Preloaded into every process of a sanitized test run (scripts/sanitize.sh asan), never
// instrumented: dlclose() does nothing, so shared objects opened with dlopen() (Open MPI's
// MCA plugins) stay mapped until the process exits. LeakSanitizer then names the module of
// each frame of what they still hold at exit, and lsan.supp can suppress those by name;
// without this the frames read "<unknown module>" and match nothing. Open MPI 5 has a
// switch for this (mca_base_component_disable_dlclose); 4.1 has not.
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
