// EmbeddedBroker: librdkafka's mock cluster (rdkafka_mock.h) run in-process.
//
// It speaks the Kafka protocol on loopback ports, supports consumer groups,
// idempotent producers and taking brokers down, so `rapport demo` and the
// tests use the real Kafka client paths with nothing to install. Limits of
// librdkafka 2.0.2's mock: about 5 MiB or 100k message sets per partition
// (older ones are dropped), no compaction, no admin API (topics are made with
// CreateTopic), a first group join that takes about 3 s.
//
// Lifecycle: the cluster lives until the EmbeddedBroker is destroyed; clients
// must be closed before that. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "rapport/engine/status.h"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace rapport::connectors {

class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> Start(int brokers);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:port,..." for bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstraps_; }
  Status CreateTopic(const std::string& topic, int partitions, int replication_factor = 1);
  // Takes a broker (1-based id) off the network and brings it back.
  Status SetBrokerDown(int broker_id);
  Status SetBrokerUp(int broker_id);

 private:
  EmbeddedBroker() = default;
  rd_kafka_s* owner_ = nullptr;  // the handle the cluster hangs off
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstraps_;
};

}  // namespace rapport::connectors
