#pragma once
// The training configuration: a TOML file (docs/TRAINING.md) plus `--set key=value`
// overrides, read into a typed Config.
//
// Every key has a type, a default and a one-line description in one table (config.cpp,
// kKeys), which drives parsing, `--set`, validation messages, `dtrain train --help` and
// the canonical dump. Unknown keys, values of the wrong type and values out of range are
// ConfigErrors naming the key and the file (or "--set"), so a typo never trains silently
// with a default.
#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::launcher {

struct ModelConfig {
  std::string name = "small_cnn";  // mlp | small_cnn | small_vgg | vgg16_cifar | vgg16 | dcgan | seq2seq
  int64_t classes = 0;             // 0: the number of classes of the training file
  int64_t hidden = 0;              // hidden width of the classifier; 0: the model's default
  double dropout = 0.5;            // vgg16 / vgg16_cifar classifier dropout
  bool batch_norm = false;         // small_cnn / vgg16 / vgg16_cifar / dcgan: BatchNorm2d after convolutions
  double fc_dropout = 0.0;         // mlp / small_cnn: dropout before the last layer (0 = none)
  int64_t z_dim = 100;             // dcgan: noise dimension (nz)
  int64_t g_channels = 64;         // dcgan: generator width (ngf)
  int64_t d_channels = 64;         // dcgan: discriminator width (ndf)
  int64_t emb_dim = 64;            // seq2seq: embedding width (both sides)
  int64_t layers = 1;              // seq2seq: LSTM layers of the encoder and of the decoder
  bool bidirectional = true;       // seq2seq: bidirectional encoder (hidden / 2 units per direction)
  std::string attention = "dot";   // seq2seq: dot | general (Luong scoring)
};

struct DataConfig {
  std::string train;          // HDF5 image classification file, or sequence pairs for seq2seq (docs/DATASETS.md)
  std::string test;           // optional; "" disables evaluation
  int64_t pad_crop = 0;       // augment.pad_crop: random crop after zero padding by this many pixels
  bool hflip = false;         // augment.hflip: random horizontal flip
  // Image size and geometry (datasets/image_transform.h), for encoded-images files and for
  // raw files of another size: the output side (0: the file's common size), the shorter
  // side before the evaluation centre crop (0: image_size), and torchvision's
  // RandomResizedCrop for training with its scale and aspect ratio ranges.
  int64_t image_size = 0;
  int64_t eval_resize = 0;
  bool random_resized_crop = false;          // augment.random_resized_crop
  std::vector<double> rrc_scale = {0.08, 1.0};              // augment.scale
  std::vector<double> rrc_ratio = {3.0 / 4.0, 4.0 / 3.0};  // augment.ratio
  int64_t workers = 1;        // loader threads per rank
  // data.normalize: how pixels p in [0, 255] become inputs. "meanstd": (p/255 - mean) / std
  // with the file's per-channel mean and std; "tanh": 2 p/255 - 1, in [-1, 1] (a GAN's
  // range); "auto": tanh for dcgan, meanstd otherwise.
  std::string normalize = "auto";
};

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adam | adamw
  double lr = 0.01;
  double momentum = 0.0;     // sgd
  bool nesterov = false;     // sgd
  double weight_decay = 0.0;
  std::vector<double> betas = {0.9, 0.999};  // adam, adamw
  double eps = 1e-8;                         // adam, adamw
};

struct ScheduleConfig {
  std::string name = "constant";  // constant | step | cosine
  int64_t warmup = 0;             // cosine: linear warm-up steps
  double min_lr = 0.0;            // cosine: final rate
  int64_t step_size = 1000;       // step: steps between decays
  double gamma = 0.1;             // step: decay factor
};

// The GAN recipe (model.name = "dcgan", docs/GAN.md).
struct GanConfig {
  std::string samples;         // gan.samples: PNG of G(fixed noise) at each evaluation; "{step}" -> the step; "" none
  int64_t samples_n = 64;      // gan.samples_n: images in the grid (the fixed noise batch)
  int64_t noise_seed = 1234;   // gan.noise_seed: seed of the fixed noise batch
  std::string export_path;     // gan.export: HDF5 image file of export_n samples of G after the last step; "" none
  int64_t export_n = 10000;    // gan.export_n
};

// The translation recipe (model.name = "seq2seq", docs/SEQ2SEQ.md).
struct Seq2SeqRecipeConfig {
  int64_t translations = 5;    // seq2seq.translations: held-out examples printed at each evaluation
  int64_t max_decode_len = 0;  // seq2seq.max_decode_len: greedy decoding limit; 0 = the test file's target length
};

// The autoencoder recipe (model.name = "autoencoder", docs/AUTOENCODER.md).
struct AutoencoderRecipeConfig {
  int64_t code = 32;           // autoencoder.code: the code's size
  int64_t width = 32;          // autoencoder.width: channels of the first convolution
  std::string loss = "bce";    // autoencoder.loss: bce | mse, on pixels in [0, 1]
  std::string noise = "none";  // autoencoder.noise: none | gaussian | mask (denoising: corrupted inputs, clean targets)
  double noise_level = 0.3;    // autoencoder.noise_level: gaussian std in pixel units, or the mask's drop probability
  std::string samples;         // autoencoder.samples: PNG grid at each evaluation ("{step}" -> the step); "" none
  int64_t samples_n = 8;       // autoencoder.samples_n: test images in the grid
};

