// The image captioning recipe: model.name = "captioning" (docs/CAPTIONING.md). One network
// (core/models/captioner.h) trained like the classifier (SingleNetworkRecipe) on an
// image-caption file (`dtrain data synth captions`): teacher-forced cross-entropy over the
// caption's tokens, averaged over the global batch's tokens exactly as seq2seq does (Note
// [Seq2seq loss over the global batch] in recipes/seq2seq.cpp), so W ranks at batch B train
// like one process at batch W * B.
//
// Evaluation, from counts all-reduced over the ranks' shards of the test file: the held-out
// loss per token (teacher forcing), and of the greedy captions: corpus BLEU-4, the share of
// exactly right captions, the share of well-formed ones (that the grammar of
// datasets/captions.h parses), and per-item correctness: of the cells holding an item,
// the share whose item the caption names in the right place (and of all cells, the share
// right, empty ones included). Rank 0 prints the first caption.captions test scenes' captions
// (the same scenes at every evaluation and world size: the first rows of the test file) and
// draws them (caption.samples) and the first one's attention over its decoding steps
// (caption.attention).
//
// Batches are trimmed to their longest caption before the forward, which only removes
// padding: the loss ignores <pad> targets and no output depends on later steps.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/functional.h"
#include "core/io/image.h"
#include "core/models/captioner.h"
#include "datasets/captions.h"
#include "datasets/text.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/caption_pictures.h"
#include "launcher/train/recipes/single_network.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

// Teacher-forcing tensors of one caption batch: tgt_in = captions[:, :-1], tgt_out =
// captions[:, 1:], trimmed to the batch's longest caption; i64 on `device`.
struct CaptionBatch {
  Tensor tgt_in, tgt_out;
  int64_t tokens = 0;  // non-pad entries of tgt_out
  int64_t width = 0;   // the trimmed caption length (with <s> and </s>)
  std::vector<int64_t> host;  // (B, width) trimmed captions, for scoring
};

CaptionBatch prepare(const data::Batch& b, Device device) {
  CaptionBatch s;
  if (b.size == 0) return s;
  auto host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::I64).to_vector<int64_t>(); };
  const std::vector<int64_t> ids = host(b.tokens), len = host(b.lengths);
  const int64_t n = b.size, stored = b.tokens.size(1);
  const int64_t w = *std::max_element(len.begin(), len.end());
  DT_CHECK_AS(w >= 2, IoError, "a caption shorter than 2 tokens (<s> and </s>) in the batch");
  s.width = w;
  s.host.resize(static_cast<size_t>(n * w));
  std::vector<int64_t> tin(static_cast<size_t>(n * (w - 1))), tout(tin.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < w; ++j) s.host[static_cast<size_t>(r * w + j)] = ids[static_cast<size_t>(r * stored + j)];
    for (int64_t j = 0; j + 1 < w; ++j) {
      tin[static_cast<size_t>(r * (w - 1) + j)] = ids[static_cast<size_t>(r * stored + j)];
      const int64_t out = ids[static_cast<size_t>(r * stored + j + 1)];
      tout[static_cast<size_t>(r * (w - 1) + j)] = out;
      s.tokens += out != 0;
    }
  }
  s.tgt_in = Tensor::from_vector(tin, {n, w - 1}).to(device);
  s.tgt_out = Tensor::from_vector(tout, {n, w - 1}).to(device);
  return s;
}

// Where each cell's item is right: [well-formed, exact, items, items right, cells right].
std::vector<double> score_caption(const std::vector<std::string>& hyp, const std::vector<std::string>& ref,
                                  const std::vector<std::string>& classes) {
  const std::vector<int64_t> want = data::parse_caption(ref, classes), got = data::parse_caption(hyp, classes);
  std::vector<double> s(5, 0.0);
  s[0] = got.empty() ? 0 : 1;
  s[1] = hyp == ref ? 1 : 0;
  for (size_t c = 0; c < want.size(); ++c) {
    const bool right = !got.empty() && got[c] == want[c];
    if (want[c] >= 0) {
      s[2] += 1;
      s[3] += right;
    }
    s[4] += right;
  }
  return s;
}

std::string caption_manifest(const std::string& split, const data::CaptionSchema& s) {
  std::ostringstream os;
  os << split << ": " << basename_of(s.images.path) << ", " << s.n << " scenes " << s.images.height << "x"
     << s.images.width << "x" << s.images.channels << ", captions " << s.max_len << " x " << s.vocab.size()
     << " words";
  return os.str();
}

