// Test support for scaling `rapport run` out and in: several instances of one
// application (one consumer group) on librdkafka's mock cluster, each a child
// process with its own state directory and log, and the checks that compare
// what they leave behind with a clean run.
//
// Builds on the daemon tests' fixture (tests/daemon/kafka_fixture.h): the
// producer that places events on known partitions, topic readers, Child and
// DumpProfiles. Everything here synchronises on what can be observed (a
// child's log lines, the group's committed offsets, a topic's contents), each
// with a deadline; nothing sleeps to let time pass.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kafka_fixture.h"
#include "temp_dir.h"

namespace rapport::testing {

// The log lines of `rapport run` (stderr) these tests rely on. Existing:
//   "assigned events[0,3]", "revoked events[0,3]", "lost events[0,3]",
//   "SIGTERM: finishing the batch and stopping", "stopped: N events (...".
// Of the changelog feature (issue 6), one line per partition on assignment:
//   "restored events[<p>]" ... "<n> records/s"  state taken from the changelog;
//   "... is current"                           local state needed nothing.
std::string RestoredLine(int32_t partition);  // "restored events[<p>]"
inline constexpr char kIsCurrent[] = "is current";

// Store traffic of the simulator (what `rapport generate` writes).
std::vector<std::string> StoreLines(uint64_t customers, int64_t days, uint64_t seed);

// A mock cluster with the topics of one or more applications: `events` and
// `actions` with `partitions` each, `events-dead`, and per application
// `<application_id>-changelog` with `partitions` (the mock has no
// CreateTopics, so the daemon cannot make it here).
struct ScaleCluster {
  ScaleCluster(int brokers, int partitions);
  void AddApplication(const std::string& application_id);

  std::unique_ptr<connectors::EmbeddedBroker> broker;
  std::string bootstrap;
  int partitions;
};

// Writes `<name>.yaml` in `dir` for the relationship pack, event clock, state
// in `<name>-state`, source `events`, sink `actions`; `extra` is appended
// verbatim (top-level keys such as "standby_replicas: 1\n").
std::string ScaleConfig(const TempDir& dir, const std::string& name, const std::string& bootstrap,
                        const std::string& application_id, const std::string& extra = "");

// One `rapport run` child: its config, log and state directory.
struct Instance {
  Instance(const TempDir& dir, const std::string& name, const std::string& bootstrap, const std::string& application_id,
           const std::string& extra = "");
  std::string Log() const;  // the log so far ("" before the child writes)
  // SIGTERM and wait; the exit code (0 after a clean stop).
  int Stop();
  // Starts it again after a stop: same config and state, a new log
  // `<name>-<n>.log`, so that lines of the earlier run do not count.
  void Restart();

