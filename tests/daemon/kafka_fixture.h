// Test support for the daemon: an embedded broker with topics, a producer
// that places each event on a chosen partition, a reader of a whole topic,
// `rapport run` as a child process, and a canonical dump of stored profiles.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "rapport/connectors/embedded_broker.h"
#include "temp_dir.h"

namespace rapport::testing {

// One Kafka message as read back.
struct Message {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key, value;
};

// The partition an event of `customer` goes to (the tests place events
// themselves, so the expected per-partition streams are known).
int32_t PartitionOf(const std::string& customer, int partitions);
// The customer_id of an event line, "" when it has none (malformed lines).
std::string CustomerOf(const std::string& line);

// How many of `lines` the event decoder rejects.
size_t CountRejected(const std::vector<std::string>& lines);

// Produces `lines` to `topic`, each on PartitionOf(customer) (malformed
// lines: partition 0), and waits until all are acknowledged.
void ProduceLines(const std::string& bootstrap, const std::string& topic, const std::vector<std::string>& lines,
                  int partitions);

// Reads `topic` from the beginning until `done(messages)` holds or the
// deadline passes; returns what it read.
std::vector<Message> ReadTopic(const std::string& bootstrap, const std::string& topic, int partitions,
                               const std::function<bool(const std::vector<Message>&)>& done,
                               std::chrono::seconds deadline = std::chrono::seconds(60));
// The group's committed offsets summed over partitions (-1 when none).
int64_t CommittedTotal(const std::string& bootstrap, const std::string& group, const std::string& topic,
                       int partitions);

// The distinct action_id values of action JSON lines.
std::set<std::string> ActionIds(const std::vector<std::string>& action_lines);
std::set<std::string> ActionIds(const std::vector<Message>& messages);

// `rapport run --config path` as a child; stderr goes to log_path.
class Child {
 public:
  Child(const std::string& config_path, const std::string& log_path);
  ~Child();  // SIGKILLs it if still running
  void Kill(int signal);
  // Waits for the exit; returns the exit code (128+signal when killed).
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Writes `<name>.yaml` in `dir`: a `rapport run` config for the standard
// pack against the embedded broker's `events` -> `actions` (dead letters to
// `events-dead`), state in `<name>-state`, event clock, small commits and
// rebalances at test speed; `extra` is appended (top-level keys). Its path.
std::string KafkaRunConfig(const TempDir& dir, const std::string& name, const std::string& bootstrap,
                           const std::string& application_id, const std::string& coupon_secret,
                           const std::string& extra = "");

// customer -> canonical text of the profile, over every partition in `dir`.
std::map<std::string, std::string> DumpProfiles(const std::string& state_dir, int partitions);

// The action lines of a replay of each partition's events on its own, as the
// daemon processes them (one clock per partition).
std::vector<std::string> ReplayPerPartition(const std::string& rules, const std::vector<std::string>& lines,
                                            int partitions, const std::string& work_dir,
                                            const std::string& coupon_secret,
                                            std::map<std::string, std::string>* profiles);

}  // namespace rapport::testing
