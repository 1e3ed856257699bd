#include "rapport/connectors/embedded_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace rapport::connectors {

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(int brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The owner handle never talks to anything; keep its logs quiet.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  // The mock brokers' sockets take their options from this handle. With
  // Nagle's algorithm on, every response waits for the client's delayed ACK:
  // 44 ms per produce round trip on loopback, where a Kafka broker (which
  // sets TCP_NODELAY) answers in well under a millisecond.
  rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof err);
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (owner == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::IoError(std::string("embedded broker: ") + err);
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(owner, brokers);
  if (cluster == nullptr) {
    rd_kafka_destroy(owner);
    return Status::IoError("embedded broker: could not start librdkafka's mock cluster");
  }
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->owner_ = owner;
  broker->cluster_ = cluster;
  broker->bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster);
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (owner_ != nullptr) rd_kafka_destroy(owner_);
}

Status EmbeddedBroker::CreateTopic(const std::string& topic, int partitions, int replication_factor) {
  rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, replication_factor);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::IoError("embedded broker: create topic " + topic + ": " + rd_kafka_err2str(e));
  }
  return Status::Ok();
}

Status EmbeddedBroker::SetBrokerDown(int broker_id) {
  rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_down(cluster_, broker_id);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::InvalidArgument(rd_kafka_err2str(e));
  return Status::Ok();
}

Status EmbeddedBroker::SetBrokerUp(int broker_id) {
  rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_up(cluster_, broker_id);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::InvalidArgument(rd_kafka_err2str(e));
  return Status::Ok();
}

}  // namespace rapport::connectors
