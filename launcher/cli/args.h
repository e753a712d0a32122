#pragma once
// A small command-line parser for dtrain's subcommands: long options (--name VALUE or
// --name=VALUE), repeatable options, boolean flags, positionals, the rest of the command
// line for another program (add_rest), generated --help text, and ConfigError messages
// that name the bad argument and point at --help.
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
  // An option that may be given several times; get_all() returns its values in order.
  void add_repeated_option(const std::string& name, const std::string& metavar, const std::string& help);
  void add_positional(const std::string& name, const std::string& help, bool required = true);
  // Arguments for another program (`dtrain submit CONFIG [train options]`): once the
  // positionals are filled, the next argument that is neither an option nor an option's
  // value ends this parser's options, and it and everything after it, options included,
  // are left unparsed in rest(). A "--" before that point also ends the options (it is
  // dropped; rest() is what follows it). `usage` names them in the usage line and under
  // "arguments:" in --help. Without add_rest, such an argument is an error.
  void add_rest(const std::string& usage, const std::string& help);
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
  std::vector<std::string> get_all(const std::string& name) const;  // a repeated option's values
  const std::vector<std::string>& rest() const { return rest_; }

 private:
  struct Spec {
    std::string name, metavar, help;
    bool is_flag = false;
    std::optional<std::string> default_value;
    bool repeated = false;
  };
  const Spec* find(const std::string& name) const;
  std::string program_, summary_, epilog_;
  std::vector<Spec> options_;
  std::vector<std::pair<std::string, std::pair<std::string, bool>>> positionals_;  // name, (help, required)
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_values_;
  std::optional<std::pair<std::string, std::string>> rest_spec_;  // usage, help
  std::vector<std::string> rest_;
  bool help_ = false;
};

}  // namespace dtrain::cli
