// Dead letters as JSONL.
//
// Decisions worth knowing:
// - Keys, in order: "source", then "line" (when line > 0) and/or "partition"
//   (when partition >= 0), "offset", "reason", "message", "raw", and
//   "raw_truncated":true when raw was cut.
// - raw is cut to kMaxRawBytes, backing off (at most 3 bytes) so that a UTF-8
//   sequence is not split; bytes that are not valid UTF-8 become U+FFFD and
//   control bytes (NUL included) become \u00XX, so the line is valid JSON.
// - DeadLetterFile::Open appends to an existing file (earlier dead letters are
//   kept); "-" means stderr, which is flushed but never closed.
// - The class does not keep its path, so Write/Flush errors name it
//   "the dead-letter file".
#include "rapport/connectors/dead_letter.h"

#include <cerrno>
#include <cstring>

#include "rapport/engine/json_writer.h"

namespace rapport::connectors {

void AppendDeadLetterJson(const DeadLetter& letter, std::string* out) {
  JsonWriter w(out);
  w.BeginObject();
  w.Key("source");
  w.String(letter.source);
  if (letter.line > 0) {
    w.Key("line");
    w.Int(static_cast<int64_t>(letter.line));
  }
  if (letter.partition >= 0) {
    w.Key("topic");
    w.String(letter.source);
    w.Key("partition");
    w.Int(letter.partition);
  }
  w.Key("offset");
  w.Int(static_cast<int64_t>(letter.offset));
  w.Key("reason");
  w.String(RejectReasonName(letter.reason));
  w.Key("message");
  w.String(letter.message);
  std::string_view raw = letter.raw;
  bool truncated = false;
  if (raw.size() > kMaxRawBytes) {
    size_t n = kMaxRawBytes;
    size_t k = 0;
    while (k < 3 && n > 0 && (static_cast<unsigned char>(raw[n]) & 0xC0) == 0x80) {
      --n;
      ++k;
    }
    // Not UTF-8 after all (more than 3 continuation bytes): cut where asked.
    if ((static_cast<unsigned char>(raw[n]) & 0xC0) == 0x80) n = kMaxRawBytes;
    raw = raw.substr(0, n);
    truncated = true;
  }
  w.Key("raw");
  w.String(raw);
  if (truncated) {
    w.Key("raw_truncated");
    w.Bool(true);
  }
  w.EndObject();
}

Result<std::unique_ptr<DeadLetterFile>> DeadLetterFile::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<DeadLetterFile>(new DeadLetterFile(stderr));
  std::FILE* file = std::fopen(path.c_str(), "ae");
  if (file == nullptr) {
    return Status::IoError("cannot open dead-letter file " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<DeadLetterFile>(new DeadLetterFile(file));
}

DeadLetterFile::~DeadLetterFile() {
  if (file_ == nullptr) return;
  if (file_ == stderr) {
    std::fflush(file_);
  } else {
    std::fclose(file_);  // flushes
  }
}

Status DeadLetterFile::Write(const DeadLetter& letter) {
  line_.clear();
  AppendDeadLetterJson(letter, &line_);
  line_.push_back('\n');
  if (std::fwrite(line_.data(), 1, line_.size(), file_) != line_.size()) {
    return Status::IoError(std::string("writing the dead-letter file: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status DeadLetterFile::Flush() {
  if (std::fflush(file_) != 0) {
    return Status::IoError(std::string("flushing the dead-letter file: ") + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace rapport::connectors
