// BlockSampler: see sampler.h, Note [Epoch stream].
#include "datasets/sampler.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace dtrain::data {

BlockSampler::BlockSampler(SamplerConfig c) : config_(c) {
  DT_CHECK(c.num_samples > 0, "BlockSampler: the dataset has no samples (num_samples = ", c.num_samples, ")");
  DT_CHECK(c.batch_size > 0, "BlockSampler: batch_size must be positive, got ", c.batch_size);
  DT_CHECK(c.world_size > 0, "BlockSampler: world_size must be positive, got ", c.world_size);
  DT_CHECK(c.rank >= 0 && c.rank < c.world_size, "BlockSampler: rank ", c.rank, " is outside [0, ", c.world_size,
           ")");
  DT_CHECK(c.block_rows > 0, "BlockSampler: block_rows must be positive, got ", c.block_rows);
  DT_CHECK(c.window_blocks > 0, "BlockSampler: window_blocks must be positive, got ", c.window_blocks);
  DT_CHECK(c.segment_rows >= 0, "BlockSampler: segment_rows must be >= 0, got ", c.segment_rows);
  if (config_.segment_rows == 0) config_.segment_rows = std::max<int64_t>(1, (c.block_rows + 1) / 2);
  config_.segment_rows = std::min(config_.segment_rows, config_.block_rows);
  DT_CHECK(!c.drop_last || global_batch() <= c.num_samples, "BlockSampler: a global batch of ", global_batch(),
           " samples (", c.world_size, " ranks x ", c.batch_size, ") is larger than the dataset (", c.num_samples,
           " samples), so an epoch would have no batch; lower the batch size");
}

int64_t BlockSampler::batches_per_epoch(int64_t cursor) const {
  int64_t left = std::max<int64_t>(0, config_.num_samples - cursor);
  int64_t g = global_batch();
  return config_.drop_last ? left / g : (left + g - 1) / g;
}

Position BlockSampler::normalize(Position p) const {
  DT_CHECK(p.epoch >= 0 && p.cursor >= 0, "BlockSampler: negative position (epoch ", p.epoch, ", cursor ", p.cursor,
           ")");
  DT_CHECK(p.cursor <= config_.num_samples, "BlockSampler: cursor ", p.cursor, " is beyond the dataset's ",
           config_.num_samples, " samples; was the checkpoint made with another dataset?");
  if (batches_per_epoch(p.cursor) == 0) return {p.epoch + 1, 0};
  return p;
}

std::vector<BlockSampler::Segment> BlockSampler::build_table(int64_t epoch) const {
  const int64_t n = config_.num_samples, b = config_.block_rows, s = config_.segment_rows;
  std::vector<Segment> table;
  if (!config_.shuffle) {
    table.push_back({0, n, 0});
    return table;
  }
  const int64_t nblocks = (n + b - 1) / b;
  std::vector<int64_t> blocks(static_cast<size_t>(nblocks));
  for (int64_t i = 0; i < nblocks; ++i) blocks[static_cast<size_t>(i)] = i;
  Generator block_gen = Generator::derive(config_.seed, static_cast<uint64_t>(epoch), "sampler.blocks");
  for (int64_t i = nblocks - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(block_gen.next_below(static_cast<uint64_t>(i + 1)));
    std::swap(blocks[static_cast<size_t>(i)], blocks[static_cast<size_t>(j)]);
  }
  Generator seg_gen = Generator::derive(config_.seed, static_cast<uint64_t>(epoch), "sampler.segments");
  table.reserve(static_cast<size_t>(n / s + nblocks));
  int64_t pos = 0;
  for (int64_t w = 0; w < nblocks; w += config_.window_blocks) {
    size_t first = table.size();
    for (int64_t k = w; k < std::min(nblocks, w + config_.window_blocks); ++k) {
      int64_t row = blocks[static_cast<size_t>(k)] * b, end = std::min(n, row + b);
      for (; row < end; row += s) table.push_back({row, std::min(s, end - row), 0});
    }
    size_t count = table.size() - first;
    for (size_t i = count; i-- > 1;) {
      size_t j = static_cast<size_t>(seg_gen.next_below(i + 1));
      std::swap(table[first + i], table[first + j]);
    }
    for (size_t i = first; i < table.size(); ++i) {
      table[i].pos = pos;
      pos += table[i].count;
    }
  }
  return table;
}

std::shared_ptr<const std::vector<BlockSampler::Segment>> BlockSampler::epoch_table(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_epoch_ == epoch) return cached_;
  }
  auto table = std::make_shared<const std::vector<Segment>>(build_table(epoch));
  std::lock_guard<std::mutex> lock(mu_);
  cached_epoch_ = epoch;
  cached_ = table;
  return table;
}

BatchPlan BlockSampler::plan(Position p) const {
  p = normalize(p);
  const int64_t n = config_.num_samples, g = global_batch();
  const int64_t r = config_.rank, w = config_.world_size;
  int64_t m = std::min(g, n - p.cursor);  // samples in this global batch
  int64_t begin, end;
  if (m == g) {
    begin = p.cursor + r * config_.batch_size;
    end = begin + config_.batch_size;
  } else {  // the last, partial batch without drop_last: split evenly
    begin = p.cursor + r * m / w;
    end = p.cursor + (r + 1) * m / w;
  }
  BatchPlan out;
  out.at = p;
  out.next = {p.epoch, p.cursor + m};
  out.rows = end - begin;
  if (begin == end) return out;

  auto table = epoch_table(p.epoch);
  // The segment holding stream position `begin`: the last one starting at or before it.
  auto it = std::upper_bound(table->begin(), table->end(), begin,
                             [](int64_t v, const Segment& s) { return v < s.pos; });
  --it;
  for (int64_t at = begin; at < end; ++it) {
    int64_t skip = at - it->pos;
    int64_t take = std::min(it->count - skip, end - at);
    out.ranges.push_back({it->row + skip, take});
    at += take;
  }
  // A batch is a set of samples: read it in file order, neighbours merged, so the loader
  // can fetch it with one HDF5 selection (Note [Epoch stream]).
  std::sort(out.ranges.begin(), out.ranges.end(),
            [](const RowRange& a, const RowRange& b) { return a.start < b.start; });
  size_t kept = 0;
  for (size_t i = 0; i < out.ranges.size(); ++i) {
    if (kept > 0 && out.ranges[kept - 1].start + out.ranges[kept - 1].count == out.ranges[i].start) {
      out.ranges[kept - 1].count += out.ranges[i].count;
    } else {
      out.ranges[kept++] = out.ranges[i];
    }
  }
  out.ranges.resize(kept);
  return out;
}

std::vector<int64_t> BlockSampler::epoch_order(int64_t epoch) const {
  auto table = epoch_table(epoch);
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(config_.num_samples));
  for (const Segment& s : *table) {
    for (int64_t i = 0; i < s.count; ++i) order.push_back(s.row + i);
  }
  return order;
}

}  // namespace dtrain::data
