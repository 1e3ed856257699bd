// JsonlReader: reads a file or stdin as lines, for the event decoder.
//
// Reads in large blocks and hands out each line as a view into its buffer,
// followed by at least kEventPadding readable bytes, so the decoder parses in
// place without copying. Accepts "\n" and "\r\n" line ends and a last line
// without one. A line longer than kMaxEventBytes is not kept whole: it is
// reported with `too_long` set and `text` holding only its first bytes, and
// reading goes on at the next line. A NUL byte or other binary is just bytes
// in a line; the decoder rejects it.
//
// Lifecycle: move-only; owns the file descriptor (closed on destruction,
// never closes stdin). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "rapport/engine/status.h"

namespace rapport::connectors {

struct Line {
  std::string_view text;  // without the line end; valid until the next Next()
  uint64_t number = 0;    // 1-based line number
  uint64_t offset = 0;    // byte offset of the line's first byte in the input
  bool too_long = false;  // text is a prefix: the line exceeded kMaxEventBytes
};

class JsonlReader {
 public:
  // "-" reads stdin.
  static Result<std::unique_ptr<JsonlReader>> Open(const std::string& path);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // Fills *line with the next line. Returns false at the end of the input or
  // on a read error (then status() says which).
  bool Next(Line* line);
  const Status& status() const { return status_; }
  // Bytes consumed so far: the offset just past the last line returned.
  uint64_t position() const { return position_; }
  const std::string& path() const { return path_; }

 private:
  JsonlReader(int fd, bool owns_fd, std::string path);
  bool Fill();

  int fd_;
  bool owns_fd_;
  std::string path_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // first unconsumed byte in buffer_
  size_t end_ = 0;    // one past the last byte read into buffer_
  bool eof_ = false;
  uint64_t line_number_ = 0;
  uint64_t position_ = 0;
  Status status_;
};

}  // namespace rapport::connectors
