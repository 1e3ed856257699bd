// Test support: a temporary directory removed with everything in it when the
// object goes out of scope, and small file helpers.
#pragma once

#include <filesystem>
#include <string>

namespace rapport::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // path() / name, as a string.
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// The repository's source tree and the built `rapport` binary.
inline std::string SourcePath(const std::string& relative) { return std::string(RAPPORT_SOURCE_DIR) + "/" + relative; }
inline std::string RapportBinary() { return RAPPORT_BINARY; }

// Runs a shell command; returns its exit status (as from WEXITSTATUS) and
// fills *output with its stdout when output is not null.
int RunCommand(const std::string& command, std::string* output = nullptr);

}  // namespace rapport::testing
