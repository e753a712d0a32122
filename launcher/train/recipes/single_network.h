#pragma once
// SingleNetworkRecipe: the part of a recipe that trains one network with one optimizer,
// one LR schedule and one Reducer (the classifier and the translation recipes). A
// subclass builds the network in setup() (then calls finish_setup), supplies a
// micro-batch's objective, the evaluation and the data manifest; this class does the
// step (grad_accum micro-batches, the reducer syncing on the last), the progress fields,
// the checkpoint contents and their restore.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/nn/module.h"
#include "core/optim/lr_schedule.h"
#include "core/optim/optimizer.h"
#include "launcher/train/recipe.h"

namespace dtrain::launcher {

class SingleNetworkRecipe : public Recipe {
 public:
  void make_reducers(dist::ProcessGroup& group, const dist::ReducerOptions& options) override;
  Agreement agreement() const override;
  void broadcast_initial() override;
  StepResult step(StepInput& in, int64_t step) override;
  std::vector<std::string> stat_names() const override { return {"loss"}; }
  std::string progress(const std::vector<double>& sums, double units) const override;
  std::string progress_fields(const std::vector<double>& sums, double units) const override;
  Metrics step_metrics(const std::vector<double>& sums, double units) const override;
  std::vector<std::pair<std::string, Generator*>> rank_streams() override { return generators_; }
  void fill_checkpoint(ckpt::Contents& c) const override;
  void restore(const std::string& path, const ckpt::Contents& c) override;
  std::string world_size_note(int64_t written_by) const override;
  std::string final_line(const TrainSummary& s, int world_size) const override;
  bool evaluates() const override { return test_ != nullptr; }

 protected:
  explicit SingleNetworkRecipe(const Config& cfg) : cfg_(cfg) {}
  // After setup() set module_ and description_: device, train mode, optimizer, schedule,
  // random streams.
  void finish_setup(const RunContext& ctx);
  // One micro-batch's objective to differentiate (recorded on the step's tape); sets
  // `mean`, the loss to report, and `units`, what it averages over (samples or tokens).
  virtual Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) = 0;
  // The agreement check's line for the training file (test false) or data.test (true).
  virtual std::string file_manifest(const std::string& split, bool test) const = 0;
  // Opens data.test, when set, as test_: the evaluation batch size, in file order, every
  // sample once (no drop_last), no augmentation. Refuses a file of another kind than
  // `kind` (ConfigError ending with `needed`, e.g. "an image classification file is needed").
  void open_test(const data::LoaderConfig& lc, data::Kind kind, const std::string& needed);
  // What the network's inputs are (the agreement check's "inputs"): "meanstd", "tanh", ...
  virtual const char* inputs_name() const { return cfg_.data.normalize == "tanh" ? "tanh" : "meanstd"; }
  RunHeader base_header(std::string data) const;

  const Config& cfg_;
  World* world_ = nullptr;  // set by finish_setup
  std::shared_ptr<nn::Module> module_;
  std::string description_;
  nn::NamedTensors params_, buffers_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LrSchedule> schedule_;
  std::unique_ptr<dist::Reducer> reducer_;
  std::unique_ptr<data::Loader> test_;  // data.test; null without one
  std::vector<std::pair<std::string, Generator*>> generators_;  // this rank's streams
  double last_lr_ = 0;                                          // the rate of the last step
  std::vector<std::pair<Tensor, int64_t>> losses_;              // each micro-batch's mean loss, units
};

}  // namespace dtrain::launcher