std::string with_step(std::string path, int64_t step) {
  for (auto p = path.find("{step}"); p != std::string::npos; p = path.find("{step}")) {
    path.replace(p, 6, std::to_string(step));
  }
  const std::filesystem::path fp(path);
  if (fp.has_parent_path()) std::filesystem::create_directories(fp.parent_path());
  return path;
}

class CaptioningRecipe final : public SingleNetworkRecipe {
 public:
  explicit CaptioningRecipe(const Config& cfg) : SingleNetworkRecipe(cfg), opt_(cfg.caption) {}

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::ImageCaptions, ConfigError, "data.train = ", cfg_.data.train, " is a ",
                data::kind_name(train.kind()),
                " file; model.name = captioning needs an image-caption file (dtrain data synth captions)");
    schema_ = train.caption_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig& lc) override {
    open_test(lc, data::Kind::ImageCaptions,
              "model.name = captioning needs an image-caption file (dtrain data synth captions)");
    if (test_) {
      test_schema_ = test_->caption_schema();
      DT_CHECK_AS(test_schema_.vocab == schema_.vocab && test_schema_.classes == schema_.classes, ConfigError,
                  "data.test = ", cfg_.data.test, " and data.train = ", cfg_.data.train,
                  " have different vocabularies or items; write both with one `dtrain data synth captions` call");
      const data::ImageSchema &a = schema_.images, &b = test_schema_.images;
      DT_CHECK_AS(a.height == b.height && a.width == b.width && a.channels == b.channels, ConfigError, "data.test = ",
                  cfg_.data.test, " holds ", b.height, "x", b.width, "x", b.channels, " scenes, data.train = ",
                  cfg_.data.train, " ", a.height, "x", a.width, "x", a.channels);
    }
    models::CaptionerConfig cc = model_config(cfg_, schema_);
    // One initialization stream for every rank (rank 0's values are broadcast anyway).
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    auto net = std::make_shared<models::Captioner>(cc, gen);
    model_ = net.get();
    module_ = net;
    std::ostringstream desc;
    desc << "captioning " << cc.channels << "x" << cc.height << "x" << cc.width << " -> conv " << cc.conv_width
         << "x" << cc.stages << " stages -> " << cc.map_height() << "x" << cc.map_width() << " positions of "
         << cc.feature_channels() << " channels; LSTM " << cc.hidden << " with attention, emb " << cc.emb_dim
         << ", vocabulary " << cc.vocab;
    description_ = desc.str();
    finish_setup(ctx);
  }

  RunHeader header() const override {
    return base_header(format("%lld scenes %lldx%lldx%lld, captions of up to %lld tokens, vocabulary %zu (%zu items)",
                              static_cast<long long>(schema_.n), static_cast<long long>(schema_.images.height),
                              static_cast<long long>(schema_.images.width),
                              static_cast<long long>(schema_.images.channels), static_cast<long long>(schema_.max_len),
                              schema_.vocab.size(), schema_.classes.size()));
  }
  RateUnit rate_unit() const override { return {"tok/s", "tokens_per_s"}; }

  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    module_->eval();
    const int64_t max_len = opt_.max_decode_len > 0 ? opt_.max_decode_len
                                                    : std::max<int64_t>(1, test_schema_.max_len - 1);
    // [loss sum, tokens, scenes, well-formed, exact, items, items right, cells right]
    std::vector<double> sums(8, 0.0);
    data::BleuStats bleu;
    std::vector<std::string> shown;
    std::vector<ScenePixels> pictures;
    std::vector<std::vector<double>> first_alpha;  // the first shown scene's steps
    Tensor alpha;
    {
      autograd::NoGrad no_grad;
      const int64_t n = test_->batches_per_epoch();
      for (int64_t i = 0; i < n; ++i) {
        data::Batch b = test_->next();
        if (b.size == 0) continue;
        CaptionBatch s = prepare(b, ctx.world.device());
        Tensor logits = model_->forward_teacher(b.images, s.tgt_in);
        if (s.tokens > 0) {
          sums[0] += static_cast<double>(model_->loss(logits, s.tgt_out).item<float>()) * static_cast<double>(s.tokens);
        }
        sums[1] += static_cast<double>(s.tokens);
        sums[2] += static_cast<double>(b.size);
        const bool show = ctx.rank0() && static_cast<int64_t>(shown.size()) < opt_.captions;
        Tensor hyp = model_->greedy_decode(b.images, max_len, show ? &alpha : nullptr);
        const std::vector<int64_t> h = hyp.to(Device::cpu()).to_vector<int64_t>();
        for (int64_t r = 0; r < b.size; ++r) {
          const std::vector<int64_t> hr(h.begin() + r * max_len, h.begin() + (r + 1) * max_len);
          const std::vector<int64_t> ref(s.host.begin() + r * s.width, s.host.begin() + (r + 1) * s.width);
          const std::string hyp_text = data::detokenize(hr, test_schema_.vocab, "words");
          const std::string ref_text = data::detokenize(ref, test_schema_.vocab, "words");
          const std::vector<std::string> hw = data::split_words(hyp_text), rw = data::split_words(ref_text);
          bleu.add(hw, rw);
          const std::vector<double> sc = score_caption(hw, rw, test_schema_.classes);
          for (size_t k = 0; k < sc.size(); ++k) sums[3 + k] += sc[k];
          if (ctx.rank0() && static_cast<int64_t>(shown.size()) < opt_.captions) {
            shown.push_back(format("#%zu %s  (%s)%s", shown.size() + 1, hyp_text.c_str(), ref_text.c_str(),
                                   sc[1] > 0 ? "" : "  <- differs"));
            pictures.push_back(scene_pixels(b.images, r));
            if (first_alpha.empty()) first_alpha = steps_of(alpha, r, hr);
          }
        }
      }
    }
    module_->train();
    std::vector<double> all = sums;
    const std::vector<double> bv = bleu.to_vector();
    all.insert(all.end(), bv.begin(), bv.end());
    Tensor t = Tensor::from_vector<double>(all, {static_cast<int64_t>(all.size())});
    ctx.world.control().all_reduce(t, dist::ReduceOp::Sum)->wait();
    const std::vector<double> s = t.to_vector<double>();
    const data::BleuStats corpus = data::BleuStats::from_vector(std::vector<double>(s.begin() + 8, s.end()));
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    Metrics m;
    m.set("test_loss", ratio(s[0], s[1]));
    m.set("bleu", corpus.score());
    m.set("exact", ratio(s[4], s[2]));
    m.set("item_accuracy", ratio(s[6], s[5]));
    m.set("cell_accuracy", ratio(s[7], s[2] * data::kSceneCells));
    m.set("well_formed", ratio(s[3], s[2]));
    m.set("test_samples", s[2]);
    m.set("test_tokens", s[1]);
    if (ctx.rank0()) report(ctx, at, m, corpus, shown, pictures, first_alpha);
    return m;
  }

  std::string final_line(const TrainSummary& s, int world_size) const override {
    if (!s.evaluated) return SingleNetworkRecipe::final_line(s, world_size);
    return format("final held-out loss %.4f, BLEU-4 %.2f, exact captions %.2f%%, items right %.2f%% (%lld steps, "
                  "%d rank%s, %.1f s)",
                  s.eval.get("test_loss"), 100 * s.eval.get("bleu"), 100 * s.eval.get("exact"),
                  100 * s.eval.get("item_accuracy"), static_cast<long long>(s.steps), world_size,
                  world_size > 1 ? "s" : "", s.seconds);
  }

  // The model for a file's scenes and vocabulary.
  static models::CaptionerConfig model_config(const Config& cfg, const data::CaptionSchema& s) {
    models::CaptionerConfig cc;
    cc.channels = s.images.channels;
    cc.height = s.images.height;
    cc.width = s.images.width;
    cc.vocab = static_cast<int64_t>(s.vocab.size());
    cc.conv_width = cfg.caption.conv_width;
    cc.stages = cfg.caption.stages;
    cc.emb_dim = cfg.caption.emb_dim;
    cc.hidden = cfg.caption.hidden;
    return cc;
  }

 protected:
  Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) override {
    CaptionBatch s = prepare(b, world_->device());
    // The global token count of this micro-batch (Note [Seq2seq loss over the global batch]).
    double global_tokens = static_cast<double>(s.tokens);
    if (world_->size() > 1) {
      Tensor t = Tensor::from_vector<double>({global_tokens}, {1});
      world_->control().all_reduce(t, dist::ReduceOp::Sum)->wait();
      global_tokens = t.to_vector<double>()[0];
    }
    DT_CHECK(s.tokens > 0, "a training batch of ", b.size, " scenes without caption tokens");
    mean = model_->loss(model_->forward_teacher(b.images, s.tgt_in), s.tgt_out);
    const double weight = static_cast<double>(s.tokens) * world_->size() / global_tokens / static_cast<double>(accum);
    units = s.tokens;
    return fn::scale(mean, weight);
  }

  std::string file_manifest(const std::string& split, bool test) const override {
    return caption_manifest(split, test ? test_schema_ : schema_);
  }

 private:
  // Row r of a normalized batch (B, C, H, W) back to grey pixels.
  ScenePixels scene_pixels(const Tensor& images, int64_t r) const {
    const data::ImageSchema& s = test_schema_.images;
    ScenePixels p;
    p.height = s.height;
    p.width = s.width;
    const std::vector<float> v = images.rows(r, r + 1).to(Device::cpu()).to(DType::F32).to_vector<float>();
    p.pixels.resize(static_cast<size_t>(p.height * p.width));
    for (size_t i = 0; i < p.pixels.size(); ++i) {
      const double px = (v[i] * s.std[0] + s.mean[0]) * 255.0;
      p.pixels[i] = static_cast<uint8_t>(std::lround(std::clamp(px, 0.0, 255.0)));
    }
    return p;
  }

  // Row r's attention (B, L, P) over its decoded steps (up to and including </s>).
  static std::vector<std::vector<double>> steps_of(const Tensor& alpha, int64_t r, const std::vector<int64_t>& ids) {
    std::vector<std::vector<double>> out;
    if (!alpha.defined()) return out;
    const int64_t steps = alpha.size(1), positions = alpha.size(2);
    const std::vector<float> v = alpha.rows(r, r + 1).to_vector<float>();
    for (int64_t t = 0; t < steps && ids[static_cast<size_t>(t)] != 0; ++t) {
      out.emplace_back(v.begin() + t * positions, v.begin() + (t + 1) * positions);
    }
    return out;
  }

  // Rank 0: the evaluation's lines, metrics record and pictures.
  void report(const RunContext& ctx, const EvalPoint& at, const Metrics& m, const data::BleuStats& bleu,
              const std::vector<std::string>& shown, const std::vector<ScenePixels>& pictures,
              const std::vector<std::vector<double>>& first_alpha) {
    std::string grid, attention;
    if (!opt_.samples.empty() && !pictures.empty()) {
      grid = with_step(opt_.samples, at.step);
      io::write_image(grid, scene_grid(pictures, 4));
    }
    if (!opt_.attention.empty() && !pictures.empty() && !first_alpha.empty()) {
      attention = with_step(opt_.attention, at.step);
      io::write_image(attention, attention_panels(pictures[0], first_alpha, model_->config().map_height(),
                                                  model_->config().map_width()));
    }
    for (const std::string& line : shown) std::printf("  %s\n", line.c_str());
    std::printf("eval  step %lld/%lld | epoch %.2f | held-out loss %.4f (%lld tokens of %lld scenes) | BLEU-4 %.2f "
                "(precisions %.1f/%.1f/%.1f/%.1f) | exact %.2f%% | items right %.2f%% (cells %.2f%%, well-formed "
                "%.2f%%)%s%s%s%s\n",
                static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), at.epoch,
                m.get("test_loss"), static_cast<long long>(m.get("test_tokens")),
                static_cast<long long>(m.get("test_samples")), 100 * bleu.score(), 100 * bleu.precision(1),
                100 * bleu.precision(2), 100 * bleu.precision(3), 100 * bleu.precision(4), 100 * m.get("exact"),
                100 * m.get("item_accuracy"), 100 * m.get("cell_accuracy"), 100 * m.get("well_formed"),
                grid.empty() ? "" : " | ", grid.c_str(), attention.empty() ? "" : " | ", attention.c_str());
    std::fflush(stdout);
    std::string list = "[";
    for (size_t i = 0; i < shown.size(); ++i) {
      if (i > 0) list += ',';
      list += json_string(shown[i]);
    }
    ctx.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                      json_number(at.epoch) + ",\"test_loss\":" + json_number(m.get("test_loss")) + ",\"bleu\":" +
                      json_number(100 * bleu.score()) + ",\"exact\":" + json_number(m.get("exact")) +
                      ",\"item_accuracy\":" + json_number(m.get("item_accuracy")) + ",\"cell_accuracy\":" +
                      json_number(m.get("cell_accuracy")) + ",\"well_formed\":" + json_number(m.get("well_formed")) +
                      ",\"test_tokens\":" + std::to_string(static_cast<int64_t>(m.get("test_tokens"))) +
                      ",\"test_samples\":" + std::to_string(static_cast<int64_t>(m.get("test_samples"))) +
                      ",\"captions\":" + list + "]" + (grid.empty() ? "" : ",\"samples_png\":" + json_string(grid)) +
                      (attention.empty() ? "" : ",\"attention_png\":" + json_string(attention)) + ",\"time_s\":" +
                      json_number(at.elapsed) + "}");
  }

  const CaptionRecipeConfig& opt_;
  data::CaptionSchema schema_, test_schema_;
  models::Captioner* model_ = nullptr;  // module_
};

