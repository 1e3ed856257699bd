// Daemon: `rapport run`, the engine as a long-running service.
//
// Data path: source (a Kafka consumer group, or a file/stdin) -> decode ->
// one Processor per input partition -> RocksDB commit (state, timers, clock,
// source position and fired actions in one WriteBatch) -> OutboxDispatcher
// -> sinks. Rejected events go to the dead-letter output, which is flushed
// before the position that passes them is committed.
//
// Kafka: the consumer joins group `application_id` with cooperative-sticky
// assignment. On assignment each partition gets its own Processor and the
// consumer starts at the offset stored in RocksDB for it (when there is none:
// the group's committed offset, else auto.offset.reset, default earliest).
// On revocation the partition's in-flight batch is committed and its
// Processor closed. Offsets committed to the group only mirror RocksDB, so
// lag tools work; RocksDB is the truth. Messages are consumed one at a time
// (librdkafka 2.0.2's batch APIs can lose or repeat messages under a
// concurrent rebalance) with queued.min.messages raised so that the fetcher
// never backs off for a second on a full queue.
//
// Clock: in event mode each partition's clock is its largest event time. In
// wall mode a partition that has had no event for a commit interval also
// advances to the wall clock, so inactivity timers fire without traffic.
//
// Threads: Run() runs the source and processors on the calling thread; the
// dispatcher has its own. RequestStop() and RequestReload() may be called
// from any thread (the CLI calls them from its signal thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "rapport/connectors/run_config.h"
#include "rapport/engine/processor.h"
#include "rapport/engine/status.h"
#include "rapport/rules/rule_set.h"

namespace rapport::connectors {

// Loads the rule set afresh (for SIGHUP); an error keeps the running set.
using RuleLoader = std::function<Result<std::shared_ptr<const rules::RuleSet>>()>;
// Where log lines go (stderr in the CLI).
using LogFunction = std::function<void(const std::string& line)>;

struct DaemonOptions {
  RuleLoader reload_rules;
  LogFunction log;
  // The wall clock, injected so tests can drive wall-mode time.
  std::function<EventTime()> wall_clock;
  // Sees every action as it fires (the demo prints them); may be null. Called
  // on the Run() thread.
  ActionSink* observer = nullptr;
  std::chrono::milliseconds shutdown_drain_timeout{10000};
};

struct DaemonStats {
  uint64_t events = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t commits = 0;
  uint64_t actions = 0;    // fired and committed to the outbox
  uint64_t delivered = 0;  // outbox records acknowledged by every sink
  uint64_t delivery_failures = 0;
  uint64_t rebalances = 0;
  uint64_t reloads = 0;
  double busy_seconds = 0;       // from the first event to the last commit

  std::map<std::string, CampaignCounters> campaigns;
  std::map<int32_t, int64_t> positions;  // partition -> next offset committed
};

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> Open(const RunConfig& config, std::shared_ptr<const rules::RuleSet> rules,
                                              DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until RequestStop() (or the end of a file source), then commits,
  // flushes the outbox (bounded by shutdown_drain_timeout; what is left
  // stays in the outbox for the next start) and leaves the group.
  Status Run();
  void RequestStop();
  void RequestReload();
  // Stops once every partition in `end_offsets` has committed at least that
  // offset (Kafka). The demo uses it to end when the store's traffic is in.
  void StopWhenConsumed(std::map<int32_t, int64_t> end_offsets);

  DaemonStats stats() const;

  class Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rapport::connectors
