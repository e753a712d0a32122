// The training configuration: see config.h.
#include "launcher/train/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

// Note [toml++'s internal checks]: toml++ 3.3 states some of its parser's expectations as
// TOML_ASSERT_ASSUME, which is assert() in builds without NDEBUG and __builtin_assume()
// with Clang under NDEBUG. One of them is wrong: parse_key() expects a key character, but
// a table header such as "[=]" reaches it with '=', and the very next lines of the parser
// report that input properly ("expected bare key starting character or string
// delimiter"). So the sanitized builds aborted on a bad config, and a Clang release build
// would assume something false (undefined behaviour). Here those checks do nothing, as
// they do with GCC under NDEBUG; the parser's own errors still report every bad input.
// Found by tests/fuzz/fuzz_config; its inputs are in tests/fuzz/regressions/config/.
#include <toml++/impl/preprocessor.h>
#ifndef TOML_ASSERT_ASSUME
#error "toml++ no longer defines TOML_ASSERT_ASSUME: revisit Note [toml++'s internal checks]"
#endif
#undef TOML_ASSERT_ASSUME
#define TOML_ASSERT_ASSUME(expr) static_assert(true)
#include <toml++/toml.h>

#include "core/error.h"
#include "launcher/train/config_keys.h"
#include "launcher/train/registry.h"

