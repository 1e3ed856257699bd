// AppendFile: a file opened for appending whole batches of lines, made durable
// on request (internal to connectors/src/sinks).
//
// Decisions worth knowing:
// - Plain write(2) on an O_APPEND descriptor, no stdio buffering: Write()
//   either appends all of its bytes or, for a file we opened, cuts the file
//   back to where it was, so a failed batch never leaves half a line for the
//   next (retried) batch to be glued to.
// - Sync() is fdatasync(2) for a regular file (enough for appended data and
//   the new size); pipes and terminals have nothing to sync. A file that Open
//   created also gets its directory fsync'd once, so the name survives a crash.
// - "-" is the given standard stream (stdout or stderr), never closed.
// - One writer per file: appends from another process would be cut by the
//   roll-back above if they landed inside a failed batch.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "rapport/engine/status.h"

namespace rapport::connectors::internal {

class AppendFile {
 public:
  // `what` names the file in messages ("file:/var/out.jsonl").
  static Result<std::unique_ptr<AppendFile>> Open(const std::string& path, int standard_fd, std::string what);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  Status Write(std::string_view data);
  Status Sync();

 private:
  AppendFile(int fd, bool owned, bool regular, std::string what)
      : fd_(fd), owned_(owned), regular_(regular), what_(std::move(what)) {}
  int fd_;
  bool owned_;    // false for stdout/stderr
  bool regular_;  // a regular file: can be synced and truncated
  std::string what_;
};

}  // namespace rapport::connectors::internal
