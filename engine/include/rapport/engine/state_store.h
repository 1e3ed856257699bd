// StateStore: Rapport's state in RocksDB, on disk.
//
// Column families (docs/state-format.md has the byte layout):
//   default   meta: symbols, per-partition clock and source position
//   profiles  [partition BE32][customer id]            -> encoded Profile
//   outbox    [partition BE32][sequence BE64] -> [varint n][customer id, n bytes][held_out 0|1][action JSON]
//   default   also: psym/[partition BE32][kind][name] -> symbol id, and
//             changelog/[partition BE32] -> the changelog checkpoint (local only)
// Every key starts with the partition (meta keys end with it), so one
// partition's state is one key range that can be restored or dropped on its
// own, and its symbols are its own: a partition's profiles mean the same on
// any instance that restores them. Timers have no family of their own: each
// is the due time in its campaign's entry of the profile, and a processor
// finds them by reading its partition's profiles when it opens.
//
// Writes go through a CommitBatch and land atomically: a commit group's
// profiles, clock, source position and fired actions (the outbox) are one
// RocksDB WriteBatch. A dispatcher reads the outbox and deletes records once
// a sink has acknowledged them.
// Symbols (small ids for event types, campaigns and aggregates, per
// partition) are written as soon as they are created; an unused symbol is
// harmless.
//
// Replication: a StateChangeListener (the Kafka changelog) sees every change
// of a partition before it is written locally; a commit does not land
// locally until the listener has it durably, so the local state is never
// ahead of its replica. ApplyChanges() is the other direction: a restore.
//
// Thread-safety: one StateStore may be shared by processors of different
// partitions; RocksDB reads and writes are thread-safe, and the symbol table
// takes a lock. A StateStore holds the RocksDB lock on its directory: a
// second Open of the same directory fails with an IoError that says so
// (a read-only Open takes no lock and does not conflict).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rapport/engine/status.h"
#include "rapport/engine/time.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace rapport {

class TableFileSet;  // state_store.cpp

enum class SymbolKind : char { kEventType = 't', kCampaign = 'c', kAggregate = 'a' };

struct StateStoreOptions {
  size_t block_cache_bytes = 64 << 20;
  // Bound of all memtables together; the fullest is flushed when reached.
  size_t memtable_bytes = 128 << 20;
  // fsync every commit. Off for replays into a scratch directory.
  bool sync = false;
  // Opens an existing store for reading only (`rapport state`): nothing is
  // written, the directory is not created, and RocksDB's lock is not taken,
  // so a store a running rapport holds can be inspected. What is read is the
  // state as of Open; writes (Commit, Symbol of a new name) fail.
  bool read_only = false;
  // For filling a new, empty store in one go (a replay into a fresh
  // directory): writes skip the write-ahead log, and a commit's profile
  // writes that come in key order go into a table file linked into the
  // store instead of through the memtable. Nothing is durable until Flush() (or
  // a clean close); a crash before it leaves a directory to discard. No
  // background compaction runs: a commit merges level 0 into level 1 when it
  // grows deep, and the loader calls Compact() at the end.
  bool bulk_load = false;
};

void AppendProfileKey(std::string* key, uint32_t partition, std::string_view customer);
class StateStore;

// The column families as named in a replicated change.
enum class StateFamily : char { kMeta = 'm', kProfiles = 'p', kOutbox = 'o' };

// One write: a put of `value`, or a delete. Keys are the family's own keys
// (with the partition in them), so a change applies as is on any instance.
struct StateChange {
  StateFamily family;
  std::string_view key;
  std::string_view value;
  bool deleted = false;
};

// Sees a partition's changes before they are written locally (a StateStore
// calls it on the thread that writes).
class StateChangeListener {
 public:
  virtual ~StateChangeListener() = default;
  // `position` is the source position a commit group reflects ("" for writes
  // outside a commit: new symbols, delivered outbox records). With `wait`
  // the changes must be durable in the replica when this returns (an error
  // fails the write and nothing lands locally); without, they may be sent
  // later. A returned offset >= 0 is the replica's end for the partition,
  // stored with the write as its checkpoint (GetChangelogOffset).
  virtual Result<int64_t> OnChanges(uint32_t partition, std::string_view position,
                                    const std::vector<StateChange>& changes, bool wait) = 0;
  // Waits until every change handed over so far is durable in the replica.
  virtual Status Sync() = 0;
  // The replica's end for the partition after Sync (-1: none written).
  virtual int64_t EndOffset(uint32_t partition) = 0;
};

