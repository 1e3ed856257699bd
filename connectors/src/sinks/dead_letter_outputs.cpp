// Dead-letter outputs: a JSONL file (or stderr for "-") and a Kafka topic.
//
// Both keep letters in flight between Flush() calls: the file buffers them in
// memory (written out past kBufferLimit), the topic has them in librdkafka's
// queue. Flush() is the durability point: file written and fdatasync'd, or
// every letter's delivery report a success. The Kafka Flush() blocks up to
// message.timeout.ms (30 s unless the properties say otherwise) plus a 2 s
// grace for librdkafka's timeout scan when the broker is down.
#include <unistd.h>

#include "append_file.h"
#include "kafka_producer.h"
#include "rapport/connectors/sinks.h"

namespace rapport::connectors {
namespace {

constexpr size_t kBufferLimit = 1 << 20;
constexpr std::chrono::milliseconds kDefaultDeadLetterTimeout{30000};
// librdkafka scans for timed-out messages about once a second; this lets the
// report of a message that timed out arrive before Flush() gives up on it.
constexpr std::chrono::milliseconds kReportGrace{2000};

class DeadLetterFileOutput final : public DeadLetterOutput {
 public:
  DeadLetterFileOutput(std::unique_ptr<internal::AppendFile> file, std::string path)
      : file_(std::move(file)), path_(std::move(path)) {}
  ~DeadLetterFileOutput() override {
    // Best effort: unflushed letters were never promised to be durable.
    if (!buffer_.empty()) (void)file_->Write(buffer_);
  }

  Status Write(const DeadLetter& letter) override {
    AppendDeadLetterJson(letter, &buffer_);
    buffer_.push_back('\n');
    if (buffer_.size() < kBufferLimit) return Status::Ok();
    return WriteOut();
  }

  Status Flush() override {
    if (Status s = WriteOut(); !s.ok()) return s;
    return file_->Sync();
  }

  std::string Describe() const override { return "file:" + path_; }

 private:
  Status WriteOut() {
    if (buffer_.empty()) return Status::Ok();
    Status s = file_->Write(buffer_);
    // On failure keep the letters: the next Flush() tries them again.
    if (s.ok()) buffer_.clear();
    return s;
  }

  std::unique_ptr<internal::AppendFile> file_;
  std::string path_;
  std::string buffer_;
};

class DeadLetterKafkaOutput final : public DeadLetterOutput {
 public:
  DeadLetterKafkaOutput(std::unique_ptr<internal::KafkaProducer> producer, std::string topic)
      : producer_(std::move(producer)), topic_(std::move(topic)) {}

  Status Write(const DeadLetter& letter) override {
    Status s = StartBatchIfNeeded();
    if (s.ok()) {
      value_.clear();
      AppendDeadLetterJson(letter, &value_);
      s = producer_->Produce(std::nullopt, value_, internal::Clock::now() + producer_->message_timeout(), nullptr);
    }
    // Remembered so that Flush() fails too, even if the caller ignored this.
    if (!s.ok() && write_error_.ok()) write_error_ = s;
    return s;
  }

  Status Flush() override {
    Status s = write_error_;
    if (in_batch_) {
      Status waited =
          producer_->WaitForBatch(internal::Clock::now() + producer_->message_timeout() + kReportGrace, nullptr);
      if (s.ok()) s = std::move(waited);
    }
    // Either way the next letters start a new batch: a failed Flush() is
    // answered by the caller writing the letters again.
    in_batch_ = false;
    write_error_ = Status::Ok();
    return s;
  }

  std::string Describe() const override { return "kafka:" + topic_; }

 private:
  Status StartBatchIfNeeded() {
    if (in_batch_) return Status::Ok();
    if (Status s = producer_->BeginBatch(); !s.ok()) return s;
    in_batch_ = true;
    return Status::Ok();
  }

  std::unique_ptr<internal::KafkaProducer> producer_;
  std::string topic_;
  bool in_batch_ = false;
  Status write_error_;
  std::string value_;  // reused across letters
};

}  // namespace

Result<std::unique_ptr<DeadLetterOutput>> OpenDeadLetterFileOutput(const std::string& path) {
  auto file = internal::AppendFile::Open(path, STDERR_FILENO, "dead-letter file " + path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<DeadLetterOutput>(new DeadLetterFileOutput(std::move(file).value(), path));
}

Result<std::unique_ptr<DeadLetterOutput>> OpenDeadLetterKafkaOutput(const KafkaProperties& properties,
                                                                    const std::string& topic) {
  auto producer =
      internal::KafkaProducer::Create(properties, topic, "dead letters kafka:" + topic, kDefaultDeadLetterTimeout);
  if (!producer.ok()) return producer.status();
  return std::unique_ptr<DeadLetterOutput>(new DeadLetterKafkaOutput(std::move(producer).value(), topic));
}

}  // namespace rapport::connectors
