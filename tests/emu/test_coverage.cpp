// docs/EMULATOR.md's coverage list must name every __global__ kernel of ops/cuda, so a
// new kernel cannot go unaccounted for (executed by tests/emu/test_kernels.cpp, or a
// stated reason).
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

// The names of the __global__ functions in `text`: the identifier before the first '('
// after each `__global__` (past `void` and an optional __launch_bounds__(...)).
std::set<std::string> kernels_in(const std::string& text) {
  std::set<std::string> names;
  for (size_t at = text.find("__global__"); at != std::string::npos; at = text.find("__global__", at + 1)) {
    size_t end = at + 10;
    const size_t bounds = text.find("__launch_bounds__", end);
    const size_t paren = text.find('(', end);
    if (paren == std::string::npos) break;
    end = (bounds != std::string::npos && bounds < paren) ? text.find('(', text.find(')', bounds)) : paren;
    while (end > 0 && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    size_t begin = end;
    while (begin > 0 && (std::isalnum(static_cast<unsigned char>(text[begin - 1])) || text[begin - 1] == '_')) --begin;
    if (begin < end) names.insert(text.substr(begin, end - begin));
  }
  return names;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

TEST(EmuCoverage, DocsListEveryKernel) {
  const std::filesystem::path root = DTRAIN_SOURCE_DIR;
  const std::string doc = read(root / "docs/EMULATOR.md");
  ASSERT_FALSE(doc.empty()) << "docs/EMULATOR.md is missing";
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(root / "ops/cuda")) {
    for (const std::string& name : kernels_in(read(entry.path()))) {
      names.insert(name);
      EXPECT_NE(doc.find("`" + name + "`"), std::string::npos)
          << name << " (" << entry.path().filename().string() << ") is not in docs/EMULATOR.md's coverage list";
    }
  }
  EXPECT_EQ(names.size(), 44u) << "the kernel count changed: update docs/EMULATOR.md (it says 44)";
}

}  // namespace
