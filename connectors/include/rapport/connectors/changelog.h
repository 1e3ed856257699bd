// Changelog: a partition's state, replicated to a Kafka topic and restored
// from it, so that state follows a partition from instance to instance
// (docs/scaling.md).
//
// Topic `<application_id>-changelog`, compacted; changelog partition =
// input partition. One record per state write of the partition:
//   key     [family: m|p|o][the family's key, partition included]; records
//           of family t (the timers family of earlier builds) are skipped
//           on restore
//   value   "=" + the value for a put; empty (a tombstone) for a delete
//   header  rapport.position: the input position the commit reflects (the
//           next input offset, decimal); absent for writes outside a commit
//           (new symbols, tombstones of delivered outbox records)
//
// Write order of a commit: the changelog records, flushed (acks=all,
// idempotent producer); then the local RocksDB write with the changelog
// end offset as its checkpoint; then the consumer group's offset. So the
// group offset never passes the changelog, and the local state is never
// ahead of it.
//
// Restore: records whose position is beyond the group's committed offset for
// the input partition belong to a commit its owner did not finish (it died
// between the changelog and the offset commit). They are skipped: the new
// owner reads the input again from the committed offset and makes the same
// changes again, and its later records supersede them (as Quix Streams
// does). Memory is bounded by one apply chunk (4,096 records or 4 MiB).
//
// Thread-safety: OnChanges may be called from the processing thread and
// from the outbox dispatcher at once; Restore only from the processing one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "rapport/connectors/sinks.h"
#include "rapport/engine/state_store.h"
#include "rapport/engine/status.h"

namespace rapport::connectors {

struct ChangelogOptions {
  std::string topic;
  KafkaProperties properties;  // bootstrap.servers, security, ...: the top-level `kafka:`
  std::function<void(const std::string&)> log;
};

struct RestoreResult {
  bool restored = false;  // false: the local state was current
  int64_t from = 0, to = 0;  // changelog offsets read
  uint64_t records = 0, skipped = 0;
  double seconds = 0;
};

class Changelog final : public StateChangeListener {
 public:
  static Result<std::unique_ptr<Changelog>> Open(const ChangelogOptions& options);
  ~Changelog() override;
  Changelog(const Changelog&) = delete;
  Changelog& operator=(const Changelog&) = delete;

  // Makes sure the topic exists with at least `partitions` partitions,
  // creating it (compacted) when the cluster allows.
  Status EnsureTopic(int32_t partitions);

  Result<int64_t> OnChanges(uint32_t partition, std::string_view position, const std::vector<StateChange>& changes,
                            bool wait) override;
  Status Sync() override;
  int64_t EndOffset(uint32_t partition) override;
  // Sync, then EndOffset.
  Result<int64_t> Flush(uint32_t partition);

  // Brings the partition's local state to the changelog's end: nothing when
  // the local checkpoint is the end; the records after it when it is
  // behind; all of them, after dropping the local partition, when there is
  // no checkpoint or it is out of the log's range. `committed_input` is the
  // group's committed offset of the input partition (-1: none).
  Result<RestoreResult> Restore(StateStore& store, uint32_t partition, int64_t committed_input,
                                const std::string& name);

  class Impl;

 private:
  explicit Changelog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Warm standbys (`standby_replicas` > 0): the instance follows the changelog
// of every partition it does not own and applies the records to its local
// state as they come (a record only once the owner has committed its input
// offset, the restore rule), so that when a partition is assigned to it the
// restore reads only the last few records. So each partition has a warm
// copy on every other instance: at least N when there are more than N
// instances. Placing exactly N copies needs the group's membership, which
// librdkafka's consumer does not expose (Kafka Streams does it in its own
// assignor); following all is the deterministic choice.
class StandbyReplicas {
 public:
  // committed_input(p): the main group's committed offset of input
  // partition p (-1: none); called from the standby thread.
  static Result<std::unique_ptr<StandbyReplicas>> Start(StateStore& store, const ChangelogOptions& options,
                                                        const std::string& application_id, int32_t partitions,
                                                        std::function<int64_t(int32_t)> committed_input);
  ~StandbyReplicas();  // leaves the groups, stops the thread
  StandbyReplicas(const StandbyReplicas&) = delete;
  StandbyReplicas& operator=(const StandbyReplicas&) = delete;

  // The partition is now owned here: stop applying it (returns once an
  // apply under way has finished). Deactivate: it is not owned any more;
  // follow it again from the local checkpoint.
  void Activate(uint32_t partition);
  void Deactivate(uint32_t partition);

  class Impl;

 private:
  explicit StandbyReplicas(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rapport::connectors
