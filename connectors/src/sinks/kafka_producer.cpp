#include "kafka_producer.h"

#include <algorithm>
#include <cstdio>
#include <optional>

namespace rapport::connectors::internal {
namespace {

// How long one poll/flush may block before we look at the deadline and
// `stopping` again.
constexpr std::chrono::milliseconds kSlice{50};

bool Has(const KafkaProperties& p, const char* name) { return p.find(name) != p.end(); }

int SliceMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp(left, std::chrono::milliseconds(1), kSlice).count());
}

}  // namespace

void KafkaProducer::Reports::dr_cb(RdKafka::Message& message) {
  if (reinterpret_cast<uintptr_t>(message.msg_opaque()) != batch) return;  // a batch the caller gave up on
  if (pending > 0) --pending;
  if (message.err() != RdKafka::ERR_NO_ERROR && first_error.empty()) first_error = message.errstr();
}

void KafkaProducer::Events::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR: {
      std::string text = (event.fatal() ? "fatal: " : "") + RdKafka::err2str(event.err()) + ": " + event.str();
      std::fprintf(stderr, "%%3|%s|ERROR| %s\n", what.c_str(), text.c_str());
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = std::move(text);
      break;
    }
    case RdKafka::Event::EVENT_LOG:
      std::fprintf(stderr, "%%%d|%s|%s| %s\n", static_cast<int>(event.severity()), what.c_str(), event.fac().c_str(),
                   event.str().c_str());
      break;
    default: break;
  }
}

std::string KafkaProducer::Events::last_error() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void KafkaProducer::Events::clear_last_error() {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_.clear();
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const KafkaProperties& properties, std::string topic,
                                                             std::string what,
                                                             std::chrono::milliseconds default_message_timeout) {
  if (topic.empty()) return Status::InvalidArgument(what + ": the topic is empty");
  if (!Has(properties, "bootstrap.servers") && !Has(properties, "metadata.broker.list")) {
    return Status::InvalidArgument(what + ": bootstrap.servers is not set");
  }
  // Exactly-once per produce call is what makes a failed batch safe to send
  // again; a config that turns it off would quietly weaken that.
  if (auto it = properties.find("enable.idempotence"); it != properties.end() && it->second != "true") {
    return Status::InvalidArgument(what + ": enable.idempotence must be true (the sink relies on it)");
  }
  if (auto it = properties.find("acks"); it != properties.end() && it->second != "all" && it->second != "-1") {
    return Status::InvalidArgument(what + ": acks must be all (an idempotent producer needs it)");
  }

  std::unique_ptr<KafkaProducer> p(new KafkaProducer());
  p->topic_ = std::move(topic);
  p->what_ = std::move(what);
  p->events_.what = p->what_;
  p->conf_.reset(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [name, value] : properties) {
    // The value is left out of the message: it may be a password.
    if (p->conf_->set(name, value, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument(p->what_ + ": property " + name + ": " + err);
    }
  }
  if (!Has(properties, "message.timeout.ms") && !Has(properties, "delivery.timeout.ms")) {
    if (p->conf_->set("message.timeout.ms", std::to_string(default_message_timeout.count()), err) !=
        RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument(p->what_ + ": delivery timeout: " + err);
    }
  }
  if (p->conf_->set("enable.idempotence", "true", err) != RdKafka::Conf::CONF_OK ||
      p->conf_->set("acks", "all", err) != RdKafka::Conf::CONF_OK ||
      p->conf_->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&p->reports_), err) != RdKafka::Conf::CONF_OK ||
      p->conf_->set("event_cb", static_cast<RdKafka::EventCb*>(&p->events_), err) != RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument(p->what_ + ": " + err);
  }
  std::string timeout;
  if (p->conf_->get("message.timeout.ms", timeout) == RdKafka::Conf::CONF_OK) {
    p->message_timeout_ = std::chrono::milliseconds(std::stoll(timeout));
  } else {
    p->message_timeout_ = default_message_timeout;
  }
  if (Status s = p->CreateHandle(); !s.ok()) return s;
  return p;
}

KafkaProducer::~KafkaProducer() { DestroyHandle(); }

