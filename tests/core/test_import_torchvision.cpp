// Golden test of scripts/import_torchvision.py: a seeded torchvision VGG16 (random
// weights, nothing downloaded) is saved as a state_dict, converted, loaded into dtrain's
// VGG16 with models::load_weights, and dtrain's feature maps must equal PyTorch's at
// several layers for a small input. VGG16's weights are 59 MB, too large to commit, so
// PyTorch runs at test time: where /usr/bin/python3 lacks torch, torchvision or h5py the
// test is skipped with that reason, never passed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/io/h5.h"
#include "core/models/style_transfer.h"
#include "core/models/vgg.h"
#include "tests/support/compare.h"
#include "tests/support/paths.h"
#include "tests/support/run.h"

namespace dtrain::testing {
namespace {

namespace fs = std::filesystem;

const char* kMakeReference = R"(
import sys, h5py, torch, torchvision
out_dir = sys.argv[1]
torch.manual_seed(1234)
model = torchvision.models.vgg16()  # random initialization; no weights are downloaded
state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
torch.save(state, out_dir + "/vgg16_features.pth")
x = torch.rand(1, 3, 32, 32)
with torch.no_grad(), h5py.File(out_dir + "/expected.h5", "w") as f:
    f["input"] = x.numpy()
    h = x
    for i, layer in enumerate(model.features):
        h = layer(h)
        if i in (0, 4, 19, 30):
            f[f"layer{i}"] = h.numpy()
)";

std::string scripts_dir() { return (fs::path(fixture_path("")) / ".." / ".." / "scripts").lexically_normal().string(); }

class ImportTorchvision : public ::testing::Test {
 protected:
  void SetUp() override {
    const CommandResult probe = run_shell("/usr/bin/python3 -c 'import torch, torchvision, h5py'");
    if (probe.exit_code != 0) {
      GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision and h5py (Debian's python3-torch, "
                      "python3-torchvision, python3-h5py): "
                   << probe.output;
    }
    dir_ = make_test_dir("import_torchvision");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(ImportTorchvision, Vgg16FeaturesMatchPyTorchAfterConversion) {
  {
    std::ofstream(dir_ / "reference.py") << kMakeReference;
  }
  const CommandResult ref = run_shell("/usr/bin/python3 " + (dir_ / "reference.py").string() + " " + dir_.string());
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const std::string weights = (dir_ / "vgg16.h5").string();
  const CommandResult conv = run_shell("/usr/bin/python3 " + scripts_dir() + "/import_torchvision.py " +
                                       (dir_ / "vgg16_features.pth").string() + " " + weights);
  ASSERT_EQ(conv.exit_code, 0) << conv.output;
  EXPECT_TRUE(contains(conv.output, "26 tensors, 14,714,688 values")) << conv.output;

  models::VggConfig c = models::vgg16_config();
  c.pool_out = 0;
  c.hidden = 1;
  c.num_classes = 1;
  Generator gen(0);  // replaced by the file's values
  auto vgg = models::make_vgg(c, gen);
  models::load_weights(weights, *vgg);

  io::H5File f = io::H5File::open_read((dir_ / "expected.h5").string());
  autograd::NoGrad no_grad;
  Tensor h = f.read("/input");
  int64_t i = 0, compared = 0;
  for (const auto& [name, m] : vgg->features().children()) {
    h = m->forward(h);
    const std::string ds = "/layer" + std::to_string(i++);
    if (!f.has(ds)) continue;
    // Float sums of up to 3*3*512 products in another order than PyTorch's, through up to
    // 13 layers: relative to the layer's largest value.
    const Tensor want = f.read(ds);
    double peak = 0;
    for (float v : want.to_vector<float>()) peak = std::max(peak, static_cast<double>(std::fabs(v)));
    EXPECT_TRUE(tensors_close(ds, h, want, {1e-4, 1e-5 * peak})) << "features." << i - 1;
    ++compared;
  }
  EXPECT_EQ(compared, 4);
}

TEST_F(ImportTorchvision, RefusesAnotherNetworkAndAMissingFile) {
  std::string save = "/usr/bin/python3 -c 'import torch; torch.save({\"conv.weight\": torch.zeros(8, 3, 3, 3)}, \"";
  save += (dir_ / "not_vgg.pth").string();
  save += "\")'";
  ASSERT_EQ(run_shell(save).exit_code, 0) << save;
  const std::string script = "/usr/bin/python3 " + scripts_dir() + "/import_torchvision.py ";
  const CommandResult other = run_shell(script + (dir_ / "not_vgg.pth").string() + " " + (dir_ / "x.h5").string());
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_TRUE(contains(other.output, "is not a VGG16 state_dict: it lacks features.0.weight")) << other.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.h5"));
  const CommandResult missing = run_shell(script + (dir_ / "nope.pth").string() + " " + (dir_ / "x.h5").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "nope.pth does not exist")) << missing.output;
  // The converted file of another network is refused by dtrain too, naming the tensor.
  io::H5File wrong = io::H5File::create((dir_ / "wrong.h5").string());
  wrong.write("/model/features.0.weight", Tensor::zeros({8, 3, 3, 3}));
  wrong.close();
  models::VggConfig c = models::vgg16_config();
  c.pool_out = 0;
  c.hidden = 1;
  c.num_classes = 1;
  Generator gen(0);
  auto vgg = models::make_vgg(c, gen);
  try {
    models::load_weights((dir_ / "wrong.h5").string(), *vgg);
    ADD_FAILURE() << "a file of another network was loaded";
  } catch (const ValueError& e) {
    EXPECT_TRUE(contains(e.what(), "/model/features.0.weight is (8, 3, 3, 3) but the model's features.0.weight is "
                                   "(64, 3, 3, 3)"))
        << e.what();
  }
}

}  // namespace
}  // namespace dtrain::testing
