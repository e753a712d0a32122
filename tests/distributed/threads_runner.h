#pragma once
// Runs a body on `world` threads, each with its own rank's threads-backend group, and
// reports every rank's failure (CaseFailure or any other exception) as a gtest failure.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/process_group.h"

namespace dtrain::dist::testing {

inline void run_ranks(int world, const std::function<void(ProcessGroup&)>& body, double timeout_seconds = 30.0) {
  auto groups = make_thread_groups(world, timeout_seconds);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(*groups[r]);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    if (!errors[r].empty()) ADD_FAILURE() << "rank " << r << " of " << world << ": " << errors[r];
  }
}

}  // namespace dtrain::dist::testing
