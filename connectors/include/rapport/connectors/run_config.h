// RunConfig: the one YAML file that `rapport run --config FILE` reads.
//
// deploy/rapport.yaml is the documented example. Shape:
//
//   rules: rules/packs/relationship      # file or directory; relative to the config file
//   state_dir: /var/lib/rapport          # relative to the config file
//   application_id: rapport              # consumer group id
//   clock: wall                          # wall | event
//   commit_interval: 1s                  # duration; also commit_max_events
//   commit_max_events: 50000
//   cache_capacity: 1000000              # profiles kept in memory
//   standby_replicas: 1                  # Kafka: warm copies of partitions owned elsewhere
//   coupon_secret: ${RAPPORT_COUPON_SECRET}
//   kafka:                               # librdkafka properties for every client
//     bootstrap.servers: localhost:9092
//     security.protocol: SASL_SSL
//     sasl.password: ${KAFKA_PASSWORD}
//   source:
//     kafka: { topic: events, properties: { ... } }   # or
//     file: { path: events.jsonl }                    # "-" for stdin
//   sinks:
//     - kafka: { topic: actions, properties: { ... } }
//     - file: { path: actions.jsonl }
//     - webhook: { url: http://crm/hook, timeout: 5s, retry_for: 60s, headers: {...} }
//   dead_letter:
//     kafka: { topic: events-dead } | file: { path: dead.jsonl }
//
// Every string may hold ${VAR} or ${VAR:-default}, taken from the
// environment when the file is loaded; an unset variable without a default is
// an error. Unknown keys, wrong types, bad durations, a missing source, no
// sink and a Kafka part without bootstrap.servers are errors. Load() reports
// every error, each as "file:line:col: message", and then refuses the file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rapport/connectors/sinks.h"
#include "rapport/engine/status.h"

namespace rapport::connectors {

enum class ClockMode { kWall, kEvent };

struct KafkaSourceConfig {
  std::string topic;
  KafkaProperties properties;  // the top-level `kafka:` merged with the source's own
};
struct FileSourceConfig {
  std::string path;  // "-" for stdin; otherwise resolved against the config's directory
};

struct SinkConfig {
  enum class Kind { kKafka, kFile, kWebhook } kind = Kind::kFile;
  KafkaOutputOptions kafka;  // properties merged like the source's
  FileOutputOptions file;
  WebhookOutputOptions webhook;
};

struct DeadLetterConfig {
  enum class Kind { kNone, kKafka, kFile } kind = Kind::kNone;  // kNone: no `dead_letter:`
  std::string topic_or_path;   // a file path is resolved like the others; "-" is stderr
  KafkaProperties properties;  // kKafka: merged like the source's
};

struct RunConfig {
  std::string path;  // of the config file itself, as given (used in error messages)
  // Relative paths in the file are resolved against its directory (made
  // absolute by LoadRunConfig); absolute ones are kept.
  std::string rules;
  std::string state_dir;
  std::string application_id = "rapport";
  ClockMode clock = ClockMode::kWall;
  std::chrono::milliseconds commit_interval{1000};
  uint64_t commit_max_events = 50000;
  size_t cache_capacity = 1000000;
  // Kafka source only: above 0, keep a warm copy of every partition owned
  // elsewhere from its changelog, so each partition has at least N copies
  // when there are more than N instances (docs/scaling.md).
  uint32_t standby_replicas = 0;
  std::string coupon_secret;  // empty when not set
  // Never holds group.id, enable.auto.commit or enable.auto.offset.store:
  // the loader refuses them (the daemon owns them).
  std::optional<KafkaSourceConfig> kafka_source;  // exactly one of the two
  std::optional<FileSourceConfig> file_source;
  std::vector<SinkConfig> sinks;
  DeadLetterConfig dead_letter;
};

// Reads and checks the file. `environment` looks up ${VAR}s (getenv in the
// CLI, a map in tests); it returns nullopt for an unset variable.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;
Result<RunConfig> LoadRunConfig(const std::string& path, const EnvironmentLookup& environment);
// The same, from text (for tests); `name` is used in error messages and
// relative paths resolve against `base_dir`.
Result<RunConfig> ParseRunConfig(const std::string& text, const std::string& name, const std::string& base_dir,
                                 const EnvironmentLookup& environment);
// The process environment, for LoadRunConfig.
std::optional<std::string> ProcessEnvironment(const std::string& name);

}  // namespace rapport::connectors