// The writes of one commit group. Not thread-safe; one per processor.
class CommitBatch {
 public:
  explicit CommitBatch(StateStore& store);
  ~CommitBatch();
  CommitBatch(const CommitBatch&) = delete;
  CommitBatch& operator=(const CommitBatch&) = delete;

  void PutProfile(uint32_t partition, std::string_view customer, std::string_view encoded);
  void SetClock(uint32_t partition, EventTime clock);
  void SetPosition(uint32_t partition, std::string_view position);
  void PutOutbox(uint32_t partition, uint64_t sequence, std::string_view customer, bool held_out,
                 std::string_view action_json);
  size_t Count() const;
  void Clear();

 private:
  friend class StateStore;
  enum Family { kMetaFamily, kProfilesFamily, kOutboxFamily, kFamilies };
  // Tracks whether each family's keys came in increasing order, in which
  // case StateStore::Commit need not sort a copy of the batch.
  void NoteKey(Family family, std::string_view key);
  // A bulk load's put, into the family's table file; false when it must go
  // into the batch instead.
  bool PutTable(rocksdb::ColumnFamilyHandle* family, std::string_view key, std::string_view value);

  StateStore& store_;
  std::unique_ptr<rocksdb::WriteBatch> batch_;
  bool in_order_ = true;
  std::string last_keys_[kFamilies];
  std::string key_, value_;
  std::string position_;       // the last SetPosition's, for the listener
  int64_t partition_ = -1;     // the batch's partition (a batch holds one)
  std::unique_ptr<TableFileSet> tables_;  // a bulk load's writes in key order
  size_t table_writes_ = 0;
};

class StateStore {
 public:
  // Opens or creates the store in `dir`.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& dir, const StateStoreOptions& options);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Reads a profile's encoded bytes. *found is false (and ok) when absent.
  // Waits first for the commit groups taken and not yet written (see
  // TakeCommitGroup), unless the caller knows the profile is in none of
  // them: a processor whose latest commit did not evict the customer holds
  // that customer's latest profile in its cache, or it is in the store.
  enum class ProfileRead { kAfterTakenGroups, kNow };
  Status GetProfile(uint32_t partition, std::string_view customer, std::string* value, bool* found,
                    ProfileRead when = ProfileRead::kAfterTakenGroups);
  // Calls fn(customer, encoded) for every profile of the partition, in key order.
  Status ForEachProfile(uint32_t partition, const std::function<void(std::string_view, std::string_view)>& fn);
  // The clock and source position saved by the last commit (nullopt/"" when none).
  Result<std::optional<EventTime>> GetClock(uint32_t partition);
  Result<std::string> GetPosition(uint32_t partition);

  // One outbox record as stored.
  struct OutboxEntry {
    uint32_t partition;
    uint64_t sequence;
    std::string_view customer;
    bool held_out;
    std::string_view action_json;
  };
  // The sequence the partition's next outbox record gets: one past the
  // largest stored (0 when the partition's outbox is empty).
  Result<uint64_t> NextOutboxSequence(uint32_t partition);
  // Whether an outbox scan goes on into the partitions after its first.
  enum class OutboxScope { kOnward, kPartition };
  // Calls fn for up to `limit` outbox records in key order, starting at the
  // first at or after (partition, sequence); the views live until fn returns.
  // Returns how many were visited. Delivered records leave delete markers
  // that a scan steps over one by one until they are compacted away, so a
  // reader that knows where a partition's live records start should scan
  // each partition from there (kPartition).
  Result<size_t> ScanOutbox(uint32_t partition, uint64_t sequence, size_t limit, OutboxScope scope,
                            const std::function<void(const OutboxEntry&)>& fn);
  // Deletes delivered records in one write.
  Status DeleteOutbox(const std::vector<std::pair<uint32_t, uint64_t>>& records);
  // Outbox records waiting, approximately.
  uint64_t ApproximateOutboxCount();

  // The id of `name` of `kind` in `partition`, created (and persisted) on
  // first use.
  Result<uint32_t> Symbol(uint32_t partition, SymbolKind kind, std::string_view name);
  // The name of a symbol of `partition`, or "" when unknown.
  std::string SymbolName(uint32_t partition, SymbolKind kind, uint32_t id) const;

