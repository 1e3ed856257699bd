// JsonlReader: a file or stdin as lines, read with read(2) in large blocks.
//
// Buffer layout: buffer_ holds capacity_ data bytes plus kEventPadding bytes
// of slack that are never filled, so every line handed out (which ends at or
// before capacity_) is followed by at least kEventPadding readable bytes.
// Unconsumed bytes are [begin_, end_). When no line end is buffered, Fill()
// moves that tail to the start of the buffer and reads more; the buffer grows
// (from kInitialCapacity up to kMaxCapacity) only while one pending line does
// not leave room for a kMinRead read. After warm-up nothing allocates.
//
// Too-long lines: as soon as more than kMaxEventBytes + 1 bytes of one line
// are buffered (so that its text, without a possible "\r", is surely longer
// than kMaxEventBytes), the first kMaxEventBytes + 1 bytes are kept as the
// line's text (too_long = true; EventDecoder rejects it as kTooLarge) and the
// rest of the line is read into the buffer after that prefix and discarded,
// block by block, up to its "\n". A line that is exactly kMaxEventBytes + 1
// bytes long is returned whole, also with too_long set. Memory use stays at
// kMaxCapacity + kEventPadding whatever the line length.
#include "rapport/connectors/jsonl_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rapport/engine/event.h"

namespace rapport::connectors {
namespace {

constexpr size_t kBlock = size_t{1} << 20;         // 1 MiB
constexpr size_t kInitialCapacity = kBlock;
constexpr size_t kMaxCapacity = kMaxEventBytes + kBlock;
constexpr size_t kMinRead = 64 * 1024;
constexpr size_t kPrefixBytes = kMaxEventBytes + 1;  // text kept of a too-long line

static_assert(kMaxCapacity >= kPrefixBytes + 1 + kMinRead);

std::unique_ptr<char[]> Allocate(size_t capacity) {
  // Value-initialised: the padding after the data area is zeroed.
  return std::make_unique<char[]>(capacity + kEventPadding);
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

Result<std::unique_ptr<JsonlReader>> JsonlReader::Open(const std::string& path) {
  if (path == "-") {
    return std::unique_ptr<JsonlReader>(new JsonlReader(STDIN_FILENO, /*owns_fd=*/false, path));
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::IoError("cannot open " + path + ": " + ErrnoText(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::IoError("cannot read " + path + ": " + ErrnoText(EISDIR));
  }
  return std::unique_ptr<JsonlReader>(new JsonlReader(fd, /*owns_fd=*/true, path));
}

JsonlReader::JsonlReader(int fd, bool owns_fd, std::string path)
    : fd_(fd), owns_fd_(owns_fd), path_(std::move(path)), buffer_(Allocate(kInitialCapacity)),
      capacity_(kInitialCapacity) {}

JsonlReader::~JsonlReader() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

// Makes room and reads once. Returns false on a read error (status_ set);
// sets eof_ at the end of the input.
bool JsonlReader::Fill() {
  if (begin_ > 0) {
    size_t pending = end_ - begin_;
    if (pending > 0) std::memmove(buffer_.get(), buffer_.get() + begin_, pending);
    begin_ = 0;
    end_ = pending;
  }
  if (capacity_ - end_ < kMinRead && capacity_ < kMaxCapacity) {
    size_t grown = capacity_ * 2 < kMaxCapacity ? capacity_ * 2 : kMaxCapacity;
    std::unique_ptr<char[]> bigger = Allocate(grown);
    std::memcpy(bigger.get(), buffer_.get(), end_);
    buffer_ = std::move(bigger);
    capacity_ = grown;
  }
  for (;;) {
    ssize_t n = ::read(fd_, buffer_.get() + end_, capacity_ - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (errno == EINTR) continue;
    status_ = Status::IoError("reading " + path_ + ": " + ErrnoText(errno));
    return false;
  }
}

bool JsonlReader::Next(Line* line) {
  if (!status_.ok()) return false;
  size_t scanned = 0;  // bytes after begin_ known to hold no '\n'
  for (;;) {
    const char* data = buffer_.get() + begin_;
    size_t pending = end_ - begin_;
    const void* nl = pending > scanned ? std::memchr(data + scanned, '\n', pending - scanned) : nullptr;
    if (nl != nullptr) {
      size_t length = static_cast<const char*>(nl) - data;
      size_t text_length = length > 0 && data[length - 1] == '\r' ? length - 1 : length;
      line->too_long = text_length > kMaxEventBytes;
      line->text = std::string_view(data, line->too_long ? kPrefixBytes : text_length);
      line->number = ++line_number_;
      line->offset = position_;
      position_ += length + 1;
      begin_ += length + 1;
      return true;
    }
    scanned = pending;
    if (eof_) {
      if (pending == 0) return false;
      // The last line, without a line end.
      size_t text_length = data[pending - 1] == '\r' ? pending - 1 : pending;
      line->too_long = text_length > kMaxEventBytes;
      line->text = std::string_view(data, line->too_long ? kPrefixBytes : text_length);
      line->number = ++line_number_;
      line->offset = position_;
      position_ += pending;
      begin_ = end_;
      return true;
    }
    if (pending > kPrefixBytes) break;  // too long: keep a prefix, skip the rest
    if (!Fill()) return false;
  }

  // A too-long line. Move its start to the buffer start, keep kPrefixBytes
  // bytes of it and read the rest of the line after them, discarding it.
  if (begin_ > 0) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  line->too_long = true;
  line->text = std::string_view(buffer_.get(), kPrefixBytes);
  line->number = ++line_number_;
  line->offset = position_;
  uint64_t length = end_;  // bytes of the line seen so far (none is '\n')
  const size_t scratch = kPrefixBytes;
  for (;;) {
    ssize_t n;
    do {
      n = ::read(fd_, buffer_.get() + scratch, capacity_ - scratch);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      // Report the prefix now; the next Next() returns false with this status.
      status_ = Status::IoError("reading " + path_ + ": " + ErrnoText(errno));
      position_ += length;
      begin_ = end_ = scratch;
      return true;
    }
    if (n == 0) {
      eof_ = true;
      position_ += length;
      begin_ = end_ = scratch;
      return true;
    }
    const char* chunk = buffer_.get() + scratch;
    const void* nl = std::memchr(chunk, '\n', static_cast<size_t>(n));
    if (nl != nullptr) {
      size_t used = static_cast<const char*>(nl) - chunk + 1;
      position_ += length + used;
      begin_ = scratch + used;
      end_ = scratch + static_cast<size_t>(n);
      return true;
    }
    length += static_cast<size_t>(n);
  }
}

}  // namespace rapport::connectors
