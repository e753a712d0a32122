#pragma once
// Loader: this rank's batches of an HDF5 dataset, read ahead on a thread pool.
//
// Note [Loader pipeline]: the consumer thread (the trainer) owns the schedule. Each
// next() releases the slot it returned last time, posts fill jobs for the next batches
// (the BlockSampler's plans, in order) to a Boost.Asio thread_pool until `prefetch`
// batches are in flight, then waits for the oldest one. A fill job reads the plan's row
// ranges (contiguous hyperslabs; HDF5 reads are serialized by one mutex, since the
// library holds a global lock anyway) and then, outside the lock and in parallel with
// other jobs, augments and normalizes. Slots form a ring of prefetch + 1 reusable
// buffers: on the CPU the buffers are the output tensors themselves; for a CUDA device
// they are pinned host buffers, copied to device tensors on the loader's own copy
// stream, and the consumer's stream waits on an Event (no host synchronize).
//
// Lifetimes: a returned batch's tensors stay valid as long as they are held. When the
// consumer still holds a slot's tensors at the time the slot is refilled, the loader
// gives the slot fresh buffers instead of overwriting them (a cost, never corruption).
//
// Errors: an exception in a fill job (a damaged file, a read error) is stored in its slot
// and rethrown by the next() that reaches that batch, and by every next() after it
// (until seek()). Destruction while jobs run waits for the running ones (jobs not yet
// started are skipped), so it neither hangs nor touches freed memory.
#include <cstdint>
#include <memory>
#include <string>

#include "core/device.h"
#include "core/tensor.h"
#include "datasets/augment.h"
#include "datasets/sampler.h"
#include "datasets/schema.h"

namespace dtrain::data {

struct LoaderConfig {
  std::string path;
  int64_t batch_size = 0;  // per rank
  int world_size = 1;
  int rank = 0;
  uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = true;
  int64_t block_rows = 0;  // 0: the file's chunk extent along N (64 for contiguous files)
  int64_t window_blocks = 0;  // 0: max(16, 2048 / block_rows), so a window holds >= 2048 rows
  int64_t segment_rows = 0;   // 0: ceil(block_rows / 2)
  int prefetch = 0;          // batches read ahead; 0: 2..8 by batch size (a ring within ~16 MiB)
  int threads = 2;           // pool threads, >= 1
  bool raw = false;          // images as stored, u8 (B, H, W, C), not normalized
  bool images_only = false;  // read an image file without labels (GANs)
  // Image files: the output's side. 0: the size the file's images share (an error for an
  // encoded-images file whose sizes differ). Images of another size are resized and
  // centre-cropped, or random-resized-cropped with augment.random_resized_crop
  // (image_transform.h); encoded-images files are decoded in the pool's threads.
  int64_t image_size = 0;
  int64_t eval_resize = 0;    // shorter side before the centre crop; 0: image_size
  bool reduced_decode = true; // Note [Reduced JPEG decoding]
  Augment augment;
  Device device = Device::cpu();
};

// Note [Encoded images in the loader]: for the encoded-images schema a fill job reads the
// bytes of its row ranges (offsets kept in memory; contiguous rows are contiguous bytes,
// so a batch is still a few reads), then decodes and fits each sample
// (image_transform.h). Decoding costs far more than reading, so the samples of one batch
// are shared with helper jobs on the pool: every pool thread works on the batches in
// flight, however few they are. The batch is the raw path's: same layout, same
// normalization, same pad-crop/flip draws.
//
// One batch of this rank. Image files fill images (f32 (B, C, H, W) normalized with the
// file's mean/std, or u8 (B, H, W, C) when raw) and labels (i64 (B,)); sequence-pair files
// fill src, tgt (i32 (B, Lmax)) and src_len, tgt_len (i32 (B,)); sequence-classification
// files fill tokens (i32 (B, Lmax), <pad> = 0 past each length), lengths (i32 (B,)) and
// labels (i64 (B,)); image-caption files fill images (as image files), tokens (the
// captions, i32 (B, Lmax)) and lengths (i32 (B,)).
struct Batch {
  Position at;    // where this global batch started
  Position next;  // where the next one starts (the cursor to checkpoint after this step)
  int64_t size = 0;
  Tensor images, labels;
  Tensor src, tgt, src_len, tgt_len;
  Tensor tokens, lengths;
};

class Loader {
 public:
  // Opens and validates the file (IoError naming the file, dataset and problem) and
  // starts prefetching from `start`.
  explicit Loader(LoaderConfig config, Position start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Kind kind() const;
  const ImageSchema& image_schema() const;  // image files (image-caption files: their images)
  const PairSchema& pair_schema() const;    // sequence-pair files only
  const SequenceSchema& sequence_schema() const;  // sequence-classification files only
  const CaptionSchema& caption_schema() const;    // image-caption files only
  int64_t num_samples() const;              // N of the file, whatever its kind
  const BlockSampler& sampler() const;
  int64_t batches_per_epoch() const;

  // The next batch; blocks while it is being read. Rethrows a fill job's exception.
  Batch next();
  // Where the next batch returned by next() starts.
  Position position() const;
  // Drops the read-ahead and continues from `p` (resume).
  void seek(Position p);
  // Total seconds next() spent waiting for data.
  double wait_seconds() const;
  // Batches read ahead (the configured depth, or the one chosen for prefetch = 0).
  int prefetch() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::data
