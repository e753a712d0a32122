// BlockSampler: sharding covers each epoch exactly once with disjoint, equal shards; reads
// are contiguous ranges; epochs differ; a cursor resumes the same stream on any world size.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "core/error.h"
#include "datasets/sampler.h"

namespace dtrain::data {
namespace {

SamplerConfig config(int64_t n, int64_t batch, int world, int rank, int64_t block = 16) {
  SamplerConfig c;
  c.num_samples = n;
  c.batch_size = batch;
  c.world_size = world;
  c.rank = rank;
  c.block_rows = block;
  c.window_blocks = 4;
  c.seed = 42;
  return c;
}

// All rows of one rank's batches in an epoch, batch by batch.
std::vector<std::vector<int64_t>> epoch_rows(const BlockSampler& s, int64_t epoch, int64_t cursor = 0) {
  std::vector<std::vector<int64_t>> out;
  Position p{epoch, cursor};
  while (true) {
    p = s.normalize(p);
    if (p.epoch != epoch) break;
    BatchPlan plan = s.plan(p);
    std::vector<int64_t> rows;
    for (const RowRange& r : plan.ranges) {
      EXPECT_GT(r.count, 0);
      EXPECT_GE(r.start, 0);
      EXPECT_LE(r.start + r.count, s.config().num_samples);
      for (int64_t i = 0; i < r.count; ++i) rows.push_back(r.start + i);
    }
    EXPECT_EQ(static_cast<int64_t>(rows.size()), plan.rows);
    out.push_back(rows);
    p = plan.next;
  }
  return out;
}

TEST(BlockSampler, ShardsCoverTheEpochOnceAndAreDisjoint) {
  const int64_t n = 1003, batch = 10;  // not a multiple of the block, the batch or the world
  for (int world = 1; world <= 4; ++world) {
    std::vector<int64_t> count(n, 0);
    std::vector<size_t> batches;
    for (int rank = 0; rank < world; ++rank) {
      BlockSampler s(config(n, batch, world, rank));
      auto rows = epoch_rows(s, 0);
      batches.push_back(rows.size());
      EXPECT_EQ(static_cast<int64_t>(rows.size()), s.batches_per_epoch());
      for (const auto& b : rows) {
        EXPECT_EQ(static_cast<int64_t>(b.size()), batch);
        for (int64_t r : b) count[static_cast<size_t>(r)]++;
      }
    }
    // Every rank the same number of batches; drop_last skips fewer than a global batch.
    for (size_t b : batches) EXPECT_EQ(b, batches[0]) << "world " << world;
    int64_t seen = std::count(count.begin(), count.end(), 1);
    EXPECT_EQ(std::count_if(count.begin(), count.end(), [](int64_t c) { return c > 1; }), 0) << "world " << world;
    EXPECT_EQ(seen, (n / (batch * world)) * batch * world) << "world " << world;
    EXPECT_LT(n - seen, batch * world);
  }
}

TEST(BlockSampler, WithoutDropLastEverySampleOnceAndEqualBatchCounts) {
  const int64_t n = 1003, batch = 10;
  for (int world = 1; world <= 4; ++world) {
    std::vector<int64_t> count(n, 0);
    std::vector<size_t> batches;
    for (int rank = 0; rank < world; ++rank) {
      SamplerConfig c = config(n, batch, world, rank);
      c.drop_last = false;
      BlockSampler s(c);
      auto rows = epoch_rows(s, 3);
      batches.push_back(rows.size());
      for (const auto& b : rows) {
        for (int64_t r : b) count[static_cast<size_t>(r)]++;
      }
    }
    for (size_t b : batches) EXPECT_EQ(b, batches[0]);
    EXPECT_EQ(std::count(count.begin(), count.end(), 1), n) << "world " << world;
  }
}

TEST(BlockSampler, EpochsDifferAndAreReproducible) {
  BlockSampler s(config(1000, 8, 2, 0));
  std::vector<int64_t> e0 = s.epoch_order(0), e1 = s.epoch_order(1);
  EXPECT_NE(e0, e1);
  std::vector<int64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);  // a permutation
  BlockSampler again(config(1000, 8, 2, 0));
  EXPECT_EQ(again.epoch_order(1), e1);
  SamplerConfig other = config(1000, 8, 2, 0);
  other.seed = 43;
  EXPECT_NE(BlockSampler(other).epoch_order(0), e0);
  // The stream does not depend on the world size or the batch size.
  EXPECT_EQ(BlockSampler(config(1000, 5, 3, 2)).epoch_order(1), e1);
}

TEST(BlockSampler, ReadsAreContiguousSegmentsWithinBlocks) {
  SamplerConfig c = config(4096, 64, 2, 1, 64);
  c.segment_rows = 8;
  BlockSampler s(c);
  BatchPlan plan = s.plan({0, 0});
  EXPECT_LE(plan.ranges.size(), 8u + 1);  // 64 rows in segments of 8 (adjacent ones merged)
  for (size_t i = 0; i < plan.ranges.size(); ++i) {
    EXPECT_EQ(plan.ranges[i].start % 8, 0);  // whole segments, in file order, merged
    if (i > 0) {
      EXPECT_GT(plan.ranges[i].start, plan.ranges[i - 1].start + plan.ranges[i - 1].count);
    }
  }
  // A full permutation would scatter; segments mix several blocks of the window.
  std::set<int64_t> blocks;
  for (const RowRange& r : plan.ranges) blocks.insert(r.start / 64);
  EXPECT_GT(blocks.size(), 1u);
}

TEST(BlockSampler, NoShuffleIsTheFileOrder) {
  SamplerConfig c = config(100, 10, 2, 1);
  c.shuffle = false;
  BlockSampler s(c);
  BatchPlan p = s.plan({0, 20});
  ASSERT_EQ(p.ranges.size(), 1u);
  EXPECT_EQ(p.ranges[0], (RowRange{30, 10}));
}

TEST(BlockSampler, CursorResumesTheSameBatches) {
  const int64_t n = 777;
  // Uninterrupted: world 2, batch 6, epoch 1.
  BlockSampler r0(config(n, 6, 2, 0)), r1(config(n, 6, 2, 1));
  auto a0 = epoch_rows(r0, 1), a1 = epoch_rows(r1, 1);
  // Resume after k = 5 batches from the cursor: the same future batches.
  const int64_t k = 5;
  Position after{1, k * 12};
  auto b0 = epoch_rows(r0, 1, after.cursor), b1 = epoch_rows(r1, 1, after.cursor);
  ASSERT_EQ(b0.size(), a0.size() - k);
  for (size_t i = 0; i < b0.size(); ++i) {
    EXPECT_EQ(b0[i], a0[i + k]);
    EXPECT_EQ(b1[i], a1[i + k]);
  }
  // Resume on another world size (3 ranks x 4): the same stream continues, so the samples
  // still to come are exactly those the 2-rank run had not consumed.
  std::set<int64_t> rest_2, rest_3;
  for (size_t i = k; i < a0.size(); ++i) {
    rest_2.insert(a0[i].begin(), a0[i].end());
    rest_2.insert(a1[i].begin(), a1[i].end());
  }
  for (int rank = 0; rank < 3; ++rank) {
    BlockSampler s(config(n, 4, 3, rank));
    for (const auto& b : epoch_rows(s, 1, after.cursor)) rest_3.insert(b.begin(), b.end());
  }
  std::vector<int64_t> order = r0.epoch_order(1);
  std::set<int64_t> consumed(order.begin(), order.begin() + after.cursor);
  for (int64_t r : rest_3) EXPECT_EQ(consumed.count(r), 0u) << "row " << r << " seen twice";
  // Both global batches hold 12 samples, so both runs consume the same rest of the epoch.
  EXPECT_EQ(rest_2, rest_3);
  // And the 3 ranks' shares of the next global batch are the next 12 stream positions,
  // each rank's 4 consecutive ones (handed out in file order).
  BlockSampler q0(config(n, 4, 3, 0)), q1(config(n, 4, 3, 1)), q2(config(n, 4, 3, 2));
  int rank = 0;
  for (const BlockSampler* q : {&q0, &q1, &q2}) {
    std::vector<int64_t> got;
    for (const RowRange& r : q->plan(after).ranges) {
      for (int64_t i = 0; i < r.count; ++i) got.push_back(r.start + i);
    }
    auto from = order.begin() + after.cursor + 4 * rank++;
    std::vector<int64_t> want(from, from + 4);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
  }
}

TEST(BlockSampler, EpochRollsOverAndRejectsBadSettings) {
  BlockSampler s(config(100, 10, 3, 0));  // 30 per global batch: 3 batches, 10 dropped
  EXPECT_EQ(s.batches_per_epoch(), 3);
  EXPECT_EQ(s.normalize({0, 90}), (Position{1, 0}));
  EXPECT_EQ(s.normalize({0, 60}), (Position{0, 60}));
  EXPECT_THROW(s.normalize({0, 101}), ValueError);
  EXPECT_THROW(BlockSampler(config(100, 40, 3, 0)), ValueError);  // global batch > N
  EXPECT_THROW(BlockSampler(config(100, 10, 3, 3)), ValueError);  // rank out of range
  EXPECT_THROW(BlockSampler(config(0, 10, 1, 0)), ValueError);
}

}  // namespace
}  // namespace dtrain::data
