// Child processes, file sizes and machine facts for the benchmark harness
// (bench/rapport_bench.cpp).
//
// RunProcess forks and execs one command and waits for it with wait4, so the
// peak RSS it reports is that child's own (ru_maxrss), not a maximum over
// every child the harness ever ran. Its stderr is always read through a pipe:
// each line is handed to `on_stderr_line` with the time since the fork, which
// is how restart time is measured (spawn to a log line), and the last 64 KiB
// are kept for error messages. Nothing here throws; failures to start are
// Status values, a command that fails is a non-zero exit_code.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/engine/status.h"

namespace rapport::bench {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::string stdin_path;         // empty: /dev/null
  std::string stdout_path;        // empty: /dev/null
  // Called on the harness thread for each stderr line, with seconds since the fork.
  std::function<void(std::string_view line, double seconds)> on_stderr_line;
};

struct ProcessResult {
  int exit_code = -1;      // 128 + signal when killed by one
  double seconds = 0;      // fork to exit
  double cpu_seconds = 0;  // user + system time of the child (and its children)
  int64_t max_rss_bytes = 0;
  std::string stderr_tail;
};

Result<ProcessResult> RunProcess(const ProcessSpec& spec);

// What `du -s` counts: allocated blocks of every file below `path`.
int64_t DiskUsageBytes(const std::string& path);
// Sum of regular files' sizes below `path` (or of the file itself).
int64_t ApparentBytes(const std::string& path);

// "AMD EPYC, 2 cores, 23.4 GiB RAM; disk /dev/vda (ext4, SSD, 252 GiB)".
std::string DescribeMachine(const std::string& data_dir);

// 1234567 -> "1,234,567".
std::string Grouped(double value);
// Bytes as "812 MiB" / "1.4 GiB".
std::string HumanBytes(double bytes);

}  // namespace rapport::bench
