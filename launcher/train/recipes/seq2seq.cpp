// The translation recipe: model.name = "seq2seq" (docs/SEQ2SEQ.md). One network trained
// like the classifier (SingleNetworkRecipe); the set-up, the micro-batch loss and the
// evaluation (held-out loss, token accuracy, BLEU of greedy translations) differ.
//
// Note [Seq2seq loss over the global batch]: a batch's loss is the cross-entropy averaged
// over its non-pad target tokens, and batches differ in their token counts. If each rank
// averaged over its own tokens and the reducer then averaged the ranks' gradients, a rank
// with few tokens would weigh as much as one with many, and W ranks at batch B would not
// equal one process at batch W*B. So each micro-batch first all-reduces its token count
// (one 8-byte all-reduce on the control group, before the forward), and the rank's
// objective is (sum of its token losses) * W / (global tokens) / grad_accum: after the
// reducer's division by W, the gradient is exactly that of the mean over every token of
// the global micro-batch. A single process computes the same with W = 1.
//
// Batches are trimmed to their longest source and target before the forward (the files
// pad to the longest sequence of the whole set), which only removes padding: the model
// masks by length, so the result is the same and the work is less.
#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/functional.h"
#include "core/models/seq2seq.h"
#include "datasets/text.h"
#include "launcher/train/common.h"
#include "launcher/train/recipes/single_network.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

namespace {

// The trimmed, i64 tensors of one pair batch on `device`.
struct SeqBatch {
  Tensor src, src_len, tgt_in, tgt_out;
  int64_t tokens = 0;  // non-pad entries of tgt_out (what the loss averages over)
  int64_t size = 0;
  std::vector<int64_t> src_host, tgt_host;  // trimmed rows, for printing
  int64_t src_width = 0, tgt_width = 0;
};

SeqBatch prepare(const data::Batch& b, Device device) {
  SeqBatch s;
  s.size = b.size;
  if (b.size == 0) return s;
  auto host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::I64).to_vector<int64_t>(); };
  std::vector<int64_t> src = host(b.src), tgt = host(b.tgt), src_len = host(b.src_len), tgt_len = host(b.tgt_len);
  const int64_t n = b.size, sw = b.src.size(1), tw = b.tgt.size(1);
  const int64_t smax = *std::max_element(src_len.begin(), src_len.end());
  const int64_t tmax = *std::max_element(tgt_len.begin(), tgt_len.end());
  DT_CHECK_AS(tmax >= 2, IoError, "a target sequence shorter than 2 tokens (<s> and </s>) in the pair batch");
  s.src_width = smax;
  s.tgt_width = tmax;
  s.src_host.resize(static_cast<size_t>(n * smax));
  s.tgt_host.resize(static_cast<size_t>(n * tmax));
  std::vector<int64_t> tin(static_cast<size_t>(n * (tmax - 1))), tout(tin.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < smax; ++j) s.src_host[static_cast<size_t>(r * smax + j)] = src[static_cast<size_t>(r * sw + j)];
    for (int64_t j = 0; j < tmax; ++j) s.tgt_host[static_cast<size_t>(r * tmax + j)] = tgt[static_cast<size_t>(r * tw + j)];
    for (int64_t j = 0; j + 1 < tmax; ++j) {
      tin[static_cast<size_t>(r * (tmax - 1) + j)] = tgt[static_cast<size_t>(r * tw + j)];
      const int64_t out = tgt[static_cast<size_t>(r * tw + j + 1)];
      tout[static_cast<size_t>(r * (tmax - 1) + j)] = out;
      s.tokens += out != 0;
    }
  }
  s.src = Tensor::from_vector(s.src_host, {n, smax}).to(device);
  s.src_len = Tensor::from_vector(src_len, {n}).to(device);
  s.tgt_in = Tensor::from_vector(tin, {n, tmax - 1}).to(device);
  s.tgt_out = Tensor::from_vector(tout, {n, tmax - 1}).to(device);
  return s;
}

std::string pair_manifest(const std::string& split, const data::PairSchema& s) {
  std::ostringstream os;
  os << split << ": " << basename_of(s.path) << ", " << s.n << " pairs, src " << s.src_max_len << " x "
     << s.src_vocab.size() << " tokens, tgt " << s.tgt_max_len << " x " << s.tgt_vocab.size() << " tokens ("
     << s.tokens << ")";
  return os.str();
}

