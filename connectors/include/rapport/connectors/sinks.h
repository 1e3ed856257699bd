// Sinks: where committed actions and rejected events go.
//
// The daemon commits fired actions to the outbox in the same RocksDB
// WriteBatch as the state and the source position. The dispatcher then hands
// outbox records to an ActionOutput in batches and deletes them only after
// Deliver() returns ok. Delivery is therefore at least once: after a crash or
// a failed Deliver() a record may be delivered again, with the same
// action_id, and downstream deduplicates on it.
//
// Outputs (chosen by the config's `sinks:` list):
//   kafka    an idempotent producer; key = customer_id, value = action JSON.
//            Deliver() returns ok once every record's delivery report is a
//            success.
//   file     JSONL appended to a file ("-" is stdout); ok once written and
//            flushed (fsync'd for a file).
//   webhook  POST of each action JSON to a URL; ok once every POST got a 2xx.
//            Each POST has a timeout; failures are retried with exponential
//            back-off and full jitter up to `retry_for`, then Deliver()
//            returns Unavailable and the records wait in the outbox.
// Held-out firings are records too (their JSON says "held_out": true); an
// output with `deliver_held_out: false` acknowledges them without sending.
//
// Threads: an output is used by one dispatcher thread at a time. `stopping`,
// when set, asks a Deliver() that is waiting (back-off, broker down) to give
// up soon with Unavailable.
//
// How long Deliver() can block:
//   kafka    about delivery_timeout (librdkafka's message.timeout.ms defaults
//            to it, so what a failed Deliver() gave up on is dropped from the
//            client's queue too); `stopping` is seen within 50 ms.
//   file     as long as write(2) and fdatasync(2) take; a failed write is
//            rolled back so no half line is left.
//   webhook  per record about retry_for plus one request (a request can take
//            up to ~3 x timeout: connect, write, read); `stopping` is seen
//            before each request and within 50 ms of a back-off wait, not
//            during a request. Every non-2xx (4xx included) is retried.
// Errors: Unavailable for peers; IoError for the file system; InvalidArgument
// from Deliver() only for a Kafka record larger than message.max.bytes
// (retrying cannot help). The webhook output blocks SIGPIPE in the calling
// thread during Deliver() (Debian's httplib sends without MSG_NOSIGNAL).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "rapport/connectors/dead_letter.h"
#include "rapport/engine/status.h"

namespace rapport::connectors {

struct OutboxRecord {
  uint32_t partition = 0;
  uint64_t sequence = 0;  // order of commit within the partition
  std::string_view customer_id;
  std::string_view action_json;  // one JSON object, no newline
  bool held_out = false;
};

class ActionOutput {
 public:
  virtual ~ActionOutput() = default;
  // Delivers every record or returns an error (Unavailable for transient
  // failures); partial delivery before an error is allowed.
  virtual Status Deliver(std::span<const OutboxRecord> records, const std::atomic<bool>& stopping) = 0;
  // For logs: "kafka:actions", "file:/var/out.jsonl", "webhook:http://...".
  virtual std::string Describe() const = 0;
};

// librdkafka properties, passed through verbatim ("bootstrap.servers", ...).
using KafkaProperties = std::map<std::string, std::string>;

struct KafkaOutputOptions {
  KafkaProperties properties;
  std::string topic;
  std::chrono::milliseconds delivery_timeout{30000};
  bool deliver_held_out = true;
};
struct FileOutputOptions {
  std::string path;  // "-" for stdout
  bool deliver_held_out = true;
};
struct WebhookOutputOptions {
  std::string url;  // http://host:port/path (https when built with OpenSSL support in httplib)
  std::map<std::string, std::string> headers;  // e.g. Authorization
  std::chrono::milliseconds timeout{5000};     // per request
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10000};
  std::chrono::milliseconds retry_for{60000};  // then Unavailable
  bool deliver_held_out = false;
};

Result<std::unique_ptr<ActionOutput>> OpenKafkaOutput(const KafkaOutputOptions& options);
Result<std::unique_ptr<ActionOutput>> OpenFileOutput(const FileOutputOptions& options);
Result<std::unique_ptr<ActionOutput>> OpenWebhookOutput(const WebhookOutputOptions& options);

// Where rejected events go: a JSONL file or a Kafka topic, one
// AppendDeadLetterJson object per letter (Kafka: no key, as DeadLetter does not
// carry the source's key). Flush() returns ok once every letter written so far is
// durable; the daemon flushes before it commits the source position, so a
// rejected event is never lost (it may be written twice after a crash).
class DeadLetterOutput {
 public:
  virtual ~DeadLetterOutput() = default;
  virtual Status Write(const DeadLetter& letter) = 0;
  virtual Status Flush() = 0;
  virtual std::string Describe() const = 0;
};

// "-" is stderr. Letters are buffered until Flush() (write + fdatasync).
Result<std::unique_ptr<DeadLetterOutput>> OpenDeadLetterFileOutput(const std::string& path);
// Flush() waits for every letter's delivery report: up to message.timeout.ms
// (30 s unless `properties` set it) + 2 s when the broker is down.
Result<std::unique_ptr<DeadLetterOutput>> OpenDeadLetterKafkaOutput(const KafkaProperties& properties,
                                                                    const std::string& topic);

}  // namespace rapport::connectors