std::vector<ConfigKey> caption_keys() {
  return {
      DT_CONFIG_KEY("caption.conv_width", Int, caption.conv_width,
                    "captioning: channels of the encoder's first stage (doubled at each stage)"),
      DT_CONFIG_KEY("caption.stages", Int, caption.stages,
                    "captioning: encoder stages of conv 3x3 + ReLU + max-pool 2; the last map's positions are attended"),
      DT_CONFIG_KEY("caption.emb_dim", Int, caption.emb_dim, "captioning: word embedding width"),
      DT_CONFIG_KEY("caption.hidden", Int, caption.hidden, "captioning: decoder LSTM units"),
      DT_CONFIG_KEY("caption.captions", Int, caption.captions,
                    "captioning: test scenes printed with their greedy caption at each evaluation (the file's first)"),
      DT_CONFIG_KEY("caption.max_decode_len", Int, caption.max_decode_len,
                    "captioning: greedy decoding length limit; 0 = the test file's caption length"),
      DT_CONFIG_KEY("caption.samples", String, caption.samples,
                    "captioning: PNG of the printed test scenes, 4 a row, written by rank 0 at each evaluation "
                    "(\"{step}\" is replaced by the step); \"\" = none"),
      DT_CONFIG_KEY("caption.attention", String, caption.attention,
                    "captioning: PNG of the first printed scene and its attention at each decoding step (\"{step}\" "
                    "is replaced by the step); \"\" = none"),
  };
}

