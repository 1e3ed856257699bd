#include "append_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace rapport::connectors::internal {
namespace {

std::string Errno() { return std::strerror(errno); }

// Makes a newly created directory entry durable.
Status SyncParentDirectory(const std::string& path, const std::string& what) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Status::IoError(what + ": cannot open its directory to sync it: " + Errno());
  int rc = ::fsync(dir);
  std::string err = rc != 0 ? Errno() : "";
  ::close(dir);
  if (rc != 0) return Status::IoError(what + ": syncing its directory: " + err);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<AppendFile>> AppendFile::Open(const std::string& path, int standard_fd, std::string what) {
  if (path.empty()) return Status::InvalidArgument(what + ": the path is empty");
  if (path == "-") {
    struct stat st {};
    bool regular = ::fstat(standard_fd, &st) == 0 && S_ISREG(st.st_mode);
    return std::unique_ptr<AppendFile>(new AppendFile(standard_fd, false, regular, std::move(what)));
  }
  constexpr int kFlags = O_WRONLY | O_APPEND | O_CLOEXEC;
  bool created = true;
  int fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0644);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), kFlags);
  }
  if (fd < 0) return Status::IoError(what + ": cannot open for appending: " + Errno());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string err = Errno();
    ::close(fd);
    return Status::IoError(what + ": " + err);
  }
  std::unique_ptr<AppendFile> file(new AppendFile(fd, true, S_ISREG(st.st_mode), std::move(what)));
  if (created) {
    if (Status s = SyncParentDirectory(path, file->what_); !s.ok()) return s;
  }
  return file;
}

AppendFile::~AppendFile() {
  if (owned_) ::close(fd_);
}

Status AppendFile::Write(std::string_view data) {
  off_t before = -1;
  if (owned_ && regular_) before = ::lseek(fd_, 0, SEEK_END);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string err = n < 0 ? Errno() : "wrote nothing";
      if (before >= 0 && done > 0 && ::ftruncate(fd_, before) != 0) {
        return Status::IoError(what_ + ": write failed (" + err + ") and a partial batch is left: " + Errno());
      }
      return Status::IoError(what_ + ": write failed: " + err);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status AppendFile::Sync() {
  if (!regular_) return Status::Ok();
  if (::fdatasync(fd_) != 0) return Status::IoError(what_ + ": fdatasync failed: " + Errno());
  return Status::Ok();
}

}  // namespace rapport::connectors::internal