class Seq2SeqRecipe final : public SingleNetworkRecipe {
 public:
  explicit Seq2SeqRecipe(const Config& cfg) : SingleNetworkRecipe(cfg) {}

  void check_train_data(const RunContext&, data::Loader& train) override {
    DT_CHECK_AS(train.kind() == data::Kind::SequencePairs, ConfigError, "data.train = ", cfg_.data.train, " is a ",
                data::kind_name(train.kind()), " file; model.name = seq2seq needs a sequence-pair file");
    train_pairs_ = train.pair_schema();
  }

  void setup(const RunContext& ctx, const data::LoaderConfig& lc) override {
    open_test(lc, data::Kind::SequencePairs, "model.name = seq2seq needs a sequence-pair file");
    if (test_) {
      test_pairs_ = test_->pair_schema();
      DT_CHECK_AS(test_pairs_.src_vocab == train_pairs_.src_vocab && test_pairs_.tgt_vocab == train_pairs_.tgt_vocab,
                  ConfigError, "data.test = ", cfg_.data.test, " and data.train = ", cfg_.data.train,
                  " have different vocabularies; write both with one `dtrain data convert pairs` call");
    }
    models::Seq2SeqConfig sc;
    sc.src_vocab = static_cast<int64_t>(train_pairs_.src_vocab.size());
    sc.tgt_vocab = static_cast<int64_t>(train_pairs_.tgt_vocab.size());
    sc.emb_dim = cfg_.model.emb_dim;
    sc.hidden = cfg_.model.hidden > 0 ? cfg_.model.hidden : 256;
    sc.layers = cfg_.model.layers;
    sc.bidirectional_encoder = cfg_.model.bidirectional;
    sc.attention = cfg_.model.attention;
    // One initialization stream for every rank (rank 0's values are broadcast anyway).
    Generator gen = Generator::derive(static_cast<uint64_t>(cfg_.seed), 0, "init");
    auto net = std::make_shared<models::Seq2Seq>(sc, gen);
    seq_model_ = net.get();
    std::ostringstream desc;
    desc << "seq2seq " << train_pairs_.tokens << " " << sc.src_vocab << " -> " << sc.tgt_vocab << " (emb " << sc.emb_dim
         << ", " << (sc.bidirectional_encoder ? "bidirectional " : "") << "LSTM " << sc.hidden << " x " << sc.layers
         << ", " << sc.attention << " attention)";
    module_ = net;
    description_ = desc.str();
    finish_setup(ctx);
  }

  RunHeader header() const override {
    const data::PairSchema& p = train_pairs_;
    return base_header(std::to_string(p.n) + " pairs, " + p.tokens + ", vocabularies " +
                       std::to_string(p.src_vocab.size()) + " / " + std::to_string(p.tgt_vocab.size()));
  }
  RateUnit rate_unit() const override { return {"tok/s", "tokens_per_s"}; }

