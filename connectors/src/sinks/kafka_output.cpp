// The Kafka action output: one idempotent producer per output; a Deliver()
// call is one batch (see kafka_producer.h for how batches are tracked).
//
// Deliver() blocks at most about delivery_timeout (plus one 50 ms poll slice),
// less when `stopping` is set; records it gave up on may still reach the topic
// later, which at-least-once delivery allows.
#include <chrono>

#include "kafka_producer.h"
#include "rapport/connectors/sinks.h"

namespace rapport::connectors {
namespace {

class KafkaOutput final : public ActionOutput {
 public:
  KafkaOutput(std::unique_ptr<internal::KafkaProducer> producer, const KafkaOutputOptions& options)
      : producer_(std::move(producer)),
        topic_(options.topic),
        delivery_timeout_(options.delivery_timeout),
        deliver_held_out_(options.deliver_held_out) {}

  Status Deliver(std::span<const OutboxRecord> records, const std::atomic<bool>& stopping) override {
    auto deadline = internal::Clock::now() + delivery_timeout_;
    if (Status s = producer_->BeginBatch(); !s.ok()) return s;
    for (const OutboxRecord& r : records) {
      if (r.held_out && !deliver_held_out_) continue;
      if (Status s = producer_->Produce(r.customer_id, r.action_json, deadline, &stopping); !s.ok()) return s;
    }
    return producer_->WaitForBatch(deadline, &stopping);
  }

  std::string Describe() const override { return "kafka:" + topic_; }

 private:
  std::unique_ptr<internal::KafkaProducer> producer_;
  std::string topic_;
  std::chrono::milliseconds delivery_timeout_;
  bool deliver_held_out_;
};

}  // namespace

Result<std::unique_ptr<ActionOutput>> OpenKafkaOutput(const KafkaOutputOptions& options) {
  std::string what = "kafka:" + options.topic;
  if (options.delivery_timeout <= std::chrono::milliseconds::zero()) {
    return Status::InvalidArgument(what + ": the delivery timeout must be positive");
  }
  auto producer = internal::KafkaProducer::Create(options.properties, options.topic, what, options.delivery_timeout);
  if (!producer.ok()) return producer.status();
  return std::unique_ptr<ActionOutput>(new KafkaOutput(std::move(producer).value(), options));
}

}  // namespace rapport::connectors
