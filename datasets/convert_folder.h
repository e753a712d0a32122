#pragma once
// A folder of images, one subfolder per class (the layout of torchvision's ImageFolder),
// to an HDF5 image classification file: the raw schema (/images u8 (N, H, W, C), one size
// for all) or the encoded-images schema (each image's encoded bytes; schema.h,
// docs/DATASETS.md). `dtrain data convert folder`.
//
// What is read: the subfolders of ROOT are the classes, sorted by name (byte order; the
// label of a class is its index). Within a class folder, every file below it (nested
// folders included, symbolic links followed) whose name ends in .jpg, .jpeg, .png, .pgm or
// .ppm (any case) is an image; names starting with '.' and files with other endings are
// ignored and counted in the summary, as are files directly in ROOT. A class folder
// without images stays a class (with no samples; named in the summary), so that labels
// keep following the sorted folder names.
//
// What is written: the images in a seeded random order (so that the sampler's contiguous
// blocks mix classes), each converted to `channels` (grayscale replicated to RGB, RGB to
// luma), optionally resized (shorter side) and centre-cropped; /paths holds each row's
// path relative to ROOT. With store = "encoded", an image that is neither resized nor
// cropped keeps its file's bytes as they are (after a full decode proves them readable);
// one that is, is re-encoded (JPEG at `quality`, or PNG). Attributes mean and std are
// computed from the pixels as the loader sees them before augmentation.
//
// Bad files (unreadable, truncated, not an image although named like one) are each reported
// by path through `warn` and skipped when skip_errors, and otherwise stop the conversion
// with an IoError naming the file (the partial outputs are removed). Files decode on
// `workers` threads; the output is the same whatever their number.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dtrain::data {

struct FolderProgress {
  int64_t done = 0, total = 0;  // images processed (written or skipped) and to process
  double elapsed_s = 0;
};

struct FolderOptions {
  std::string store = "encoded";  // "encoded" | "raw"
  int64_t resize = 0;             // shorter side in pixels; 0: as stored
  int64_t crop = 0;               // centre crop to crop x crop; 0: none
  int64_t channels = 3;           // 1 (grayscale) or 3 (RGB)
  std::string encode = "jpeg";    // encoded store, resized or cropped images: "jpeg" | "png"
  int quality = 90;               // JPEG quality of re-encoded images, 1..100
  double split = 0;               // share of each class's images written to split_out, [0, 1)
  std::string split_out;          // the held-out file (required when split > 0)
  uint64_t seed = 0;              // the row order and the split
  int workers = 0;                // decoding threads; 0: the cores this process may run on
  bool skip_errors = false;       // skip bad files (each reported) instead of stopping
  int64_t chunk_rows = 64;        // rows per chunk of /images, /labels, ... (the sampler's block)
  bool checksum = true;           // a Fletcher-32 checksum per chunk of every dataset
  std::function<void(const FolderProgress&)> progress;  // called a few times a second, and at the end
  std::function<void(const std::string&)> warn;         // a skipped file, as it happens
};

// The classes and image files of a folder, before any decoding.
struct FolderListing {
  std::vector<std::string> classes;             // sorted folder names
  std::vector<std::vector<std::string>> files;  // per class: paths relative to the root, sorted
  std::vector<std::string> ignored;             // files that are not images by name, relative
  int64_t images() const;
};
// Throws IoError when root is not a folder or holds no class folder.
FolderListing list_image_folder(const std::string& root);

// Returns the summary for the CLI.
std::string convert_folder(const std::string& root, const std::string& out, const FolderOptions& options);

}  // namespace dtrain::data
