// Dead letters: events that broke the contract, with the reason.
//
// One JSON object per line:
//   {"source":"events.jsonl","line":17,"offset":1234,"reason":"bad_ts",
//    "message":"ts \"yesterday\" is ...","raw":"{\"type\":..."}
// `raw` is the event's text cut to kMaxRawBytes (then "raw_truncated":true),
// escaped so that binary junk still gives valid JSON. Kafka sources add
// "topic" (the same as "source"), "partition" and "offset" instead of "line".
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "rapport/engine/event.h"
#include "rapport/engine/status.h"

namespace rapport::connectors {

inline constexpr size_t kMaxRawBytes = 1024;

struct DeadLetter {
  std::string_view source;  // file path, "-" for stdin, or topic name
  uint64_t line = 0;        // 0 when not from a file
  int32_t partition = -1;   // -1 when not from Kafka
  uint64_t offset = 0;      // byte offset in a file, or Kafka offset
  RejectReason reason;
  std::string_view message;
  std::string_view raw;
};

// Appends the JSON object (without newline) for `letter` to *out.
void AppendDeadLetterJson(const DeadLetter& letter, std::string* out);

// Writes dead letters as JSONL to a file. Buffered; Flush() or destruction
// writes them out.
class DeadLetterFile {
 public:
  static Result<std::unique_ptr<DeadLetterFile>> Open(const std::string& path);
  ~DeadLetterFile();
  DeadLetterFile(const DeadLetterFile&) = delete;
  DeadLetterFile& operator=(const DeadLetterFile&) = delete;

  Status Write(const DeadLetter& letter);
  Status Flush();

 private:
  explicit DeadLetterFile(std::FILE* file) : file_(file) {}
  std::FILE* file_;
  std::string line_;
};

}  // namespace rapport::connectors