  Metrics evaluate(const RunContext& ctx, const EvalPoint& at) override {
    module_->eval();
    const int64_t max_len =
        cfg_.seq2seq.max_decode_len > 0 ? cfg_.seq2seq.max_decode_len : std::max<int64_t>(1, test_pairs_.tgt_max_len - 1);
    double loss_sum = 0, tokens = 0, correct = 0, sentences = 0;
    data::BleuStats bleu;
    std::vector<std::string> shown;
    {
      autograd::NoGrad no_grad;
      const int64_t n = test_->batches_per_epoch();
      for (int64_t i = 0; i < n; ++i) {
        data::Batch b = test_->next();
        if (b.size == 0) continue;
        SeqBatch s = prepare(b, ctx.world.device());
        Tensor logits = seq_model_->forward_teacher(s.src, s.src_len, s.tgt_in);
        if (s.tokens > 0) {
          loss_sum += static_cast<double>(seq_model_->loss(logits, s.tgt_out).item<float>()) * static_cast<double>(s.tokens);
        }
        const int64_t v = logits.size(1);
        std::vector<float> l = logits.to(Device::cpu()).to(DType::F32).to_vector<float>();
        std::vector<int64_t> y = s.tgt_out.to(Device::cpu()).to_vector<int64_t>();
        for (size_t r = 0; r < y.size(); ++r) {
          if (y[r] == 0) continue;
          const float* row = l.data() + static_cast<int64_t>(r) * v;
          correct += (std::max_element(row, row + v) - row) == y[r];
        }
        tokens += static_cast<double>(s.tokens);
        Tensor hyp = seq_model_->greedy_decode(s.src, s.src_len, max_len);
        std::vector<int64_t> h = hyp.to(Device::cpu()).to_vector<int64_t>();
        for (int64_t r = 0; r < s.size; ++r) {
          std::vector<int64_t> hr(h.begin() + r * max_len, h.begin() + (r + 1) * max_len);
          std::vector<int64_t> ref(s.tgt_host.begin() + r * s.tgt_width, s.tgt_host.begin() + (r + 1) * s.tgt_width);
          const std::string hyp_text = data::detokenize(hr, test_pairs_.tgt_vocab, test_pairs_.tokens);
          const std::string ref_text = data::detokenize(ref, test_pairs_.tgt_vocab, test_pairs_.tokens);
          bleu.add(data::split_words(hyp_text), data::split_words(ref_text));
          if (ctx.world.rank() == 0 && static_cast<int64_t>(shown.size()) < cfg_.seq2seq.translations) {
            std::vector<int64_t> src(s.src_host.begin() + r * s.src_width, s.src_host.begin() + (r + 1) * s.src_width);
            shown.push_back(data::detokenize(src, test_pairs_.src_vocab, test_pairs_.tokens) + " => " + hyp_text + "  (" +
                            ref_text + ")");
          }
        }
        sentences += static_cast<double>(s.size);
      }
    }
    module_->train();
    std::vector<double> sums = {loss_sum, tokens, correct, sentences};
    std::vector<double> b = bleu.to_vector();
    sums.insert(sums.end(), b.begin(), b.end());
    Tensor t = Tensor::from_vector<double>(sums, {static_cast<int64_t>(sums.size())});
    ctx.world.control().all_reduce(t, dist::ReduceOp::Sum)->wait();
    std::vector<double> s = t.to_vector<double>();
    const double loss = s[1] > 0 ? s[0] / s[1] : 0;
    const double accuracy = s[1] > 0 ? s[2] / s[1] : 0;  // token accuracy
    data::BleuStats all = data::BleuStats::from_vector(std::vector<double>(s.begin() + 4, s.end()));
    Metrics m;
    m.set("test_loss", loss);
    m.set("token_accuracy", accuracy);
    m.set("bleu", all.score());
    m.set("test_samples", s[3]);
    m.set("test_tokens", s[1]);
    if (ctx.rank0()) {
      for (const std::string& line : shown) std::printf("  %s\n", line.c_str());
      std::printf("eval  step %lld/%lld | epoch %.2f | held-out loss %.4f (%lld tokens of %lld pairs) | token accuracy "
                  "%.2f%% | BLEU %.2f (precisions %.1f/%.1f/%.1f/%.1f)\n",
                  static_cast<long long>(at.step), static_cast<long long>(ctx.total_steps), at.epoch, loss,
                  static_cast<long long>(s[1]), static_cast<long long>(s[3]), 100 * accuracy, 100 * all.score(),
                  100 * all.precision(1), 100 * all.precision(2), 100 * all.precision(3), 100 * all.precision(4));
      std::fflush(stdout);
      std::string list = "[";
      for (size_t i = 0; i < shown.size(); ++i) {
      if (i > 0) list += ',';
      list += json_string(shown[i]);
    }
      ctx.write_metrics("{\"kind\":\"eval\",\"step\":" + std::to_string(at.step) + ",\"epoch\":" +
                        json_number(at.epoch) + ",\"test_loss\":" + json_number(loss) + ",\"token_accuracy\":" +
                        json_number(accuracy) + ",\"bleu\":" + json_number(100 * all.score()) + ",\"test_tokens\":" +
                        std::to_string(static_cast<int64_t>(s[1])) + ",\"test_samples\":" +
                        std::to_string(static_cast<int64_t>(s[3])) + ",\"translations\":" + list +
                        "],\"time_s\":" + json_number(at.elapsed) + "}");
    }
    return m;
  }

