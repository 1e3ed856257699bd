// The Kafka measurements of the benchmark harness, run in-process on
// librdkafka's mock cluster (rapport/connectors/embedded_broker.h) with the
// daemon opened through Daemon::Open/Run exactly as `rapport run` would run
// it from a config (the config is built in code, as `rapport demo` does).
//
// Throughput (figure b): a topic is pre-filled, then two readers drain it in
// the same run: a bare librdkafka consumer that only counts messages (the
// ceiling), and the daemon, event clock, Kafka sink. Each is timed from its
// consumer group assigning it the partitions to the last message counted
// (ceiling) or to the last action acknowledged by the sink (daemon: outbox
// drained), so the group join, which the mock makes slow, is left out of both.
//
// Latency (figure c): a producer offers events at a fixed rate, each stamped
// with its produce time as the Kafka message timestamp; the daemon runs in
// wall-clock mode with a Kafka sink; a reader of the actions topic matches
// each post-purchase-thank-you action (fired on the purchase itself; its
// trigger carries the event's event_id) to its event and takes the action
// message's CreateTime, set by the daemon's producer, minus the event's.
// Purchases are sent as the first purchase of a new customer so that every
// one of them fires and gives a sample.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "rapport/engine/status.h"

namespace rapport::bench {

struct KafkaThroughputOptions {
  std::string events_path;  // JSON lines; a prefix that fits the mock is used
  std::string rules_dir;
  std::string scratch_dir;  // state directories go below it
  int partitions = 32;
  // librdkafka's mock keeps about 5 MiB per partition and drops older data.
  int64_t max_bytes_per_partition = 3 << 20;
  // Each figure is the best of these: the ceiling moves most between runs
  // (428,000 to 758,000 events/s in runs of one session).
  int runs = 3;
};

// The changelog records of the last run written again without the daemon:
// what the writes alone cost (see MeasureContractWrites in bench_kafka.cpp).
struct ContractWrites {
  uint64_t records = 0;
  double rocksdb_cpu_seconds = 0;
  double changelog_cpu_seconds = 0;
};

struct KafkaThroughput {
  uint64_t events = 0;      // messages in the topic
  std::string prefix_path;  // those messages as JSON lines, in topic order (below scratch_dir)
  uint64_t actions = 0;     // delivered by the daemon (last run)
  double daemon_events_per_s = 0;
  double ceiling_events_per_s = 0;
  // Each run's figures, in run order: the two bests above may come from
  // different runs, and the ceiling moves most.
  struct Run {
    double ceiling_events_per_s = 0;
    double ceiling_cpu_seconds = 0;
    double daemon_events_per_s = 0;
  };
  std::vector<Run> runs;
  // CPU seconds of the whole process (every thread, the in-process mock
  // broker's included) over each best run's timed span.
  double daemon_cpu_seconds = 0;
  double ceiling_cpu_seconds = 0;
  uint64_t last_run_commits = 0;
  ContractWrites contract_writes;  // of the last run's changelog, in as many groups as it committed
  // A fresh instance taking the first run's partitions over from its
  // changelog: records read, and the seconds the restores took in all.
  uint64_t restore_records = 0;
  double restore_seconds = 0;
};

Result<KafkaThroughput> MeasureKafkaThroughput(const KafkaThroughputOptions& options);

struct LatencyOptions {
  std::string events_path;  // the event mix is taken from here, restamped
  std::string rules_dir;    // must hold post-purchase-thank-you
  std::string scratch_dir;
  double rate = 10000;  // events per second offered
  // Offered first and not measured: the consumer's first fetches, the
  // changelog producer's first connection.
  double warmup_seconds = 1;
  double seconds = 10;  // measured, after the warm-up
  int partitions = 32;
  std::chrono::milliseconds commit_interval{1000};
  // Measure the floor instead of the daemon: a bare consumer that answers
  // each purchase at once (no state, no commit) on the same broker.
  bool bare_echo = false;
};

struct LatencyResult {
  double achieved_rate = 0;  // events per second the producer managed
  uint64_t produced = 0;
  uint64_t expected = 0;  // purchases sent
  uint64_t samples = 0;   // actions matched
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
};

Result<LatencyResult> MeasureLatency(const LatencyOptions& options);

}  // namespace rapport::bench