// The text classifier recipe (model.name = "text_classifier", docs/TEXT_CLASSIFIER.md).
struct TextRecipeConfig {
  int64_t emb_dim = 32;        // text.emb_dim: embedding width
  int64_t hidden = 128;        // text.hidden: LSTM units per direction
  int64_t layers = 1;          // text.layers: LSTM layers
  bool bidirectional = true;   // text.bidirectional
  std::string confusion;       // text.confusion: PNG of the confusion matrix at each evaluation ("{step}"); "" none
};

// The captioning recipe (model.name = "captioning", docs/CAPTIONING.md).
struct CaptionRecipeConfig {
  int64_t conv_width = 16;     // caption.conv_width: channels of the encoder's first stage (doubled per stage)
  int64_t stages = 3;          // caption.stages: encoder stages (conv 3x3, ReLU, max-pool 2)
  int64_t emb_dim = 32;        // caption.emb_dim: word embedding width
  int64_t hidden = 128;        // caption.hidden: decoder LSTM units
  int64_t captions = 5;        // caption.captions: test scenes printed with their generated caption at each evaluation
  int64_t max_decode_len = 0;  // caption.max_decode_len: greedy decoding limit; 0 = the test file's caption length
  std::string samples;         // caption.samples: PNG of the printed test scenes ("{step}" -> the step); "" none
  std::string attention;       // caption.attention: PNG of the first printed scene's attention per step; "" none
};

struct Config {
  std::string source;  // where it was read from ("" for defaults only)

  ModelConfig model;
  DataConfig data;
  int64_t batch_size = 64;  // per rank, per micro-batch
  int64_t epochs = 1;
  int64_t steps = 0;       // > 0: train exactly this many optimizer steps (overrides epochs)
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t seed = 0;
  OptimizerConfig optimizer;
  // dcgan: the generator's and the discriminator's optimizers (Adam, lr 2e-4, betas
  // (0.5, 0.999), as in the DCGAN paper); `optimizer` is not used.
  OptimizerConfig optimizer_g{"adam", 2e-4, 0.0, false, 0.0, {0.5, 0.999}, 1e-8};
  OptimizerConfig optimizer_d{"adam", 2e-4, 0.0, false, 0.0, {0.5, 0.999}, 1e-8};
  GanConfig gan;
  Seq2SeqRecipeConfig seq2seq;
  AutoencoderRecipeConfig autoencoder;
  TextRecipeConfig text;
  CaptionRecipeConfig caption;
  ScheduleConfig schedule;
  int64_t log_interval = 50;   // log.interval
  std::string log_metrics;     // log.metrics: JSON-lines path ("" none)
  int64_t eval_interval = 0;   // eval.interval: steps; 0 = at the end of each epoch
  int64_t eval_batch_size = 0; // eval.batch_size: 0 = batch_size
  std::string device = "cpu";  // cpu | cuda
  int64_t threads = 0;         // CPU threads per rank; 0 = cores / local ranks
  double first_bucket_mib = 1.0;  // buckets.first_mib
  double bucket_mib = 25.0;       // buckets.mib
  // Checkpoints (docs/CHECKPOINTS.md).
  std::string checkpoint_dir;      // checkpoint.dir: "" = no checkpoints
  int64_t checkpoint_every = 0;    // checkpoint.every: steps; 0 = only the final one / on stop
  int64_t checkpoint_keep_last = 3;  // checkpoint.keep_last: 0 = keep all
  bool checkpoint_final = true;    // checkpoint.final: one after the last step
  // checkpoint.tolerate_failures: periodic checkpoints that may fail in a row before the
  // run stops (Note [Failed checkpoints] in launcher/train/loop_checkpoint.cpp).
  int64_t checkpoint_tolerate_failures = 2;

  // The watchdog and the live status (docs/WATCHDOG.md).
  struct Watchdog {
    bool enabled = true;               // watchdog.enabled
    double heartbeat_s = 1.0;          // watchdog.heartbeat_s
    double heartbeat_timeout_s = 60;   // watchdog.heartbeat_timeout_s
    double progress_timeout_s = 600;   // watchdog.progress_timeout_s
    std::string address = "0.0.0.0";  // watchdog.address: rank 0's control-plane bind address
    std::string advertise;             // watchdog.advertise: the name the others connect to; "" = host name
    std::string interface;             // watchdog.interface: advertise this interface's IPv4 address
    bool status = true;                // watchdog.status: rank 0 serves /status and /metrics
    std::string status_address = "127.0.0.1";  // watchdog.status_address
    int64_t status_port = 0;           // watchdog.status_port: 0 = any free port
    std::string status_allow;          // watchdog.status_allow: client addresses besides loopback
  } watchdog;

  // Not a config key: `dtrain train --resume auto|PATH` ("" = start fresh).
  std::string resume;
};

// Reads `path` and applies `overrides` ("key=value", dotted keys, in order), then
// validates. Throws ConfigError naming the key and the file or "--set" on any problem,
// and for a missing or malformed file.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from TOML text (`source` names it in messages).
Config parse_config(const std::string& toml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

// Every key with its value, one "key = value" line each in a fixed order (valid TOML
// with dotted keys): the run's configuration as written to the metrics header.
std::string canonical(const Config& c);

// The keys' reference for --help: "key (type, default): description" lines.
std::string keys_help();

}  // namespace dtrain::launcher
