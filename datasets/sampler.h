#pragma once
// BlockSampler: which rows of the file each rank reads for each batch, by arithmetic.
//
// Note [Epoch stream]: for epoch e the sampler defines one order of all N samples, the
// same on every rank and independent of the world size and batch size:
//   1. the rows are cut into blocks of `block_rows` (aligned to the file's chunks along N;
//      the last block may be shorter), and the blocks are shuffled by a Philox stream
//      seeded by (seed, e);
//   2. consecutive groups of `window_blocks` shuffled blocks form windows; each block is
//      cut into segments of `segment_rows`, and the segments of a window are shuffled
//      (a second stream seeded by (seed, e)).
// The stream is the concatenation of those segments. With a global batch of G = W * b
// samples (W ranks, b per rank), global batch g covers stream positions [c, c + G) where c
// is the global cursor (samples consumed by all ranks so far in this epoch), and rank r
// takes [c + r*b, c + (r+1)*b). A rank's batch is thus a set of whole or partial
// segments, each a contiguous hyperslab; they are handed out sorted by file row, with
// file neighbours merged (order within a batch carries no information: the loss is a
// mean over it), so the loader reads a batch with one HDF5 selection. No rank touches
// another's rows, and a cursor saved on W ranks resumes the same stream on W' ranks.
//
// Last partial batch: with drop_last (the default, for training) an epoch has
// floor((N - c0) / G) batches and the remaining < G samples (a random set, different each
// epoch) are skipped; every rank has the same number of equal batches. Without drop_last
// (evaluation) the last global batch is split as evenly as possible: every rank still has
// the same number of batches, the last one smaller (possibly empty) on some ranks.
// docs/DATASETS.md compares the randomness with a full permutation.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace dtrain::data {

struct SamplerConfig {
  int64_t num_samples = 0;
  int64_t batch_size = 0;  // per rank
  int world_size = 1;
  int rank = 0;
  int64_t block_rows = 64;     // set to the file's chunk extent along N
  int64_t window_blocks = 16;  // blocks whose segments are shuffled together
  int64_t segment_rows = 0;    // 0: ceil(block_rows / 2)
  uint64_t seed = 0;
  bool shuffle = true;    // false: the file's order, one contiguous range per batch
  bool drop_last = true;  // see Note [Epoch stream]
};

struct RowRange {
  int64_t start = 0, count = 0;
  bool operator==(const RowRange&) const = default;
};

// Where the data stream stands: the epoch and the global cursor within it.
struct Position {
  int64_t epoch = 0;
  int64_t cursor = 0;
  bool operator==(const Position&) const = default;
};

// This rank's share of one global batch.
struct BatchPlan {
  Position at;              // where the global batch starts
  Position next;            // where the following one starts
  std::vector<RowRange> ranges;  // file rows: sorted, disjoint, neighbours merged
  int64_t rows = 0;         // sum of the range counts
};

class BlockSampler {
 public:
  // Throws ValueError for inconsistent settings (batch larger than the dataset, rank out
  // of range, non-positive sizes).
  explicit BlockSampler(SamplerConfig config);

  const SamplerConfig& config() const { return config_; }
  int64_t global_batch() const { return config_.batch_size * config_.world_size; }
  // Batches per rank in an epoch that starts at global cursor `cursor`.
  int64_t batches_per_epoch(int64_t cursor = 0) const;
  // The position itself, or the start of the next epoch when no batch is left at it.
  Position normalize(Position p) const;
  // This rank's rows for the global batch at normalize(p). Thread-safe.
  BatchPlan plan(Position p) const;
  // The whole epoch stream (file row of each stream position): for tests and docs.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Segment {
    int64_t row, count, pos;  // file rows [row, row + count) at stream position pos
  };
  std::shared_ptr<const std::vector<Segment>> epoch_table(int64_t epoch) const;
  std::vector<Segment> build_table(int64_t epoch) const;

  SamplerConfig config_;
  mutable std::mutex mu_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<Segment>> cached_;
};

}  // namespace dtrain::data