  // Writes the batch atomically and clears it; the listener sees it first.
  Status Commit(CommitBatch& batch);
  // A commit group: after BeginCommitGroup(), Commit() holds each batch
  // instead of writing it; WriteCommitGroup() hands them all to the listener
  // without waiting, waits for it once, then writes every batch with its
  // checkpoint. So a daemon with many partitions pays one replica round trip
  // per commit cycle, not one per partition. Without a listener Commit()
  // writes at once and the group is empty.
  //
  // TakeCommitGroup() ends the grouping and returns the held batches, so that
  // WriteCommitGroup() can run on another thread while the taker goes on
  // building the next group; groups must be written in the order taken, one
  // at a time. Until a taken group is written, reads of profiles, clocks,
  // positions and checkpoints wait for it: a processor may evict a
  // profile from its cache once committed, and must read it back as
  // committed.
  class CommitGroup {
   public:
    CommitGroup();
    ~CommitGroup();
    CommitGroup(CommitGroup&&) noexcept;
    CommitGroup& operator=(CommitGroup&&) noexcept;
    bool empty() const { return batches_.empty(); }

   private:
    friend class StateStore;
    struct Held {
      uint32_t partition;
      std::string position;
      std::unique_ptr<rocksdb::WriteBatch> batch;
    };
    std::vector<Held> batches_;
  };
  void BeginCommitGroup();
  CommitGroup TakeCommitGroup();
  Status WriteCommitGroup(CommitGroup group);
  Status EndCommitGroup() { return WriteCommitGroup(TakeCommitGroup()); }

  // Replication. The listener is set once, before any write; may be null.
  void SetChangeListener(StateChangeListener* listener) { listener_ = listener; }
  // The partition's changelog checkpoint: the replica offset up to which the
  // local state is known to match it (nullopt: never replicated here).
  Result<std::optional<int64_t>> GetChangelogOffset(uint32_t partition);
  Status SetChangelogOffset(uint32_t partition, int64_t offset);
  // Writes changes read from the replica (a restore), with the checkpoint,
  // atomically; the listener is not called. Symbols among them take effect.
  Status ApplyChanges(uint32_t partition, const std::vector<StateChange>& changes, int64_t changelog_offset);
  // Deletes everything of the partition: profiles, outbox, clock,
  // position, symbols and checkpoint (before a restore from scratch).
  Status DropPartition(uint32_t partition);

  // Approximate bytes of the partition's profiles on disk (SST + memtable).
  uint64_t ApproximateProfileBytes();
  // Approximate bytes of each column family: its SST files and the data in
  // its memtables.
  struct FamilyBytes {
    uint64_t meta = 0, profiles = 0, outbox = 0;
  };
  FamilyBytes ApproximateBytes();
  // The partitions that hold anything: a profile, an outbox record,
  // a clock or a position; ascending. Costs a few seeks per partition, not a
  // scan.
  Result<std::vector<uint32_t>> Partitions();
  // Flushes memtables to SST files (for size measurements and tests, and
  // to make a bulk load durable).
  Status Flush();
  // Rewrites every column family into its last level, where it is stored
  // most compactly (the end of a bulk load).
  Status Compact();
  const std::string& dir() const { return dir_; }

 private:
  friend class CommitBatch;
  StateStore() = default;
  Status LoadSymbols();

  std::string dir_;
  StateStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, profiles, outbox
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* profiles_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;

  Status Replicate(uint32_t partition, std::string_view position, const std::vector<StateChange>& changes,
                   bool wait, rocksdb::WriteBatch* batch);
  void ForgetSymbols(uint32_t partition);
  rocksdb::ColumnFamilyHandle* Family(StateFamily family) const;
  void RememberSymbol(std::string_view key_after_prefix, uint32_t id);

  // Blocks while a taken commit group is not yet written.
  void WaitForTakenGroups();
  // A bulk load's: links a commit's table files, then merges level 0 into
  // level 1 when it has grown deep; under bulk_mu_.
  Status LinkTables(CommitBatch& batch);

  StateChangeListener* listener_ = nullptr;
  bool grouping_ = false;
  CommitGroup held_;
  std::atomic<int> taken_groups_{0};
  std::atomic<uint64_t> ingest_files_{0};  // names the bulk load's table files
  std::mutex bulk_mu_;                      // LinkTables, one at a time
  std::mutex taken_mu_;
  std::condition_variable taken_cv_;
  mutable std::mutex symbols_mu_;
  // [partition BE32][kind][name] -> id
  std::unordered_map<std::string, uint32_t> symbols_;
  // partition -> kind -> id -> name
  std::unordered_map<uint32_t, std::unordered_map<char, std::vector<std::string>>> names_;
};

}  // namespace rapport
