// KafkaProducer: the librdkafka producer shared by the Kafka action output and
// the Kafka dead-letter output (internal to connectors/src/sinks).
//
// Decisions worth knowing:
// - Idempotent (enable.idempotence=true, acks=all): librdkafka's own retries
//   then never duplicate or reorder a message; the only duplicates left are
//   the ones at-least-once delivery makes on purpose (a batch sent again after
//   a failed Deliver or a crash).
// - Delivery is tracked per batch: each message carries its batch number as
//   msg_opaque, and reports for an older batch (one a caller gave up on) are
//   ignored, so an abandoned batch can never be counted as delivered for the
//   current one.
// - message.timeout.ms defaults to the caller's delivery timeout, so the
//   messages of a batch that timed out are dropped by librdkafka about when
//   the caller gives up on them instead of piling up while a broker is down
//   and the dispatcher keeps retrying.
// - A fatal producer error (possible with idempotence, e.g. an unrecoverable
//   sequence gap) makes the handle useless; BeginBatch() then replaces it.
// - Not thread-safe: one thread calls BeginBatch/Produce/WaitForBatch. Delivery
//   reports and errors are served by those calls (poll/flush), on that thread.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "rapport/connectors/sinks.h"
#include "rapport/engine/status.h"

namespace rapport::connectors::internal {

using Clock = std::chrono::steady_clock;

class KafkaProducer {
 public:
  // `what` names the output in messages ("kafka:actions"). Applies
  // `properties` verbatim, then the idempotence settings; message.timeout.ms
  // is set to `default_message_timeout` unless the properties set it (or its
  // alias delivery.timeout.ms). InvalidArgument for a bad property.
  static Result<std::unique_ptr<KafkaProducer>> Create(const KafkaProperties& properties, std::string topic,
                                                       std::string what,
                                                       std::chrono::milliseconds default_message_timeout);
  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Starts a new batch (forgetting the previous one's outcome), replacing the
  // producer first if it hit a fatal error.
  Status BeginBatch();
  // Enqueues one message of the current batch; on a full local queue serves
  // delivery reports and retries until `deadline` or `stopping`.
  Status Produce(std::optional<std::string_view> key, std::string_view value, Clock::time_point deadline,
                 const std::atomic<bool>* stopping);
  // Waits until every message of the current batch has its delivery report,
  // or `deadline`, or `stopping`. Ok only if all were delivered; otherwise
  // Unavailable with the first failure (or what is missing and the last
  // client error).
  Status WaitForBatch(Clock::time_point deadline, const std::atomic<bool>* stopping);

  // The effective message.timeout.ms.
  std::chrono::milliseconds message_timeout() const { return message_timeout_; }

 private:
  // Counts the current batch's delivery reports.
  class Reports : public RdKafka::DeliveryReportCb {
   public:
    void dr_cb(RdKafka::Message& message) override;
    uint64_t batch = 0;
    size_t produced = 0;
    size_t pending = 0;
    std::string first_error;
  };
  // Keeps the last client-level error for messages, and forwards librdkafka's
  // logs to stderr (setting an event callback replaces its default logger).
  class Events : public RdKafka::EventCb {
   public:
    void event_cb(RdKafka::Event& event) override;
    std::string last_error();
    void clear_last_error();
    std::string what;  // set before the handle exists, then only read

   private:
    std::mutex mu_;  // logs arrive on librdkafka's threads
    std::string last_error_;
  };

  KafkaProducer() = default;
  Status CreateHandle();
  void DestroyHandle();
  // what_ + what happened + the last client-level error, if any.
  std::string Explain(std::string_view what_happened);

  std::string topic_;
  std::string what_;
  std::chrono::milliseconds message_timeout_{0};
  std::unique_ptr<RdKafka::Conf> conf_;
  // Declared before producer_: librdkafka calls them until the handle is gone.
  Reports reports_;
  Events events_;
  std::unique_ptr<RdKafka::Producer> producer_;
  // Made with the handle: creating it starts the topic's metadata lookup, so
  // the first batch does not pay for it (librdkafka otherwise may only notice
  // the new topic on its once-a-second scan). Destroyed before producer_.
  std::unique_ptr<RdKafka::Topic> topic_handle_;
};

}  // namespace rapport::connectors::internal
