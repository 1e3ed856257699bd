// The file action output: JSONL appended to a file, or stdout for "-".
//
// A Deliver() call is one write(2) of the whole batch followed by fdatasync,
// so it blocks only as long as the disk does; on a write error the file is cut
// back to where the batch began (see append_file.h).
#include <unistd.h>

#include "append_file.h"
#include "rapport/connectors/sinks.h"

namespace rapport::connectors {
namespace {

class FileOutput final : public ActionOutput {
 public:
  FileOutput(std::unique_ptr<internal::AppendFile> file, const FileOutputOptions& options)
      : file_(std::move(file)), path_(options.path), deliver_held_out_(options.deliver_held_out) {}

  Status Deliver(std::span<const OutboxRecord> records, const std::atomic<bool>& /*stopping*/) override {
    batch_.clear();
    for (const OutboxRecord& r : records) {
      if (r.held_out && !deliver_held_out_) continue;
      batch_.append(r.action_json);
      batch_.push_back('\n');
    }
    if (batch_.empty()) return Status::Ok();
    if (Status s = file_->Write(batch_); !s.ok()) return s;
    return file_->Sync();
  }

  std::string Describe() const override { return "file:" + path_; }

 private:
  std::unique_ptr<internal::AppendFile> file_;
  std::string path_;
  bool deliver_held_out_;
  std::string batch_;  // reused across batches
};

}  // namespace

Result<std::unique_ptr<ActionOutput>> OpenFileOutput(const FileOutputOptions& options) {
  auto file = internal::AppendFile::Open(options.path, STDOUT_FILENO, "file:" + options.path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<ActionOutput>(new FileOutput(std::move(file).value(), options));
}

}  // namespace rapport::connectors
