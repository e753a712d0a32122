// Fuzz target: reading a checkpoint (core/checkpoint.h). The input is the bytes of
// step-1.h5. Verification against a marker that matches the bytes always passes (the
// checksum cannot stop a file that was damaged before it was written, or made by
// someone else), so the target checks what comes after it: read() of the layout, and
// check_model() against a small model's parameters, as a resume does. HDF5's own crashes
// and endless loops are told apart first (Note [HDF5's own defects],
// tests/fuzz/hdf5_screen.h).
#include <filesystem>
#include <fstream>

#include "core/checkpoint.h"
#include "core/nn/module.h"
#include "core/tensor.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/hdf5_screen.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (dtrain::fuzz::empty_input_among_seeds(size)) return 0;
  namespace fs = std::filesystem;
  static const std::string dir = [] {
    std::string d = dtrain::fuzz::scratch_path("ckpt");
    fs::create_directories(d);
    return d;
  }();
  const std::string path = dir + "/step-1.h5";
  dtrain::fuzz::write_file(path, data, size);
  if (!dtrain::fuzz::hdf5_screen::library_survives(path)) {
    if (dtrain::fuzz::seeds_must_pass()) dtrain::fuzz::seed_refused("the HDF5 library cannot read it");
    return 0;
  }
  fs::remove(dir + "/step-1.ok");
  // Without a marker: refused as incomplete, whatever the bytes.
  try {
    dtrain::ckpt::verify(path);
    std::abort();  // a checkpoint without its marker must never verify
  } catch (const dtrain::IoError&) {
  }
  // With a marker that vouches for these bytes.
  {
    uint64_t bytes = 0;
    const uint64_t sum = dtrain::ckpt::hash_file(path, &bytes);
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(sum));
    std::ofstream(dir + "/step-1.ok") << "file step-1.h5\nbytes " << bytes << "\nxxh64 " << hex << "\n";
  }
  dtrain::fuzz::refuse_cleanly([&] {
    dtrain::ckpt::Contents c = dtrain::ckpt::read(path);
    // The parameters of the seed's model (`model.name = "mlp"`, 4 inputs, hidden 3, 2 classes).
    dtrain::nn::NamedTensors model = {
        {"1.weight", dtrain::Tensor::zeros({3, 4})},
        {"1.bias", dtrain::Tensor::zeros({3})},
        {"3.weight", dtrain::Tensor::zeros({2, 3})},
        {"3.bias", dtrain::Tensor::zeros({2})},
    };
    dtrain::ckpt::check_model(path, c.model, model);
  });
  return 0;
}
