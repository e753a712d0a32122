#pragma once
// A small command-line parser for dtrain's subcommands: long options (--name VALUE or
// --name=VALUE), boolean flags, positionals, generated --help text, and ConfigError
// messages that name the bad argument and point at --help.
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dtrain::cli {

class ArgParser {
 public:
  ArgParser(std::string program, std::string summary);

  void add_flag(const std::string& name, const std::string& help);
  void add_option(const std::string& name, const std::string& metavar, const std::string& help,
                  std::optional<std::string> default_value = std::nullopt);
  void add_positional(const std::string& name, const std::string& help, bool required = true);
  // Free text appended to --help (examples, exit codes).
  void set_epilog(std::string text) { epilog_ = std::move(text); }

  // Throws ConfigError on an unknown option, a missing value or positional, or an
  // extra argument. Sets help_requested() for -h/--help and stops there.
  void parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  std::string help() const;

  bool flag(const std::string& name) const;
  bool has(const std::string& name) const;  // option given or defaulted, or positional given
  std::string get(const std::string& name) const;
  double get_double(const std::string& name) const;
  int64_t get_int(const std::string& name) const;

 private:
  struct Spec {
    std::string name, metavar, help;
    bool is_flag = false;
    std::optional<std::string> default_value;
  };
  const Spec* find(const std::string& name) const;
  std::string program_, summary_, epilog_;
  std::vector<Spec> options_;
  std::vector<std::pair<std::string, std::pair<std::string, bool>>> positionals_;  // name, (help, required)
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

}  // namespace dtrain::cli