  std::string name, config, log, state_dir;
  std::unique_ptr<Child> child;  // SIGKILLed when destroyed while running
  int runs = 1;
};

// How often `needle` occurs in `text`.
int Count(const std::string& text, const std::string& needle);
// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text, const std::string& needle);
// `text` up to the first `marker` (all of it when there is none).
std::string Before(const std::string& text, const std::string& marker);

// Polls `path` until `done(log text)` holds or the deadline passes.
bool AwaitLog(const std::string& path, const std::function<bool(const std::string&)>& done,
              std::chrono::seconds deadline = std::chrono::seconds(60));
bool AwaitLog(const std::string& path, const std::string& needle, int occurrences = 1,
              std::chrono::seconds deadline = std::chrono::seconds(60));

// The partitions an instance owns after the assigned/revoked/lost lines of `log`.
std::set<int32_t> OwnedPartitions(const std::string& log);
// The partitions of `wanted` with no RestoredLine in `log`.
std::set<int32_t> MissingRestores(const std::string& log, const std::set<int32_t>& wanted);
std::set<int32_t> AllPartitions(int partitions);

// The group's committed offset of each partition (-1 where none).
std::vector<int64_t> CommittedOffsets(const std::string& bootstrap, const std::string& group, const std::string& topic,
                                      int partitions);
// The source position (next offset to read) of each partition saved in a
// state directory (-1 where none, all -1 before the directory exists). Opens
// it read-only, as `rapport state` does, so it works while an instance runs.
std::vector<int64_t> StatePositions(const std::string& state_dir, int partitions);

// How far each partition of `events` has been processed and committed: the
// larger of the group's committed offset (none when `group` is "") and the
// positions in `state_dirs`.
// The group's offsets alone are not enough: they are a copy of the state's
// that may lag for good (a commit refused during a rebalance is not repeated
// when the partition comes back with nothing new to read).
std::vector<int64_t> ProcessedOffsets(const std::string& bootstrap, const std::string& group,
                                      const std::vector<std::string>& state_dirs, int partitions);
// Waits until `done(ProcessedOffsets(...))` holds; *last gets the offsets
// seen last, for the failure message.
bool AwaitProcessed(const std::string& bootstrap, const std::string& group, const std::vector<std::string>& state_dirs,
                    int partitions, const std::function<bool(const std::vector<int64_t>&)>& done,
                    std::vector<int64_t>* last = nullptr, std::chrono::seconds deadline = std::chrono::seconds(90));

// Per partition, how many of `lines` ProduceLines puts there: the end
// offsets of `events` once they are produced to an empty topic.
std::vector<int64_t> EndOffsets(const std::vector<std::string>& lines, int partitions);
// Waits until every event produced so far (`ends`) is processed.
bool AwaitProcessedEnds(const std::string& bootstrap, const std::string& group,
                        const std::vector<std::string>& state_dirs, const std::vector<int64_t>& ends,
                        std::vector<int64_t>* last = nullptr, std::chrono::seconds deadline = std::chrono::seconds(90));
// "3 -1 17": offsets for a message.
std::string Join(const std::vector<int64_t>& offsets);

// Low and high watermark of each partition of `topic`.
std::vector<std::pair<int64_t, int64_t>> Watermarks(const std::string& bootstrap, const std::string& topic,
                                                    int partitions);
// Every message of `topic` up to its high watermarks (read when no one
// writes to it any more). Fails the test if the mock dropped old messages.
std::vector<Message> ReadWholeTopic(const std::string& bootstrap, const std::string& topic, int partitions);
// Reads `actions` until it holds every id of `expected` (or the deadline).
std::vector<Message> AwaitActions(const std::string& bootstrap, int partitions, const std::set<std::string>& expected,
                                  std::chrono::seconds deadline = std::chrono::seconds(30));

// The actions topic against the reference: lost and extra action_ids (both
// must be zero) and duplicates (allowed: a redelivery has the same id).
struct ActionTally {
  size_t expected = 0, messages = 0, distinct = 0, duplicates = 0;
  std::vector<std::string> lost, extra;
  std::string Summary() const;
};
ActionTally TallyActions(const std::set<std::string>& expected, const std::vector<Message>& messages);

// "" when equal; otherwise how many customers are missing, extra and
// different, with a few examples (a readable failure for thousands of profiles).
std::string ProfileDifference(const std::map<std::string, std::string>& expected,
                              const std::map<std::string, std::string>& got);

// DumpProfiles of `state_dir`, only the customers of `partitions` (of
// `partition_count`): what an instance owns, without stale copies of others.
std::map<std::string, std::string> ProfilesOf(const std::string& state_dir, const std::set<int32_t>& partitions,
                                              int partition_count);

// The reference of a run over `lines`: each partition replayed on its own
// (the daemon keeps one clock per partition), its profiles and action_ids.
struct Reference {
  std::map<std::string, std::string> profiles;
  std::set<std::string> action_ids;
};
Reference ReferenceRun(const std::vector<std::string>& lines, int partitions, const TempDir& dir);

}  // namespace rapport::testing