void validate_caption(const Config& c, const ConfigCheck& check) {
  const CaptionRecipeConfig& o = c.caption;
  if (o.conv_width < 1) check.fail("caption.conv_width", "must be >= 1");
  if (o.stages < 1 || o.stages > 6) check.fail("caption.stages", "must be in 1..6");
  if (o.emb_dim < 1) check.fail("caption.emb_dim", "must be >= 1");
  if (o.hidden < 1) check.fail("caption.hidden", "must be >= 1");
  if (o.captions < 0) check.fail("caption.captions", "must be >= 0");
  if (o.max_decode_len < 0) check.fail("caption.max_decode_len", "must be >= 0 (0: the test file's caption length)");
  if (c.model.name == "captioning") {
    if (c.data.pad_crop != 0 || c.data.hflip || c.data.random_resized_crop) {
      check.fail("data.augment", "does not apply to model.name = captioning: the captions say where each item is");
    }
    if (c.data.image_size != 0 || c.data.eval_resize != 0) {
      check.fail(c.data.image_size != 0 ? "data.image_size" : "data.eval_resize",
                 "must be 0 for model.name = captioning: the scenes are read at their stored size");
    }
    if (c.data.normalize == "tanh") check.fail("data.normalize", "must be meanstd or auto for model.name = captioning");
  } else {
    if (!o.samples.empty()) check.fail("caption.samples", "is for model.name = captioning only");
    if (!o.attention.empty()) check.fail("caption.attention", "is for model.name = captioning only");
  }
}

}  // namespace

RecipeEntry captioning_recipe() {
  return {"captioning", {"captioning"}, "docs/CAPTIONING.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<CaptioningRecipe>(cfg); },
          caption_keys, validate_caption};
}

}  // namespace dtrain::launcher