namespace dtrain::launcher {

std::vector<ConfigKey> optimizer_keys(const std::string& table, OptimizerConfig Config::*member, const std::string& who,
                                      const std::string& lr) {
  auto key = [&](const char* name, KeyType type, const std::string& help, auto field) {
    return ConfigKey{table + "." + name, type, who + help,
                     [member, field](Config& c) -> void* { return &((c.*member).*field); }};
  };
  return {
      key("name", KeyType::String, "sgd | adam | adamw", &OptimizerConfig::name),
      key("lr", KeyType::Float, lr, &OptimizerConfig::lr),
      key("momentum", KeyType::Float, "sgd momentum", &OptimizerConfig::momentum),
      key("nesterov", KeyType::Bool, "sgd Nesterov momentum (needs momentum > 0)", &OptimizerConfig::nesterov),
      key("weight_decay", KeyType::Float, "L2 penalty (sgd, adam) or decoupled decay (adamw)",
          &OptimizerConfig::weight_decay),
      key("betas", KeyType::FloatList, "adam, adamw: [beta1, beta2]", &OptimizerConfig::betas),
      key("eps", KeyType::Float, "adam, adamw: denominator epsilon", &OptimizerConfig::eps),
  };
}

void ConfigCheck::fail(const std::string& key, const std::string& what) const {
  auto it = origin_.find(key);
  std::string where = it != origin_.end() ? it->second : "the default";
  DT_THROW(ConfigError, where, ": ", key, " ", what);
}

void ConfigCheck::one_of(const std::string& key, const std::string& v,
                         std::initializer_list<const char*> allowed) const {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  fail(key, "must be one of " + list + "; got '" + v + "'");
}

void ConfigCheck::optimizer(const std::string& t, const OptimizerConfig& o) const {
  one_of(t + ".name", o.name, {"sgd", "adam", "adamw"});
  if (!(o.lr > 0)) fail(t + ".lr", "must be > 0");
  if (!(o.momentum >= 0)) fail(t + ".momentum", "must be >= 0");
  if (o.nesterov && !(o.momentum > 0)) fail(t + ".nesterov", "needs " + t + ".momentum > 0");
  if (!(o.weight_decay >= 0)) fail(t + ".weight_decay", "must be >= 0");
  if (o.betas.size() != 2 || !(o.betas[0] >= 0 && o.betas[0] < 1) || !(o.betas[1] >= 0 && o.betas[1] < 1)) {
    fail(t + ".betas", "must be two numbers in [0, 1), e.g. [" + std::string(t == "optimizer" ? "0.9" : "0.5") +
                           ", 0.999]");
  }
  if (!(o.eps > 0)) fail(t + ".eps", "must be > 0");
}

namespace {

using Type = KeyType;
using Key = ConfigKey;

const char* type_name(Type t) {
  switch (t) {
    case Type::Int: return "an integer";
    case Type::Float: return "a number";
    case Type::Bool: return "true or false";
    case Type::String: return "a string";
    case Type::FloatList: return "a list of numbers";
  }
  return "?";
}

const char* node_type_name(const toml::node& v) {
  switch (v.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

#define DT_KEY DT_CONFIG_KEY

// The one table of keys: parsing, --set, --help and canonical() all read it. The order
// is the order of --help and of the canonical dump.
// The keys of every run, then each recipe's own (RecipeEntry::keys).
const std::vector<Key>& keys() {
  static const std::vector<Key> table = [] {
  std::vector<Key> common = {
      DT_KEY("model.name", String, model.name, ""),  // help: the recipes' model names, below
      DT_KEY("model.hidden", Int, model.hidden,
             "classifier hidden width, or the seq2seq LSTM width; 0 = the model's default (mlp 256, small_cnn 128, "
             "small_vgg 512, vgg16_cifar 512, vgg16 4096, seq2seq 256)"),
      DT_KEY("model.batch_norm", Bool, model.batch_norm,
             "small_cnn, vgg16, vgg16_cifar: BatchNorm2d after each convolution; dcgan: the DCGAN batch norms "
             "(set true for the paper's networks)"),
      DT_KEY("data.train", String, data.train,
             "training file (HDF5 image classification, docs/DATASETS.md); relative paths are "
             "relative to the working directory. Required"),
      DT_KEY("data.test", String, data.test, "test file for evaluation; \"\" = no evaluation"),
      DT_KEY("data.augment.pad_crop", Int, data.pad_crop, "random crop after zero padding by N pixels (0 = off)"),
      DT_KEY("data.augment.hflip", Bool, data.hflip, "random horizontal flips"),
      DT_KEY("data.augment.random_resized_crop", Bool, data.random_resized_crop,
             "training images: torchvision's RandomResizedCrop to data.image_size (a window of scale x the area and "
             "an aspect ratio in ratio, resized)"),
      DT_KEY("data.augment.scale", FloatList, data.rrc_scale, "random_resized_crop: [min, max] share of the area"),
      DT_KEY("data.augment.ratio", FloatList, data.rrc_ratio, "random_resized_crop: [min, max] aspect ratio w/h"),
      DT_KEY("data.image_size", Int, data.image_size,
             "side of the images fed to the model; other sizes are resized and centre-cropped (or random-resized-"
             "cropped); 0 = the file's image size (required for encoded files of mixed sizes)"),
      DT_KEY("data.eval_resize", Int, data.eval_resize,
             "shorter side images are resized to before the centre crop to data.image_size (e.g. 256 for 224); "
             "0 = data.image_size"),
      DT_KEY("data.workers", Int, data.workers, "loader threads per rank"),
      DT_KEY("data.normalize", String, data.normalize,
             "auto | meanstd ((p/255 - mean) / std with the file's mean and std) | tanh (2 p/255 - 1, in [-1, 1]); "
             "auto = tanh for dcgan, meanstd otherwise"),
      DT_KEY("batch_size", Int, batch_size, "samples per rank per micro-batch (global batch: ranks x this x grad_accum)"),
      DT_KEY("epochs", Int, epochs, "passes over the training set (ignored when steps > 0)"),
      DT_KEY("steps", Int, steps, "optimizer steps to train; 0 = epochs x steps per epoch"),
      DT_KEY("grad_accum", Int, grad_accum, "micro-batches per optimizer step (gradients sync on the last)"),
      DT_KEY("seed", Int, seed, "initialization, data order, augmentation and dropout streams"),
      DT_KEY("schedule.name", String, schedule.name,
             "constant | step (lr x gamma^(step / step_size)) | cosine (linear warm-up, then half "
             "cosine to min_lr at the last step)"),
      DT_KEY("schedule.warmup", Int, schedule.warmup, "cosine: warm-up steps"),
      DT_KEY("schedule.min_lr", Float, schedule.min_lr, "cosine: rate at the last step"),
      DT_KEY("schedule.step_size", Int, schedule.step_size, "step: steps between decays"),
      DT_KEY("schedule.gamma", Float, schedule.gamma, "step: decay factor"),
      DT_KEY("log.interval", Int, log_interval, "steps between progress lines and metrics records"),
      DT_KEY("log.metrics", String, log_metrics, "JSON-lines metrics file written by rank 0; \"\" = none"),
      DT_KEY("eval.interval", Int, eval_interval, "steps between evaluations; 0 = at the end of each epoch"),
      DT_KEY("eval.batch_size", Int, eval_batch_size, "evaluation batch per rank; 0 = batch_size"),
      DT_KEY("device", String, device, "cpu | cuda (cuda: the local rank's GPU, NCCL all-reduce)"),
      DT_KEY("threads", Int, threads, "CPU kernel threads per rank; 0 = cores / ranks on this node"),
      DT_KEY("buckets.first_mib", Float, first_bucket_mib, "size cap of the first gradient bucket, MiB"),
      DT_KEY("buckets.mib", Float, bucket_mib, "size cap of the other gradient buckets, MiB"),
      DT_KEY("checkpoint.dir", String, checkpoint_dir,
             "directory of checkpoints (step-<N>.h5 + step-<N>.ok, rank 0 writes; shared by all "
             "ranks for --resume); \"\" = no checkpoints"),
      DT_KEY("checkpoint.every", Int, checkpoint_every,
             "steps between checkpoints (--checkpoint-every); 0 = only the final one and on a stop"),
      DT_KEY("checkpoint.keep_last", Int, checkpoint_keep_last,
             "complete checkpoints kept, older ones deleted after a new one is complete (--keep-last); 0 = all"),
      DT_KEY("checkpoint.final", Bool, checkpoint_final, "write a checkpoint after the last step"),
      DT_KEY("checkpoint.tolerate_failures", Int, checkpoint_tolerate_failures,
             "periodic checkpoints that may fail in a row (disk full, I/O error) while training goes on with "
             "a warning; one more stops the run (exit 1); 0 = the first failure stops it. A failed final or "
             "stop checkpoint always stops it"),
      DT_KEY("watchdog.enabled", Bool, watchdog.enabled,
             "heartbeats and progress watched by rank 0; a hung job ends with exit code 86 and a diagnosis "
             "(docs/WATCHDOG.md)"),
      DT_KEY("watchdog.heartbeat_s", Float, watchdog.heartbeat_s, "seconds between heartbeats"),
      DT_KEY("watchdog.heartbeat_timeout_s", Float, watchdog.heartbeat_timeout_s,
             "silence after which a rank (or rank 0, seen by the others) is declared frozen or gone"),
      DT_KEY("watchdog.progress_timeout_s", Float, watchdog.progress_timeout_s,
             "seconds one rank may stay in one phase while others wait in a collective (longer than any "
             "evaluation or checkpoint write)"),
      DT_KEY("watchdog.address", String, watchdog.address,
             "address rank 0's control plane listens on (the other ranks connect to its host name)"),
      DT_KEY("watchdog.advertise", String, watchdog.advertise,
             "host name or address the other ranks connect to rank 0's control plane at; \"\" = rank 0's host name"),
      DT_KEY("watchdog.interface", String, watchdog.interface,
             "a network interface (eth0, ib0) whose IPv4 address rank 0 advertises instead of its host name "
             "(watchdog.advertise wins when both are set)"),
      DT_KEY("watchdog.status", Bool, watchdog.status,
             "rank 0 serves GET /status and /metrics (dtrain status, dtrain stop)"),
      DT_KEY("watchdog.status_address", String, watchdog.status_address, "address of the status endpoint"),
      DT_KEY("watchdog.status_port", Int, watchdog.status_port, "port of the status endpoint; 0 = any free port"),
      DT_KEY("watchdog.status_allow", String, watchdog.status_allow,
             "comma-separated client addresses allowed besides loopback"),
  };
  std::vector<Key> opt = optimizer_keys("optimizer", &Config::optimizer, "", "peak learning rate");
  common.insert(std::find_if(common.begin(), common.end(), [](const Key& k) { return k.name == "schedule.name"; }),
                opt.begin(), opt.end());
  std::string names;
  for (const RecipeEntry& r : recipe_table()) {
    names += names.empty() ? "" : "; ";
    for (size_t i = 0; i < r.model_names.size(); ++i) names += (i ? " | " : "") + r.model_names[i];
    names += std::string(" (") + r.doc + ")";
  }
  common[0].help = names;
  for (const RecipeEntry& r : recipe_table()) {
    if (!r.keys) continue;
    for (Key k : r.keys()) {
      k.recipe = r.name;
      common.push_back(std::move(k));
    }
  }
  return common;
  }();
  return table;
}
#undef DT_KEY

const Key* find_key(const std::string& name) {
  for (const Key& k : keys()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

// "optimizer.lr" -> "optimizer"; "seed" -> "".
std::string parent_of(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

// The keys directly under `table` ("" = the top level), sub-tables shown as "name.*".
std::string keys_under(const std::string& table) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const Key& k : keys()) {
    std::string n = k.name;
    std::string prefix = table.empty() ? "" : table + ".";
    if (n.rfind(prefix, 0) != 0) continue;
    std::string rest = n.substr(prefix.size());
    if (auto dot = rest.find('.'); dot != std::string::npos) {
      rest.resize(dot);
      rest.insert(rest.begin(), '[');
      rest.push_back(']');
    }
    if (seen.insert(rest).second) names.push_back(rest);
  }
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool is_table_name(const std::string& name) {
  for (const Key& k : keys()) {
    if (std::string(k.name).rfind(name + ".", 0) == 0) return true;
  }
  return false;
}

std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // "n": inf, nan
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Sets key `k` of `c` from a TOML node; `where` names the origin for messages.
void assign(Config& c, const Key& k, const toml::node& v, const std::string& where) {
  auto wrong = [&]() {
    DT_THROW(ConfigError, where, ": ", k.name, " must be ", type_name(k.type), ", got ", node_type_name(v));
  };
  void* p = k.ref(c);
  switch (k.type) {
    case Type::Int:
      if (!v.is_integer()) wrong();
      *static_cast<int64_t*>(p) = v.as_integer()->get();
      break;
    case Type::Float:
      if (v.is_integer()) {
        *static_cast<double*>(p) = static_cast<double>(v.as_integer()->get());
      } else if (v.is_floating_point()) {
        *static_cast<double*>(p) = v.as_floating_point()->get();
      } else {
        wrong();
      }
      break;
    case Type::Bool:
      if (!v.is_boolean()) wrong();
      *static_cast<bool*>(p) = v.as_boolean()->get();
      break;
    case Type::String:
      if (!v.is_string()) wrong();
      *static_cast<std::string*>(p) = v.as_string()->get();
      break;
    case Type::FloatList: {
      if (!v.is_array()) wrong();
      std::vector<double> out;
      for (const toml::node& e : *v.as_array()) {
        if (e.is_integer()) {
          out.push_back(static_cast<double>(e.as_integer()->get()));
        } else if (e.is_floating_point()) {
          out.push_back(e.as_floating_point()->get());
        } else {
          wrong();
        }
      }
      *static_cast<std::vector<double>*>(p) = std::move(out);
      break;
    }
  }
}

// Walks a parsed table, assigning every leaf; unknown keys are errors.
void walk(Config& c, const toml::table& t, const std::string& prefix, const std::string& source,
          std::map<std::string, std::string>& origin) {
  for (auto&& [key, node] : t) {
    std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (node.is_table()) {
      if (!is_table_name(name)) {
        DT_THROW(ConfigError, source, ": unknown table [", name, "]; the tables and keys ",
                 prefix.empty() ? "at the top level" : "in [" + prefix + "]", " are: ", keys_under(prefix),
                 " (run 'dtrain train --help' for all keys)");
      }
      walk(c, *node.as_table(), name, source, origin);
      continue;
    }
    const Key* k = find_key(name);
    if (!k) {
      if (is_table_name(name)) {
        std::string sub = keys_under(name);
        DT_THROW(ConfigError, source, ": '", name, "' is a table, not a value: set its keys (", sub, "), e.g. ",
                 name, ".", sub.substr(0, sub.find(',')), " = ...");
      }
      DT_THROW(ConfigError, source, ": unknown key '", name, "'; the keys ",
               prefix.empty() ? "at the top level" : "in [" + prefix + "]", " are: ", keys_under(prefix),
               " (run 'dtrain train --help' for all keys)");
    }
    assign(c, *k, node, source);
    origin[name] = source;
  }
}

// Note [Non-ASCII outside strings]: TOML allows non-ASCII characters only in strings and
// comments. toml++ 3.3 reaches __builtin_unreachable() (undefined behaviour) when it tests
// some of them for whitespace, such as U+00A1 after a bare key (found by
// tests/fuzz/fuzz_config; regression input in tests/fuzz/regressions/config/). So the text
// is scanned first, with TOML's string and comment rules, and the first such character is
// reported by its line and column, as toml++ would report it. A quote opens a string only
// where TOML lets one begin (at the start of a line or after '=', '[', ',', '{' or '.'):
// elsewhere (`interval = 2"…`, found by the fuzzer too) the text is invalid anyway, and
// what follows the quote is treated as outside a string. Returns the byte offset of that
// character, or npos.
size_t non_ascii_outside_strings(std::string_view s) {
  enum class In { Code, Comment, Basic, Literal, MultiBasic, MultiLiteral } in = In::Code;
  auto at = [&](size_t i, const char* three) { return s.compare(i, 3, three) == 0; };
  char prev = 0;  // the last character of code on this line other than a blank; 0 at its start
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (in == In::Code && (c == '"' || c == '\'') && prev != 0 && std::strchr("=[,{.", prev) == nullptr) {
      prev = static_cast<char>(c);  // not where a string may begin
      continue;
    }
    switch (in) {
      case In::Code:
        if (c == '\n') {
          prev = 0;
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '#' && c != '"' && c != '\'') {
          prev = static_cast<char>(c);
        }
        if (c == '#') {
          in = In::Comment;
        } else if (c == '"') {
          in = at(i, "\"\"\"") ? In::MultiBasic : In::Basic;
          if (in == In::MultiBasic) i += 2;
        } else if (c == '\'') {
          in = at(i, "'''") ? In::MultiLiteral : In::Literal;
          if (in == In::MultiLiteral) i += 2;
        } else if (c >= 0x80) {
          return i;
        }
        break;
      case In::Comment:
        if (c == '\n') {
          in = In::Code;
          prev = 0;
        }
        break;
      case In::Basic:
        if (c == '\\') {
          ++i;  // the escaped character
        } else if (c == '"' || c == '\n') {
          in = In::Code;
          prev = c == '"' ? '"' : 0;
        }
        break;
      case In::Literal:
        if (c == '\'' || c == '\n') {
          in = In::Code;
          prev = c == '\'' ? '\'' : 0;
        }
        break;
      case In::MultiBasic:
      case In::MultiLiteral: {
        const char q = in == In::MultiBasic ? '"' : '\'';
        if (in == In::MultiBasic && c == '\\') {
          ++i;
        } else if (c == static_cast<unsigned char>(q) && at(i, q == '"' ? "\"\"\"" : "'''")) {
          i += 2;
          // Up to two more quotes belong to the string ("""a""""" is a"").
          for (int extra = 0; extra < 2 && i + 1 < s.size() && s[i + 1] == q; ++extra) ++i;
          in = In::Code;
          prev = q;
        }
        break;
      }
    }
  }
  return std::string_view::npos;
}

// Throws ConfigError naming source:line:column when non_ascii_outside_strings finds one.
void refuse_non_ascii_outside_strings(const std::string& text, const std::string& source) {
  const size_t at = non_ascii_outside_strings(text);
  if (at == std::string_view::npos) return;
  size_t line = 1, column = 1;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;  // a character, not a UTF-8 continuation byte
    }
  }
  size_t end = at + 1;
  while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
  DT_THROW(ConfigError, source, ":", line, ":", column, ": not valid TOML: '", text.substr(at, end - at),
           "' outside a string or comment (keys and values other than strings are ASCII; quote it: \"...\")");
}

void apply_override(Config& c, const std::string& item, std::map<std::string, std::string>& origin) {
  auto eq = item.find('=');
  if (eq == std::string::npos || eq == 0) {
    DT_THROW(ConfigError, "--set '", item, "': expected KEY=VALUE, e.g. --set optimizer.lr=0.05");
  }
  std::string name = item.substr(0, eq), value = item.substr(eq + 1);
  const Key* k = find_key(name);
  std::string where = "--set " + item;
  if (!k) {
    DT_THROW(ConfigError, where, ": unknown key '", name, "'; the keys ",
             parent_of(name).empty() ? "at the top level" : "in [" + parent_of(name) + "]", " are: ",
             keys_under(is_table_name(parent_of(name)) ? parent_of(name) : ""),
             " (run 'dtrain train --help' for all keys)");
  }
  if (k->type == Type::String && (value.empty() || value[0] != '"')) {
    *static_cast<std::string*>(k->ref(c)) = value;  // bare text is the string itself
  } else {
    toml::table t;
    try {
      if (non_ascii_outside_strings(value) != std::string_view::npos) throw std::invalid_argument("non-ASCII");
      t = toml::parse("v = " + value);
    } catch (const std::exception&) {  // toml::parse_error, or the non-ASCII refusal
      DT_THROW(ConfigError, where, ": ", name, " must be ", type_name(k->type), ", got '", value, "'");
    }
    assign(c, *k, *t.get("v"), where);
  }
  origin[name] = where;
}

void validate(const Config& c, const std::map<std::string, std::string>& origin) {
  const ConfigCheck check(origin);
  auto fail = [&](const std::string& key, const std::string& what) { check.fail(key, what); };
  {
    const RecipeEntry* r = find_recipe(c.model.name);
    if (r == nullptr) {
      std::string list;
      for (const std::string& n : model_names()) list += (list.empty() ? "" : ", ") + n;
      fail("model.name", "must be one of " + list + "; got '" + c.model.name + "'");
    }
  }
  check.one_of("data.normalize", c.data.normalize, {"auto", "meanstd", "tanh"});
  if (c.model.hidden < 0) fail("model.hidden", "must be >= 0 (0: the model's default)");
  if (c.data.train.empty()) {
    DT_THROW(ConfigError, c.source.empty() ? std::string("the configuration") : c.source,
             ": data.train is required (the HDF5 training file, e.g. data/fashion_mnist_train.h5)");
  }
  if (c.data.pad_crop < 0) fail("data.augment.pad_crop", "must be >= 0");
  if (c.data.image_size < 0) fail("data.image_size", "must be >= 0 (0: the file's image size)");
  if (c.data.eval_resize < 0) fail("data.eval_resize", "must be >= 0 (0: data.image_size)");
  if (c.data.eval_resize > 0 && c.data.image_size > 0 && c.data.eval_resize < c.data.image_size) {
    fail("data.eval_resize", "must be at least data.image_size = " + std::to_string(c.data.image_size) +
                                 " (the centre crop is taken from the resized image), or 0");
  }
  {
    const std::vector<double>& sc = c.data.rrc_scale;
    if (sc.size() != 2 || !(sc[0] > 0 && sc[0] <= sc[1] && sc[1] <= 1)) {
      fail("data.augment.scale", "must be [min, max] with 0 < min <= max <= 1, e.g. [0.08, 1.0]");
    }
    const std::vector<double>& r = c.data.rrc_ratio;
    if (r.size() != 2 || !(r[0] > 0 && r[0] <= r[1])) {
      fail("data.augment.ratio", "must be [min, max] with 0 < min <= max, e.g. [0.75, 1.3333]");
    }
  }
  if (c.data.workers < 1) fail("data.workers", "must be >= 1");
  if (c.batch_size < 1) fail("batch_size", "must be >= 1");
  if (c.epochs < 1 && c.steps == 0) fail("epochs", "must be >= 1 (or set steps)");
  if (c.steps < 0) fail("steps", "must be >= 0");
  if (c.grad_accum < 1) fail("grad_accum", "must be >= 1");
  if (c.seed < 0) fail("seed", "must be >= 0");
  check.optimizer("optimizer", c.optimizer);
  check.one_of("schedule.name", c.schedule.name, {"constant", "step", "cosine"});
  if (c.schedule.warmup < 0) fail("schedule.warmup", "must be >= 0");
  if (!(c.schedule.min_lr >= 0)) fail("schedule.min_lr", "must be >= 0");
  if (c.schedule.step_size < 1) fail("schedule.step_size", "must be >= 1");
  if (!(c.schedule.gamma > 0)) fail("schedule.gamma", "must be > 0");
  if (c.log_interval < 1) fail("log.interval", "must be >= 1");
  if (c.eval_interval < 0) fail("eval.interval", "must be >= 0 (0: at the end of each epoch)");
  if (c.eval_batch_size < 0) fail("eval.batch_size", "must be >= 0 (0: batch_size)");
  check.one_of("device", c.device, {"cpu", "cuda"});
  if (c.threads < 0) fail("threads", "must be >= 0 (0: cores / ranks on this node)");
  if (!(c.first_bucket_mib > 0)) fail("buckets.first_mib", "must be > 0");
  if (!(c.bucket_mib > 0)) fail("buckets.mib", "must be > 0");
  if (c.checkpoint_every < 0) fail("checkpoint.every", "must be >= 0 (0: only the final checkpoint)");
  if (c.checkpoint_keep_last < 0) fail("checkpoint.keep_last", "must be >= 0 (0: keep all)");
  if (c.checkpoint_tolerate_failures < 0) {
    fail("checkpoint.tolerate_failures", "must be >= 0 (0: the first failed checkpoint stops the run)");
  }
  if (!(c.watchdog.heartbeat_s > 0)) fail("watchdog.heartbeat_s", "must be > 0");
  if (!(c.watchdog.heartbeat_timeout_s >= 3 * c.watchdog.heartbeat_s)) {
    fail("watchdog.heartbeat_timeout_s", "must be at least 3 x watchdog.heartbeat_s");
  }
  if (!(c.watchdog.progress_timeout_s > 0)) fail("watchdog.progress_timeout_s", "must be > 0");
  if (c.watchdog.status_port < 0 || c.watchdog.status_port > 65535) {
    fail("watchdog.status_port", "must be a port number from 0 to 65535 (0: any free port)");
  }
  // Each recipe's own keys (and what its model names need of the others).
  for (const RecipeEntry& r : recipe_table()) {
    if (r.validate) r.validate(c, check);
  }
}

std::string value_text(const Config& c, const Key& k) {
  void* p = k.ref(const_cast<Config&>(c));
  switch (k.type) {
    case Type::Int: return std::to_string(*static_cast<int64_t*>(p));
    case Type::Float: return format_double(*static_cast<double*>(p));
    case Type::Bool: return *static_cast<bool*>(p) ? "true" : "false";
    case Type::String: return quote(*static_cast<std::string*>(p));
    case Type::FloatList: {
      std::string s = "[";
      for (double v : *static_cast<std::vector<double>*>(p)) s += (s.size() > 1 ? ", " : "") + format_double(v);
      return s + "]";
    }
  }
  return "";
}

}  // namespace

Config parse_config(const std::string& toml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  Config c;
  c.source = source;
  std::map<std::string, std::string> origin;
  toml::table t;
  refuse_non_ascii_outside_strings(toml_text, source);
  try {
    t = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    DT_THROW(ConfigError, source, ":", e.source().begin.line, ":", e.source().begin.column,
             ": not valid TOML: ", e.description());
  }
  walk(c, t, "", source, origin);
  for (const std::string& o : overrides) apply_override(c, o, origin);
  validate(c, origin);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) DT_THROW(ConfigError, "cannot read the config file '", path, "': ", std::strerror(errno));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return parse_config(text, path, overrides);
}

std::string canonical(const Config& c) {
  std::string out;
  for (const Key& k : keys()) out += k.name + " = " + value_text(c, k) + "\n";
  return out;
}

std::string keys_help() {
  Config defaults;
  std::ostringstream os;
  std::string recipe;
  for (const Key& k : keys()) {
    if (k.recipe != recipe) {
      recipe = k.recipe;
      const RecipeEntry* r = nullptr;
      for (const RecipeEntry& e : recipe_table()) {
        if (e.name == recipe) r = &e;
      }
      os << "\n keys of the " << recipe << " recipe (model.name =";
      for (size_t i = 0; r && i < r->model_names.size(); ++i) os << (i ? " | " : " ") << r->model_names[i];
      os << "):\n";
    }
    std::string def = value_text(defaults, k);
    os << "  " << k.name << " = " << def << "\n      " << k.help << "\n";
  }
  return os.str();
}

}  // namespace dtrain::launcher
