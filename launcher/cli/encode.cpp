// `dtrain encode`: see commands.h and docs/AUTOENCODER.md.
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/h5.h"
#include "core/models/autoencoder.h"
#include "datasets/loader.h"
#include "launcher/cli/args.h"
#include "launcher/cli/commands.h"
#include "launcher/train/common.h"
#include "launcher/train/config.h"
#include "launcher/train/recipes/image_inputs.h"

namespace dtrain::cli {

namespace {

constexpr const char* kEpilog =
    "The model is rebuilt from the config stored in the checkpoint (a checkpoint of the\n"
    "autoencoder recipe) and DATA's image size. DATA's images go through the encoder in file\n"
    "order, as in training (pixels p/255, no noise). OUT gets /codes (N, code) float32, and\n"
    "/labels (N) int64 when DATA has labels, so the codes can be plotted by class; attributes\n"
    "name the checkpoint, its step and DATA. OUT is written to OUT.tmp and renamed when\n"
    "complete. Read it with h5py: h5py.File(OUT)['codes'][:].\n"
    "\n"
    "Example:\n"
    "  dtrain train configs/autoencoder_fashion_mnist.toml\n"
    "  dtrain encode --checkpoint runs/autoencoder/checkpoints/step-4685.h5 data/fashion_mnist_test.h5 \\\n"
    "      --out runs/autoencoder/codes.h5\n"
    "\n"
    "Exit codes: 0 written, 1 a file could not be read or written, 2 bad usage or input (a missing\n"
    "checkpoint, one of another recipe, images of another size than the model's).";

}  // namespace

int encode_main(const std::vector<std::string>& args) {
  ArgParser p("dtrain encode", "Writes the code an autoencoder gives each image of an HDF5 image file.");
  p.add_positional("DATA", "HDF5 image file (docs/DATASETS.md), e.g. data/fashion_mnist_test.h5");
  p.add_option("checkpoint", "CKPT", "a checkpoint of the autoencoder recipe (step-<N>.h5)");
  p.add_option("out", "FILE", "the HDF5 file to write");
  p.add_option("batch", "N", "images per forward pass", "256");
  p.set_epilog(kEpilog);
  p.parse(args);
  if (p.help_requested()) {
    std::printf("%s", p.help().c_str());
    return 0;
  }
  for (const char* o : {"checkpoint", "out"}) {
    if (!p.has(o)) DT_THROW(ConfigError, "dtrain encode: --", o, " is required (see dtrain encode --help)");
  }
  const std::string ckpt_path = p.get("checkpoint"), data_path = p.get("DATA"), out = p.get("out");
  const int64_t batch = p.get_int("batch");
  DT_CHECK_AS(batch >= 1, ConfigError, "dtrain encode: --batch must be >= 1, got ", batch);
  DT_CHECK_AS(std::filesystem::exists(ckpt_path), ConfigError, "dtrain encode: --checkpoint ", ckpt_path,
              " does not exist (a checkpoint step-<N>.h5 that dtrain train wrote to its checkpoint.dir)");
  DT_CHECK_AS(std::filesystem::exists(data_path), ConfigError, "dtrain encode: DATA ", data_path, " does not exist");

  const ckpt::Contents c = ckpt::read(ckpt_path);  // verifies marker, checksum and format version
  const launcher::Config cfg = launcher::parse_config(c.trainer.config, "the config stored in " + ckpt_path);
  DT_CHECK_AS(cfg.model.name == "autoencoder", ConfigError, "dtrain encode: --checkpoint ", ckpt_path, " is a ",
              cfg.model.name, " checkpoint; it needs one of the autoencoder recipe (model.name = autoencoder)");

  data::LoaderConfig lc;
  lc.path = data_path;
  lc.batch_size = batch;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.images_only = true;
  data::Loader loader(lc);
  DT_CHECK_AS(loader.kind() == data::Kind::ImageOnly, ConfigError, "dtrain encode: DATA ", data_path, " is a ",
              data::kind_name(loader.kind()), " file; an image file is needed");
  const data::ImageSchema& s = loader.image_schema();

  models::AutoencoderConfig ac;
  ac.channels = s.channels;
  ac.height = s.height;
  ac.width = s.width;
  ac.width_mult = cfg.autoencoder.width;
  ac.code = cfg.autoencoder.code;
  Generator gen = Generator::derive(0, 0, "init");  // replaced by the checkpoint's values
  models::ConvAutoencoder model(ac, gen);
  try {
    launcher::load_model(ckpt_path, c, model);
  } catch (const ValueError& e) {
    DT_THROW(ConfigError, "dtrain encode: ", e.what(), " (the model rebuilt for ", data_path, "'s ", s.height, "x",
             s.width, "x", s.channels, " images: are they the size it was trained on?)");
  }
  model.eval();

  launcher::PixelInputs px;
  px.range = launcher::PixelInputs::Range::kUnit;
  std::vector<float> codes;
  codes.reserve(static_cast<size_t>(s.n * ac.code));
  {
    autograd::NoGrad no_grad;
    for (int64_t i = 0, n = loader.batches_per_epoch(); i < n; ++i) {
      data::Batch b = loader.next();
      if (b.size == 0) continue;
      const std::vector<float> v = model.encode(px.apply(b.images, s)).to(DType::F32).to_vector<float>();
      codes.insert(codes.end(), v.begin(), v.end());
    }
  }
  const int64_t n = static_cast<int64_t>(codes.size()) / ac.code;
  const std::string tmp = out + ".tmp";
  const std::filesystem::path op(out);
  if (op.has_parent_path()) std::filesystem::create_directories(op.parent_path());
  bool labels = false;
  try {
    io::H5File f = io::H5File::create(tmp);
    f.write("/codes", Tensor::from_vector<float>(codes, {n, ac.code}));
    io::H5File in = io::H5File::open_read(data_path);
    if (in.has("/labels")) {
      f.write("/labels", in.read("/labels"));
      labels = true;
    }
    f.set_attribute("/", "checkpoint", ckpt_path);
    f.set_attribute("/", "step", c.trainer.step);
    f.set_attribute("/", "data", data_path);
    f.close();
    io::commit_file(tmp, out, "dtrain encode");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  std::printf("encode: %lld images -> %s (/codes %lld x %lld float32%s; checkpoint step %lld)\n",
              static_cast<long long>(n), out.c_str(), static_cast<long long>(n), static_cast<long long>(ac.code),
              labels ? ", /labels" : "", static_cast<long long>(c.trainer.step));
  return 0;
}

}  // namespace dtrain::cli
