#include "launcher/cli/args.h"

#include <sstream>

#include "core/error.h"

namespace dtrain::cli {

ArgParser::ArgParser(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

void ArgParser::add_flag(const std::string& name, const std::string& help) {
  options_.push_back(Spec{name, "", help, true, std::nullopt});
}

void ArgParser::add_option(const std::string& name, const std::string& metavar, const std::string& help,
                           std::optional<std::string> default_value) {
  options_.push_back(Spec{name, metavar, help, false, std::move(default_value)});
}

void ArgParser::add_repeated_option(const std::string& name, const std::string& metavar, const std::string& help) {
  options_.push_back(Spec{name, metavar, help, false, std::nullopt, true});
}

void ArgParser::add_rest(const std::string& usage, const std::string& help) { rest_spec_ = {usage, help}; }

void ArgParser::add_positional(const std::string& name, const std::string& help, bool required) {
  positionals_.push_back({name, {help, required}});
}

const ArgParser::Spec* ArgParser::find(const std::string& name) const {
  for (const Spec& s : options_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void ArgParser::parse(const std::vector<std::string>& args) {
  size_t next_positional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      help_ = true;
      return;
    }
    if (a == "--" && rest_spec_) {
      rest_.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_value = true;
      }
      const Spec* spec = find(name);
      if (!spec) DT_THROW(ConfigError, program_, ": unknown option '--", name, "'; run '", program_, " --help' for the options");
      if (spec->is_flag) {
        if (has_value) DT_THROW(ConfigError, program_, ": option '--", name, "' takes no value");
        values_.insert_or_assign(name, std::string("1"));
        continue;
      }
      if (!has_value) {
        if (i + 1 >= args.size()) DT_THROW(ConfigError, program_, ": option '--", name, "' needs a value (", spec->metavar, ")");
        value = args[++i];
      }
      if (spec->repeated) {
        repeated_values_[name].push_back(value);
      } else {
        values_[name] = value;
      }
      continue;
    }
    if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9') && a[1] != '.') {
      DT_THROW(ConfigError, program_, ": unknown option '", a, "'; run '", program_, " --help' for the options");
    }
    if (next_positional >= positionals_.size() && rest_spec_) {
      rest_.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (next_positional >= positionals_.size()) {
      DT_THROW(ConfigError, program_, ": unexpected argument '", a, "'; run '", program_, " --help' for the usage");
    }
    values_[positionals_[next_positional++].first] = a;
  }
  for (size_t p = next_positional; p < positionals_.size(); ++p) {
    if (positionals_[p].second.second) {
      DT_THROW(ConfigError, program_, ": missing argument ", positionals_[p].first, "; run '", program_,
               " --help' for the usage");
    }
  }
}

std::string ArgParser::help() const {
  std::ostringstream os;
  os << "usage: " << program_;
  if (!options_.empty()) os << " [options]";
  for (const auto& [name, hp] : positionals_) os << (hp.second ? " " + name : " [" + name + "]");
  if (rest_spec_) os << " " << rest_spec_->first;
  os << "\n\n" << summary_ << "\n";
  if (!positionals_.empty() || rest_spec_) {
    os << "\narguments:\n";
    for (const auto& [name, hp] : positionals_) os << "  " << name << "\n      " << hp.first << "\n";
    if (rest_spec_) os << "  " << rest_spec_->first << "\n      " << rest_spec_->second << "\n";
  }
  os << "\noptions:\n  -h, --help\n      show this help and exit\n";
  for (const Spec& s : options_) {
    os << "  --" << s.name << (s.is_flag ? "" : " " + s.metavar) << "\n      " << s.help;
    if (s.repeated) os << " (repeatable)";
    if (s.default_value) os << " (default: " << *s.default_value << ")";
    os << "\n";
  }
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

bool ArgParser::flag(const std::string& name) const { return values_.count(name) > 0; }

bool ArgParser::has(const std::string& name) const {
  if (values_.count(name) || repeated_values_.count(name)) return true;
  const Spec* s = find(name);
  return s && s->default_value.has_value();
}

std::string ArgParser::get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  const Spec* s = find(name);
  if (s && s->default_value) return *s->default_value;
  DT_THROW(ConfigError, program_, ": '", name, "' was not given");
}

double ArgParser::get_double(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  DT_THROW(ConfigError, program_, ": --", name, " expects a number, got '", v, "'");
}

int64_t ArgParser::get_int(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    long long n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  DT_THROW(ConfigError, program_, ": --", name, " expects an integer, got '", v, "'");
}

std::vector<std::string> ArgParser::get_all(const std::string& name) const {
  auto it = repeated_values_.find(name);
  return it == repeated_values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace dtrain::cli