  std::string final_line(const TrainSummary& s, int world_size) const override {
    if (!s.evaluated) return SingleNetworkRecipe::final_line(s, world_size);
    return format("final held-out loss %.4f, token accuracy %.2f%%, BLEU %.2f (%lld steps, %d rank%s, %.1f s)",
                  s.eval.get("test_loss"), 100 * s.eval.get("token_accuracy"), 100 * s.eval.get("bleu"),
                  static_cast<long long>(s.steps), world_size, world_size > 1 ? "s" : "", s.seconds);
  }

 protected:
  Tensor objective(const data::Batch& b, int64_t accum, Tensor& mean, int64_t& units) override {
    SeqBatch s = prepare(b, world_->device());
    // The global token count of this micro-batch (Note [Seq2seq loss over the global batch]).
    double global_tokens = static_cast<double>(s.tokens);
    if (world_->size() > 1) {
      Tensor t = Tensor::from_vector<double>({global_tokens}, {1});
      world_->control().all_reduce(t, dist::ReduceOp::Sum)->wait();
      global_tokens = t.to_vector<double>()[0];
    }
    // Every target holds at least </s>, so each rank's share has tokens.
    DT_CHECK(s.tokens > 0, "a training batch of ", s.size, " pairs without target tokens");
    mean = seq_model_->loss(seq_model_->forward_teacher(s.src, s.src_len, s.tgt_in), s.tgt_out);
    const double weight = static_cast<double>(s.tokens) * world_->size() / global_tokens / static_cast<double>(accum);
    units = s.tokens;
    return fn::scale(mean, weight);
  }

  std::string file_manifest(const std::string& split, bool test) const override {
    return pair_manifest(split, test ? test_pairs_ : train_pairs_);
  }

 private:
  data::PairSchema train_pairs_, test_pairs_;
  models::Seq2Seq* seq_model_ = nullptr;  // module_
};

std::vector<ConfigKey> seq2seq_keys() {
  return {
      DT_CONFIG_KEY("model.emb_dim", Int, model.emb_dim, "seq2seq: embedding width of both vocabularies"),
      DT_CONFIG_KEY("model.layers", Int, model.layers, "seq2seq: LSTM layers of the encoder and of the decoder"),
      DT_CONFIG_KEY("model.bidirectional", Bool, model.bidirectional,
                    "seq2seq: bidirectional encoder, hidden / 2 units per direction (model.hidden must be even)"),
      DT_CONFIG_KEY("model.attention", String, model.attention, "seq2seq: Luong attention scoring, dot | general"),
      DT_CONFIG_KEY("seq2seq.translations", Int, seq2seq.translations,
                    "seq2seq: held-out sentences printed with their greedy translation at each evaluation"),
      DT_CONFIG_KEY("seq2seq.max_decode_len", Int, seq2seq.max_decode_len,
                    "seq2seq: greedy decoding length limit; 0 = the test file's target length"),
  };
}

void validate_seq2seq(const Config& c, const ConfigCheck& check) {
  check.one_of("model.attention", c.model.attention, {"dot", "general"});
  if (c.model.emb_dim < 1) check.fail("model.emb_dim", "must be >= 1");
  if (c.model.layers < 1) check.fail("model.layers", "must be >= 1");
  if (c.seq2seq.translations < 0) check.fail("seq2seq.translations", "must be >= 0");
  if (c.seq2seq.max_decode_len < 0) {
    check.fail("seq2seq.max_decode_len", "must be >= 0 (0: the test file's target length)");
  }
  if (c.model.name == "seq2seq") {
    const int64_t hidden = c.model.hidden > 0 ? c.model.hidden : 256;
    if (c.model.bidirectional && hidden % 2 != 0) {
      check.fail("model.hidden", "must be even with model.bidirectional = true (each direction has hidden / 2 units)");
    }
    if (c.data.pad_crop != 0 || c.data.hflip) {
      check.fail("data.augment", "is for images; model.name = seq2seq reads sequence pairs");
    }
  }
}

}  // namespace

RecipeEntry seq2seq_recipe() {
  return {"seq2seq", {"seq2seq"}, "docs/SEQ2SEQ.md",
          [](const Config& cfg) -> std::unique_ptr<Recipe> { return std::make_unique<Seq2SeqRecipe>(cfg); },
          seq2seq_keys, validate_seq2seq};
}

}  // namespace dtrain::launcher
