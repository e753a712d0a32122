// The World's description of where the ranks run (the run header's placement line;
// tests/multinode/ checks it across emulated nodes).
#include <gtest/gtest.h>

#include "launcher/train/world.h"

namespace dtrain::launcher {
namespace {

TEST(WorldPlacement, GroupsRanksByHostInFirstSeenOrder) {
  EXPECT_EQ(describe_placement({"node1", "node1", "node2", "node2"}, {"cpu", "cpu", "cpu", "cpu"}),
            "node1: ranks 0-1; node2: ranks 2-3");
  EXPECT_EQ(describe_placement({"b", "a", "b", "b", "a"}, {"cpu", "cpu", "cpu", "cpu", "cpu"}),
            "b: ranks 0, 2-3; a: ranks 1, 4");
  EXPECT_EQ(describe_placement({"solo"}, {"cpu"}), "solo: rank 0");
}

TEST(WorldPlacement, NamesTheDevicesWhenNotTheCpu) {
  EXPECT_EQ(describe_placement({"node1", "node1", "node2", "node2"}, {"cuda:0", "cuda:1", "cuda:0", "cuda:1"}),
            "node1: ranks 0-1 on cuda:0, cuda:1; node2: ranks 2-3 on cuda:0, cuda:1");
}

}  // namespace
}  // namespace dtrain::launcher