Status KafkaProducer::CreateHandle() {
  std::string err;
  producer_.reset(RdKafka::Producer::create(conf_.get(), err));
  if (producer_ == nullptr) return Status::InvalidArgument(what_ + ": cannot create the producer: " + err);
  topic_handle_.reset(RdKafka::Topic::create(producer_.get(), topic_, nullptr, err));
  if (topic_handle_ == nullptr) {
    producer_.reset();
    return Status::InvalidArgument(what_ + ": topic " + topic_ + ": " + err);
  }
  return Status::Ok();
}

void KafkaProducer::DestroyHandle() {
  if (producer_ == nullptr) return;
  // What is still queued belongs to a batch nobody waits for (its records are
  // still in the outbox, or its dead letters were never flushed): drop it
  // rather than block shutdown on a broker that may be down.
  producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
  producer_->poll(0);
  topic_handle_.reset();
  producer_.reset();
}

Status KafkaProducer::BeginBatch() {
  if (producer_ != nullptr) {
    std::string why;
    if (producer_->fatal_error(why) != RdKafka::ERR_NO_ERROR) {
      std::fprintf(stderr, "%s: replacing the producer after a fatal error: %s\n", what_.c_str(), why.c_str());
      DestroyHandle();
    }
  }
  if (producer_ == nullptr) {
    if (Status s = CreateHandle(); !s.ok()) return s;
  }
  ++reports_.batch;
  reports_.produced = 0;
  reports_.pending = 0;
  reports_.first_error.clear();
  // Only errors seen while this batch is under way explain its failure.
  events_.clear_last_error();
  return Status::Ok();
}

std::string KafkaProducer::Explain(std::string_view what_happened) {
  std::string msg = what_ + ": " + std::string(what_happened);
  if (std::string last = events_.last_error(); !last.empty()) msg += " (last client error: " + last + ")";
  return msg;
}

Status KafkaProducer::Produce(std::optional<std::string_view> key, std::string_view value, Clock::time_point deadline,
                              const std::atomic<bool>* stopping) {
  void* opaque = reinterpret_cast<void*>(static_cast<uintptr_t>(reports_.batch));
  for (;;) {
    // RK_MSG_COPY: librdkafka copies the payload, so the caller's views may
    // die as soon as this returns (the payload pointer is not written to).
    RdKafka::ErrorCode e = producer_->produce(topic_handle_.get(), RdKafka::Topic::PARTITION_UA,
                                              RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                                              value.size(), key ? key->data() : nullptr, key ? key->size() : 0, opaque);
    if (e == RdKafka::ERR_NO_ERROR) {
      ++reports_.produced;
      ++reports_.pending;
      return Status::Ok();
    }
    if (e == RdKafka::ERR_MSG_SIZE_TOO_LARGE) {
      // Retrying cannot help; the caller has to deal with the record.
      return Status::InvalidArgument(what_ + ": a message of " + std::to_string(value.size()) +
                                     " bytes is larger than message.max.bytes");
    }
    if (e != RdKafka::ERR__QUEUE_FULL) return Status::Unavailable(Explain("produce: " + RdKafka::err2str(e)));
    // The local queue is full: serve delivery reports so it drains, then retry.
    if (stopping != nullptr && stopping->load()) return Status::Unavailable(Explain("stopping (queue full)"));
    if (Clock::now() >= deadline) {
      return Status::Unavailable(Explain("the local queue stayed full until the delivery timeout"));
    }
    producer_->poll(SliceMs(deadline));
  }
}

Status KafkaProducer::WaitForBatch(Clock::time_point deadline, const std::atomic<bool>* stopping) {
  auto start = Clock::now();
  while (reports_.pending > 0) {
    auto missing = [&] {
      return std::to_string(reports_.pending) + " of " + std::to_string(reports_.produced) +
             " messages not acknowledged";
    };
    if (stopping != nullptr && stopping->load()) return Status::Unavailable(Explain("stopping: " + missing()));
    if (Clock::now() >= deadline) {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      std::string msg = missing() + " after " + std::to_string(waited.count()) + " ms";
      if (!reports_.first_error.empty()) msg += "; first failure: " + reports_.first_error;
      return Status::Unavailable(Explain(msg));
    }
    // flush() rather than poll(): it sends at once, ignoring linger.ms.
    producer_->flush(SliceMs(deadline));
  }
  if (!reports_.first_error.empty()) {
    return Status::Unavailable(Explain("delivery failed: " + reports_.first_error));
  }
  return Status::Ok();
}

}  // namespace rapport::connectors::internal
