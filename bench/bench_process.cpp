#include "bench_process.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace rapport::bench {
namespace {

constexpr size_t kStderrTail = 64 << 10;

Status Errno(const std::string& what) { return Status::IoError(what + ": " + std::strerror(errno)); }

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

Result<ProcessResult> RunProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("RunProcess: no command");
  // Everything the child needs is prepared before fork: between fork and exec
  // only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string in_path = spec.stdin_path.empty() ? "/dev/null" : spec.stdin_path;
  const std::string out_path = spec.stdout_path.empty() ? "/dev/null" : spec.stdout_path;
  int in_fd = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) return Errno("opening " + in_path);
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    close(in_fd);
    return Errno("opening " + out_path);
  }
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(in_fd);
    close(out_fd);
    return Errno("pipe");
  }
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid < 0) {
    close(in_fd);
    close(out_fd);
    close(err_pipe[0]);
    close(err_pipe[1]);
    return Errno("fork");
  }
  if (pid == 0) {
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_pipe[1], 2);
    execvp(argv[0], argv.data());
    const char msg[] = "rapport_bench: exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(in_fd);
  close(out_fd);
  close(err_pipe[1]);

  ProcessResult result;
  std::string pending;
  char buf[8192];
  for (;;) {
    ssize_t n = read(err_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string_view line(pending.data(), nl);
      if (spec.on_stderr_line) spec.on_stderr_line(line, t);
      result.stderr_tail.append(pending, 0, nl + 1);
      pending.erase(0, nl + 1);
    }
    if (result.stderr_tail.size() > 2 * kStderrTail)
      result.stderr_tail.erase(0, result.stderr_tail.size() - kStderrTail);
  }
  if (!pending.empty()) {
    if (spec.on_stderr_line) {
      spec.on_stderr_line(pending, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    result.stderr_tail += pending;
  }
  close(err_pipe[0]);
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) return Errno("wait4");
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.max_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
  auto to_seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  result.cpu_seconds = to_seconds(usage.ru_utime) + to_seconds(usage.ru_stime);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  if (result.stderr_tail.size() > kStderrTail) result.stderr_tail.erase(0, result.stderr_tail.size() - kStderrTail);
  return result;
}

int64_t DiskUsageBytes(const std::string& path) {
  namespace fs = std::filesystem;
  int64_t total = 0;
  std::error_code ec;
  auto add = [&total](const fs::path& p) {
    struct stat st {};
    if (lstat(p.c_str(), &st) == 0) total += static_cast<int64_t>(st.st_blocks) * 512;
  };
  add(path);
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      add(it->path());
    }
  }
  return total;
}

int64_t ApparentBytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return static_cast<int64_t>(fs::file_size(path, ec));
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

std::string DescribeMachine(const std::string& data_dir) {
  std::string cpu = "unknown CPU";
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) cpu = line.substr(line.find_first_not_of(' ', colon + 1));
        break;
      }
    }
  }
  double ram = 0;
  {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kib = 0;
    while (in >> key >> kib) {
      if (key == "MemTotal:") {
        ram = kib * 1024;
        break;
      }
      in.ignore(1 << 10, '\n');
    }
  }
  // The mount that holds the data directory: the longest matching mount point.
  std::string device = "?", fstype = "?", best;
  {
    std::string abs = std::filesystem::weakly_canonical(data_dir).string();
    std::ifstream in("/proc/self/mounts");
    std::string dev, point, type, rest;
    while (in >> dev >> point >> type) {
      std::getline(in, rest);
      bool under = abs == point || point == "/" ||
                   (abs.rfind(point, 0) == 0 && abs.size() > point.size() && abs[point.size()] == '/');
      if (under && point.size() >= best.size()) {
        best = point;
        device = dev;
        fstype = type;
      }
    }
  }
  std::string kind;
  if (device.rfind("/dev/", 0) == 0) {
    std::string base = device.substr(5);
    // A partition (vda1, nvme0n1p2) reports through its parent disk.
    std::string rot = ReadFirstLine("/sys/class/block/" + base + "/queue/rotational");
    if (rot.empty()) rot = ReadFirstLine("/sys/class/block/" + base + "/../queue/rotational");
    // Virtual disks often claim to be rotational: report the flag, not a guess.
    if (!rot.empty()) kind = "rotational=" + rot + ", ";
  }
  struct statvfs vfs {};
  double disk = statvfs(data_dir.c_str(), &vfs) == 0 ? static_cast<double>(vfs.f_blocks) * vfs.f_frsize : 0;
  char text[512];
  std::snprintf(text, sizeof text, "%s, %u cores, %s RAM; disk %s (%s%s, %s)", cpu.c_str(),
                std::thread::hardware_concurrency(), HumanBytes(ram).c_str(), device.c_str(), kind.c_str(),
                fstype.c_str(), HumanBytes(disk).c_str());
  return text;
}

std::string Grouped(double value) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%.0f", std::round(value));
  std::string s = digits, out;
  size_t start = s[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    size_t left = s.size() - i - 1;
    if (i >= start && left > 0 && left % 3 == 0) out += ',';
  }
  return out;
}

std::string HumanBytes(double bytes) {
  char text[32];
  if (bytes >= 1024.0 * 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  } else if (bytes >= 1024.0 * 1024) {
    std::snprintf(text, sizeof text, "%.0f MiB", bytes / (1024.0 * 1024));
  } else {
    std::snprintf(text, sizeof text, "%.0f KiB", bytes / 1024.0);
  }
  return text;
}

}  // namespace rapport::bench
