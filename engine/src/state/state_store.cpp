#include "rapport/engine/state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/metadata.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdarg>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "rapport/engine/coding.h"

namespace rapport {
namespace {

// Before symbols were per partition they were one table under "sym/"; Open
// copies such a table to every partition (see LoadSymbols).
constexpr char kLegacySymbolPrefix[] = "sym/";
constexpr char kSymbolPrefix[] = "psym/";
constexpr char kChangelogPrefix[] = "changelog/";
constexpr char kClockPrefix[] = "clock/";
constexpr char kPositionPrefix[] = "position/";
constexpr char kFormerTimersFamily[] = "timers";

std::string MetaKey(const char* prefix, uint32_t partition) {
  std::string key = prefix;
  coding::PutBigEndian32(&key, partition);
  return key;
}

std::string PartitionPrefix(uint32_t partition) {
  std::string p;
  coding::PutBigEndian32(&p, partition);
  return p;
}

// The first key after every key starting with `prefix` (prefix is 4 bytes).
std::string PrefixEnd(uint32_t partition) { return partition == UINT32_MAX ? std::string(5, '\xff') : PartitionPrefix(partition + 1); }

// A read-only open must leave the directory as it is, but RocksDB would
// start its own LOG file there and rotate the owner's.
class SilentLogger final : public rocksdb::Logger {
 public:
  SilentLogger() : Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel /*level*/, const char* /*format*/, va_list /*ap*/) override {}
};

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

}  // namespace

void AppendProfileKey(std::string* key, uint32_t partition, std::string_view customer) {
  coding::PutBigEndian32(key, partition);
  key->append(customer);
}

// A bulk load's writes to a family, as long as they come in increasing key
// order, go into one table file, which StateStore::Commit links into the
// store: building it directly costs a fraction of inserting the keys into
// the memtable's skiplist (and its bloom filter), flushing that later, and
// copying every write into a WriteBatch on the way.
class TableFileSet {
 public:
  TableFileSet(rocksdb::DB& db, std::string path_prefix) : db_(db), path_prefix_(std::move(path_prefix)) {}
  ~TableFileSet() {
    std::error_code ec;
    for (File& f : files_) {
      f.writer.reset();
      std::filesystem::remove(f.path, ec);  // moved into the store, or abandoned
    }
  }
  TableFileSet(const TableFileSet&) = delete;
  TableFileSet& operator=(const TableFileSet&) = delete;

  // False when the write cannot go into the family's file (its key is not
  // above the previous one's, or the file could not be written): the
  // caller then writes it through the batch. A commit holds at most one
  // write per key, so which of the two takes it changes nothing.
  bool Put(rocksdb::ColumnFamilyHandle* family, std::string_view key, std::string_view value) {
    rocksdb::SstFileWriter* w = Writer(family);
    return w != nullptr &&
           w->Put(rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size())).ok();
  }

  // Finishes the files and links them into their families, in one step.
  rocksdb::Status Ingest() {
    std::vector<rocksdb::IngestExternalFileArg> args;
    for (File& f : files_) {
      if (!f.writer) continue;
      if (rocksdb::Status s = f.writer->Finish(); !s.ok()) return s;
      rocksdb::IngestExternalFileArg arg;
      arg.column_family = f.family;
      arg.external_files = {f.path};
      arg.options.move_files = true;  // a hard link: the file is already in the store's directory
      arg.options.write_global_seqno = false;
      args.push_back(std::move(arg));
    }
    return args.empty() ? rocksdb::Status::OK() : db_.IngestExternalFiles(args);
  }

 private:
  struct File {
    rocksdb::ColumnFamilyHandle* family;
    std::string path;
    std::unique_ptr<rocksdb::SstFileWriter> writer;
  };

  rocksdb::SstFileWriter* Writer(rocksdb::ColumnFamilyHandle* family) {
    for (File& f : files_) {
      if (f.family == family) return f.writer.get();
    }
    rocksdb::Options options(db_.GetDBOptions(), db_.GetOptions(family));
    // A writer compresses with the last level's (slower, denser) compression
    // unless told otherwise; the final compaction applies that one anyway.
    options.bottommost_compression = options.compression;
    // The file's pages stay cached: the replay reads its profiles back.
    File f{family, path_prefix_ + std::to_string(family->GetID()) + ".sst",
           std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options, family,
                                                    /*invalidate_page_cache=*/false)};
    // A file that cannot be opened is not tried again: the family's writes
    // go through the batch.
    if (!f.writer->Open(f.path).ok()) f.writer.reset();
    files_.push_back(std::move(f));
    return files_.back().writer.get();
  }

  rocksdb::DB& db_;
  const std::string path_prefix_;
  std::vector<File> files_;
};

CommitBatch::CommitBatch(StateStore& store) : store_(store), batch_(std::make_unique<rocksdb::WriteBatch>()) {}
CommitBatch::~CommitBatch() = default;

bool CommitBatch::PutTable(rocksdb::ColumnFamilyHandle* family, std::string_view key, std::string_view value) {
  if (!store_.options_.bulk_load || store_.listener_ != nullptr) return false;
  if (!tables_) {
    tables_ = std::make_unique<TableFileSet>(*store_.db_,
                                             store_.dir_ + "/ingest-" + std::to_string(store_.ingest_files_++) + "-");
  }
  if (!tables_->Put(family, key, value)) return false;
  ++table_writes_;
  return true;
}

void CommitBatch::PutProfile(uint32_t partition, std::string_view customer, std::string_view encoded) {
  partition_ = partition;
  key_.clear();
  AppendProfileKey(&key_, partition, customer);
  if (PutTable(store_.profiles_, key_, encoded)) return;
  NoteKey(kProfilesFamily, key_);
  batch_->Put(store_.profiles_, key_, rocksdb::Slice(encoded.data(), encoded.size()));
}

void CommitBatch::SetClock(uint32_t partition, EventTime clock) {
  partition_ = partition;
  std::string value;
  coding::PutOrderedInt64(&value, clock.ms);
  const std::string key = MetaKey(kClockPrefix, partition);
  NoteKey(kMetaFamily, key);
  batch_->Put(store_.meta_, key, value);
}

void CommitBatch::SetPosition(uint32_t partition, std::string_view position) {
  partition_ = partition;
  position_.assign(position);
  const std::string key = MetaKey(kPositionPrefix, partition);
  NoteKey(kMetaFamily, key);
  batch_->Put(store_.meta_, key, rocksdb::Slice(position.data(), position.size()));
}

void CommitBatch::PutOutbox(uint32_t partition, uint64_t sequence, std::string_view customer, bool held_out,
                            std::string_view action_json) {
  partition_ = partition;
  key_.clear();
  coding::PutBigEndian32(&key_, partition);
  coding::PutBigEndian64(&key_, sequence);
  value_.clear();
  coding::PutVarint(&value_, customer.size());
  value_.append(customer);
  value_.push_back(held_out ? 1 : 0);
  value_.append(action_json);
  NoteKey(kOutboxFamily, key_);
  batch_->Put(store_.outbox_, key_, value_);
}

size_t CommitBatch::Count() const { return batch_->Count() + table_writes_; }
void CommitBatch::NoteKey(Family family, std::string_view key) {
  std::string& last = last_keys_[family];
  if (!in_order_ || (!last.empty() && std::string_view(last) >= key)) {
    in_order_ = false;
    return;
  }
  last.assign(key);
}

void CommitBatch::Clear() {
  batch_->Clear();
  tables_.reset();
  table_writes_ = 0;
  in_order_ = true;
  for (std::string& k : last_keys_) k.clear();
  position_.clear();
  partition_ = -1;
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir, const StateStoreOptions& options) {
  std::unique_ptr<StateStore> store(new StateStore());
  store->dir_ = dir;
  store->options_ = options;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  table.format_version = 5;

  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kZSTD;
  bool have_lz4 = false, have_zstd = false;
  for (auto c : rocksdb::GetSupportedCompressions()) {
    have_lz4 |= c == rocksdb::kLZ4Compression;
    have_zstd |= c == rocksdb::kZSTD;
  }
  if (!have_lz4) cf.compression = rocksdb::kSnappyCompression;
  if (!have_zstd) cf.bottommost_compression = cf.compression;

  // No bloom filter in front of the memtables: it spared a new customer's
  // lookup the skiplist search, but every write paid for adding its key, a
  // cache miss in a filter of 3 MiB per family; the daemon, which writes each
  // changed profile at every commit, spent 7% less CPU without it (bench b),
  // and a bulk-loading replay writes no memtable at all.

  // A bulk load links table files into the store while background
  // compactions would be installing their results, and RocksDB 7.8 can then
  // pick the level of an ingested file from a version the compaction has
  // already replaced: the file goes to the last level with sequence number
  // 0, under the older values it was to replace (seen as deleted keys of a
  // former timers family coming back, about once in 40 replays on 3
  // threads). So no background compaction: the commits merge level 0
  // themselves (LinkTables), and the load ends with one compaction
  // (Compact). Flushes, the other writer of those versions, find nothing in
  // the family that takes table files (unless a write came out of key
  // order, which the processor does not send).
  if (options.bulk_load) cf.disable_auto_compactions = true;

  rocksdb::DBOptions db;
  db.create_if_missing = !options.read_only;
  db.create_missing_column_families = !options.read_only;
  if (options.read_only) db.info_log = std::make_shared<SilentLogger>();
  db.max_background_jobs = 2;
  db.IncreaseParallelism(2);
  // All memtables together: each family's own 64 MiB, twice over while one
  // flushes, would let four families hold half a GiB before any is bounded.
  db.db_write_buffer_size = options.memtable_bytes;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf}, {"profiles", cf}, {"outbox", cf}};
  // Stores written before timers were read from the profiles have a family
  // of timer keys, which RocksDB opens only with the others; it repeats
  // what the profiles hold, so it is dropped.
  std::vector<std::string> existing;
  const bool former_timers = rocksdb::DB::ListColumnFamilies(db, dir, &existing).ok() &&
                             std::find(existing.begin(), existing.end(), kFormerTimersFamily) != existing.end();
  if (former_timers) families.emplace_back(kFormerTimersFamily, cf);
  rocksdb::DB* raw = nullptr;
  if (options.read_only) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec)) {
      return Status::NotFound(dir + " is not a Rapport state directory (no RocksDB database in it)");
    }
  }
  rocksdb::Status s = options.read_only
                          ? rocksdb::DB::OpenForReadOnly(db, dir, families, &store->handles_, &raw)
                          : rocksdb::DB::Open(db, dir, families, &store->handles_, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::IoError("state directory " + dir + " is in use by a running rapport (or another process: " +
                             s.ToString() + ")");
    }
    return FromRocks(s, "opening state directory " + dir);
  }
  store->db_.reset(raw);
  store->meta_ = store->handles_[0];
  store->profiles_ = store->handles_[1];
  store->outbox_ = store->handles_[2];
  if (former_timers) {
    rocksdb::ColumnFamilyHandle* timers = store->handles_.back();
    store->handles_.pop_back();
    rocksdb::Status dropped = options.read_only ? rocksdb::Status::OK() : store->db_->DropColumnFamily(timers);
    store->db_->DestroyColumnFamilyHandle(timers);
    if (Status st = FromRocks(dropped, "dropping the former timers family"); !st.ok()) return st;
  }
  if (Status st = store->LoadSymbols(); !st.ok()) return st;
  return store;
}

StateStore::~StateStore() {
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
}

void StateStore::RememberSymbol(std::string_view key, uint32_t id) {
  // key: [partition BE32][kind][name]
  coding::Reader in(key);
  uint32_t partition;
  if (!in.GetBigEndian32(&partition) || in.rest().empty()) return;
  std::string_view rest = in.rest();
  auto& names = names_[partition][rest[0]];
  if (names.size() <= id) names.resize(id + 1);
  names[id] = std::string(rest.substr(1));
  symbols_[std::string(key)] = id;
}

void StateStore::ForgetSymbols(uint32_t partition) {
  std::lock_guard lock(symbols_mu_);
  names_.erase(partition);
  const std::string prefix = PartitionPrefix(partition);
  std::erase_if(symbols_, [&prefix](const auto& entry) { return entry.first.starts_with(prefix); });
}

Status StateStore::LoadSymbols() {
  auto read = [this](const std::string& prefix, const std::function<Status(std::string_view, uint32_t)>& fn) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      std::string_view key(it->key().data() + prefix.size(), it->key().size() - prefix.size());
      coding::Reader in(std::string_view(it->value().data(), it->value().size()));
      uint64_t id;
      if (key.empty() || !in.GetVarint(&id)) return Status::Corruption("symbol " + std::string(key) + " is malformed");
      if (Status s = fn(key, static_cast<uint32_t>(id)); !s.ok()) return s;
    }
    return FromRocks(it->status(), "reading symbols");
  };
  if (Status s = read(kSymbolPrefix, [this](std::string_view key, uint32_t id) {
        if (key.size() < 5) return Status::Corruption("symbol key without a partition and kind");
        RememberSymbol(key, id);
        return Status::Ok();
      });
      !s.ok()) {
    return s;
  }
  // A store written before symbols were per partition: every partition gets
  // a copy of the one table, with the same ids, so its profiles still read.
  std::vector<std::pair<std::string, uint32_t>> legacy;
  if (Status s = read(kLegacySymbolPrefix,
                      [&legacy](std::string_view key, uint32_t id) {
                        legacy.emplace_back(std::string(key), id);
                        return Status::Ok();
                      });
      !s.ok()) {
    return s;
  }
  if (legacy.empty()) return Status::Ok();
  auto partitions = Partitions();
  if (!partitions.ok()) return partitions.status();
  rocksdb::WriteBatch batch;
  std::string value;
  for (uint32_t partition : *partitions) {
    if (names_.contains(partition)) continue;
    for (const auto& [kind_and_name, id] : legacy) {
      std::string key = PartitionPrefix(partition) + kind_and_name;
      RememberSymbol(key, id);
      value.clear();
      coding::PutVarint(&value, id);
      batch.Put(meta_, kSymbolPrefix + key, value);
    }
  }
  if (options_.read_only) return Status::Ok();
  for (const auto& entry : legacy) batch.Delete(meta_, kLegacySymbolPrefix + entry.first);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Write(wo, &batch), "moving symbols to their partitions");
}

Result<uint32_t> StateStore::Symbol(uint32_t partition, SymbolKind kind, std::string_view name) {
  std::lock_guard lock(symbols_mu_);
  std::string key = PartitionPrefix(partition);
  key.push_back(static_cast<char>(kind));
  key.append(name);
  if (auto it = symbols_.find(key); it != symbols_.end()) return it->second;
  if (options_.read_only) return Status::InvalidArgument("the state is open read-only: no new symbol " + std::string(name));
  auto& names = names_[partition][static_cast<char>(kind)];
  uint32_t id = static_cast<uint32_t>(names.size());
  std::string value;
  coding::PutVarint(&value, id);
  const std::string stored_key = kSymbolPrefix + key;
  rocksdb::WriteBatch batch;
  batch.Put(meta_, stored_key, value);
  // Durable in the replica before any profile that uses it can be.
  if (Status s = Replicate(partition, "", {StateChange{StateFamily::kMeta, stored_key, value}}, true, &batch);
      !s.ok()) {
    return s;
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  wo.disableWAL = options_.bulk_load;
  if (Status s = FromRocks(db_->Write(wo, &batch), "writing a symbol"); !s.ok()) return s;
  names.emplace_back(name);
  symbols_.emplace(std::move(key), id);
  return id;
}

std::string StateStore::SymbolName(uint32_t partition, SymbolKind kind, uint32_t id) const {
  std::lock_guard lock(symbols_mu_);
  auto p = names_.find(partition);
  if (p == names_.end()) return "";
  auto it = p->second.find(static_cast<char>(kind));
  if (it == p->second.end() || id >= it->second.size()) return "";
  return it->second[id];
}

Status StateStore::Replicate(uint32_t partition, std::string_view position, const std::vector<StateChange>& changes,
                             bool wait, rocksdb::WriteBatch* batch) {
  if (listener_ == nullptr || changes.empty()) return Status::Ok();
  auto offset = listener_->OnChanges(partition, position, changes, wait);
  if (!offset.ok()) return offset.status();
  if (*offset >= 0 && batch != nullptr) {
    std::string value;
    coding::PutBigEndian64(&value, static_cast<uint64_t>(*offset));
    batch->Put(meta_, MetaKey(kChangelogPrefix, partition), value);
  }
  return Status::Ok();
}

Result<std::optional<int64_t>> StateStore::GetChangelogOffset(uint32_t partition) {
  WaitForTakenGroups();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, MetaKey(kChangelogPrefix, partition), &value);
  if (s.IsNotFound()) return std::optional<int64_t>();
  if (!s.ok()) return FromRocks(s, "reading the changelog checkpoint");
  coding::Reader in(value);
  uint64_t offset;
  if (!in.GetBigEndian64(&offset)) return Status::Corruption("changelog checkpoint of partition " + std::to_string(partition));
  return std::optional<int64_t>(static_cast<int64_t>(offset));
}

Status StateStore::SetChangelogOffset(uint32_t partition, int64_t offset) {
  std::string value;
  coding::PutBigEndian64(&value, static_cast<uint64_t>(offset));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  return FromRocks(db_->Put(wo, meta_, MetaKey(kChangelogPrefix, partition), value), "writing the changelog checkpoint");
}

rocksdb::ColumnFamilyHandle* StateStore::Family(StateFamily family) const {
  switch (family) {
    case StateFamily::kProfiles: return profiles_;
    case StateFamily::kOutbox: return outbox_;
    case StateFamily::kMeta: break;
  }
  return meta_;
}

Status StateStore::ApplyChanges(uint32_t partition, const std::vector<StateChange>& changes,
                                int64_t changelog_offset) {
  rocksdb::WriteBatch batch;
  for (const StateChange& c : changes) {
    rocksdb::Slice key(c.key.data(), c.key.size());
    if (c.deleted) {
      batch.Delete(Family(c.family), key);
    } else {
      batch.Put(Family(c.family), key, rocksdb::Slice(c.value.data(), c.value.size()));
    }
  }
  std::string value;
  coding::PutBigEndian64(&value, static_cast<uint64_t>(changelog_offset));
  batch.Put(meta_, MetaKey(kChangelogPrefix, partition), value);
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  if (Status s = FromRocks(db_->Write(wo, &batch), "applying changelog records"); !s.ok()) return s;
  std::lock_guard lock(symbols_mu_);
  const std::string_view prefix = kSymbolPrefix;
  for (const StateChange& c : changes) {
    if (c.family != StateFamily::kMeta || c.deleted || !c.key.starts_with(prefix)) continue;
    coding::Reader in(c.value);
    uint64_t id;
    if (in.GetVarint(&id)) RememberSymbol(c.key.substr(prefix.size()), static_cast<uint32_t>(id));
  }
  return Status::Ok();
}

Status StateStore::DropPartition(uint32_t partition) {
  const std::string begin = PartitionPrefix(partition), end = PrefixEnd(partition);
  rocksdb::WriteBatch batch;
  for (rocksdb::ColumnFamilyHandle* family : {profiles_, outbox_}) batch.DeleteRange(family, begin, end);
  batch.DeleteRange(meta_, kSymbolPrefix + begin, kSymbolPrefix + end);
  for (const char* prefix : {kClockPrefix, kPositionPrefix, kChangelogPrefix}) {
    batch.Delete(meta_, MetaKey(prefix, partition));
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  if (Status s = FromRocks(db_->Write(wo, &batch), "dropping partition " + std::to_string(partition)); !s.ok()) {
    return s;
  }
  ForgetSymbols(partition);
  return Status::Ok();
}

Status StateStore::GetProfile(uint32_t partition, std::string_view customer, std::string* value, bool* found,
                              ProfileRead when) {
  if (when == ProfileRead::kAfterTakenGroups) WaitForTakenGroups();
  std::string key;
  AppendProfileKey(&key, partition, customer);
  rocksdb::PinnableSlice slice;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), profiles_, key, &slice);
  if (s.IsNotFound()) {
    *found = false;
    return Status::Ok();
  }
  if (!s.ok()) return FromRocks(s, "reading profile of " + std::string(customer));
  value->assign(slice.data(), slice.size());
  *found = true;
  return Status::Ok();
}

Status StateStore::ForEachProfile(uint32_t partition,
                                  const std::function<void(std::string_view, std::string_view)>& fn) {
  WaitForTakenGroups();
  const std::string begin = PartitionPrefix(partition), end = PrefixEnd(partition);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, profiles_));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    fn(std::string_view(it->key().data() + 4, it->key().size() - 4),
       std::string_view(it->value().data(), it->value().size()));
  }
  return FromRocks(it->status(), "reading profiles");
}

Result<std::optional<EventTime>> StateStore::GetClock(uint32_t partition) {
  WaitForTakenGroups();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, MetaKey(kClockPrefix, partition), &value);
  if (s.IsNotFound()) return std::optional<EventTime>();
  if (!s.ok()) return FromRocks(s, "reading the clock");
  coding::Reader in(value);
  int64_t ms;
  if (!in.GetOrderedInt64(&ms)) return Status::Corruption("clock of partition " + std::to_string(partition));
  return std::optional<EventTime>(EventTime{ms});
}

Result<std::string> StateStore::GetPosition(uint32_t partition) {
  WaitForTakenGroups();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, MetaKey(kPositionPrefix, partition), &value);
  if (s.IsNotFound()) return std::string();
  if (!s.ok()) return FromRocks(s, "reading the source position");
  return value;
}

namespace {
// Lists a WriteBatch's operations as StateChanges (views into the batch).
class ChangeCollector : public rocksdb::WriteBatch::Handler {
 public:
  ChangeCollector(std::vector<StateChange>* out, uint32_t profiles, uint32_t outbox)
      : out_(out), profiles_(profiles), outbox_(outbox) {}
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    out_->push_back(StateChange{FamilyOf(cf), {key.data(), key.size()}, {value.data(), value.size()}, false});
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
    out_->push_back(StateChange{FamilyOf(cf), {key.data(), key.size()}, {}, true});
    return rocksdb::Status::OK();
  }

 private:
  StateFamily FamilyOf(uint32_t cf) const {
    if (cf == profiles_) return StateFamily::kProfiles;
    if (cf == outbox_) return StateFamily::kOutbox;
    return StateFamily::kMeta;
  }
  std::vector<StateChange>* out_;
  uint32_t profiles_, outbox_;
};

// The puts and deletes of a commit batch, to be written in key order.
class SortedOps final : public rocksdb::WriteBatch::Handler {
 public:
  struct Op {
    uint32_t family;
    rocksdb::Slice key, value;
    bool put;
  };
  rocksdb::Status PutCF(uint32_t family, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    ops.push_back(Op{family, key, value, true});
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t family, const rocksdb::Slice& key) override {
    ops.push_back(Op{family, key, rocksdb::Slice(), false});
    return rocksdb::Status::OK();
  }
  std::vector<Op> ops;
};

}  // namespace

Status StateStore::Commit(CommitBatch& batch) {
  if (batch.Count() == 0) return Status::Ok();
  if (listener_ != nullptr && batch.partition_ >= 0) {
    const auto partition = static_cast<uint32_t>(batch.partition_);
    if (grouping_) {
      // The next batch of the partition is likely about as large: sized
      // once, it does not grow by copies while the processor fills it.
      const size_t size = batch.batch_->GetDataSize();
      held_.batches_.push_back(CommitGroup::Held{partition, batch.position_, std::move(batch.batch_)});
      batch.batch_ = std::make_unique<rocksdb::WriteBatch>(size);
      batch.Clear();
      return Status::Ok();
    }
    std::vector<StateChange> changes;
    changes.reserve(batch.Count());
    ChangeCollector collector(&changes, profiles_->GetID(), outbox_->GetID());
    if (Status s = FromRocks(batch.batch_->Iterate(&collector), "reading a commit batch"); !s.ok()) return s;
    if (Status s = Replicate(partition, batch.position_, changes, true, batch.batch_.get()); !s.ok()) return s;
  }
  if (batch.tables_) {
    Status s = LinkTables(batch);
    batch.tables_.reset();
    batch.table_writes_ = 0;
    if (!s.ok() || batch.batch_->Count() == 0) {
      batch.Clear();
      return s;
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  wo.disableWAL = options_.bulk_load;
  // A memtable insert in key order starts its skiplist search where the
  // previous one ended; in the processor's order (random customers) each
  // insert searches from the top, a cache miss per level. A batch holds at
  // most one write per key, so the order does not change what it writes; a
  // stable sort keeps it so even if it did.
  // The processor writes each family's keys in order already (and a
  // listener's changelog checkpoint, added above, is not noted, so it sorts).
  rocksdb::WriteBatch* to_write = batch.batch_.get();
  rocksdb::WriteBatch sorted;
  SortedOps collected;
  const bool in_order = batch.in_order_ && listener_ == nullptr;
  if (!in_order && batch.Count() > 1 && to_write->Iterate(&collected).ok()) {
    auto& ops = collected.ops;
    std::stable_sort(ops.begin(), ops.end(), [](const SortedOps::Op& a, const SortedOps::Op& b) {
      return a.family != b.family ? a.family < b.family : a.key.compare(b.key) < 0;
    });
    for (size_t i = 0; i < ops.size(); ++i) {
      rocksdb::ColumnFamilyHandle* family = nullptr;
      for (auto* h : handles_) {
        if (h->GetID() == ops[i].family) family = h;
      }
      if (family == nullptr) break;
      if (ops[i].put) {
        sorted.Put(family, ops[i].key, ops[i].value);
      } else {
        sorted.Delete(family, ops[i].key);
      }
      if (i + 1 == ops.size()) to_write = &sorted;
    }
  }
  Status s = FromRocks(db_->Write(wo, to_write), "committing state");
  batch.Clear();
  return s;
}

// With no background compaction in a bulk load (see Open), each
// write-back's files would pile up in level 0, and every read of an evicted
// customer would consult them all (5M customers: about 200 per family).
// Past kMaxLevel0Files a family's level 0 is merged into level 1 here. The
// links and these merges go one at a time: RocksDB picks a linked file's
// level safely only while no other change to the family's files is half
// installed, and a merge by CompactFiles is installed when it returns.
Status StateStore::LinkTables(CommitBatch& batch) {
  constexpr size_t kMaxLevel0Files = 16;
  std::lock_guard lock(bulk_mu_);
  if (Status s = FromRocks(batch.tables_->Ingest(), "writing state as table files"); !s.ok()) return s;
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(profiles_, &meta);
  if (meta.levels.size() < 2 || meta.levels[0].files.size() < kMaxLevel0Files) return Status::Ok();
  std::vector<std::string> files;
  for (size_t level = 0; level < 2; ++level) {
    for (const rocksdb::SstFileMetaData& file : meta.levels[level].files) files.push_back(file.name);
  }
  rocksdb::CompactionOptions co;
  co.compression = rocksdb::kDisableCompressionOption;  // the family's, for level 1
  return FromRocks(db_->CompactFiles(co, profiles_, files, 1), "merging level 0");
}

StateStore::CommitGroup::CommitGroup() = default;
StateStore::CommitGroup::~CommitGroup() = default;
StateStore::CommitGroup::CommitGroup(CommitGroup&&) noexcept = default;
StateStore::CommitGroup& StateStore::CommitGroup::operator=(CommitGroup&&) noexcept = default;

void StateStore::BeginCommitGroup() { grouping_ = listener_ != nullptr; }

StateStore::CommitGroup StateStore::TakeCommitGroup() {
  grouping_ = false;
  CommitGroup group = std::move(held_);
  held_.batches_.clear();
  if (!group.empty()) ++taken_groups_;
  return group;
}

Status StateStore::WriteCommitGroup(CommitGroup group) {
  if (group.empty()) return Status::Ok();
  auto write = [&]() -> Status {
    std::vector<StateChange> changes;
    for (CommitGroup::Held& h : group.batches_) {
      changes.clear();
      ChangeCollector collector(&changes, profiles_->GetID(), outbox_->GetID());
      if (Status s = FromRocks(h.batch->Iterate(&collector), "reading a commit batch"); !s.ok()) return s;
      auto handed = listener_->OnChanges(h.partition, h.position, changes, false);
      if (!handed.ok()) return handed.status();
    }
    if (Status s = listener_->Sync(); !s.ok()) return s;
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    // One write per partition: each is atomic on its own, as without a group.
    for (CommitGroup::Held& h : group.batches_) {
      if (int64_t end = listener_->EndOffset(h.partition); end >= 0) {
        std::string value;
        coding::PutBigEndian64(&value, static_cast<uint64_t>(end));
        h.batch->Put(meta_, MetaKey(kChangelogPrefix, h.partition), value);
      }
      if (Status s = FromRocks(db_->Write(wo, h.batch.get()), "committing state"); !s.ok()) return s;
    }
    return Status::Ok();
  };
  Status result = write();
  {
    std::lock_guard lock(taken_mu_);
    --taken_groups_;
  }
  taken_cv_.notify_all();
  return result;
}

void StateStore::WaitForTakenGroups() {
  if (taken_groups_.load() == 0) return;
  std::unique_lock lock(taken_mu_);
  taken_cv_.wait(lock, [this] { return taken_groups_.load() == 0; });
}

Result<uint64_t> StateStore::NextOutboxSequence(uint32_t partition) {
  const std::string begin = PartitionPrefix(partition), end = PrefixEnd(partition);
  rocksdb::Slice lower(begin);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, outbox_));
  it->SeekForPrev(end);
  if (it->Valid() && it->key().starts_with(begin)) {
    coding::Reader in(std::string_view(it->key().data() + 4, it->key().size() - 4));
    uint64_t sequence;
    if (!in.GetBigEndian64(&sequence)) return Status::Corruption("outbox key of partition " + std::to_string(partition));
    return sequence + 1;
  }
  if (Status s = FromRocks(it->status(), "reading the outbox"); !s.ok()) return s;
  return uint64_t{0};
}

Result<size_t> StateStore::ScanOutbox(uint32_t partition, uint64_t sequence, size_t limit, OutboxScope scope,
                                      const std::function<void(const OutboxEntry&)>& fn) {
  std::string start;
  coding::PutBigEndian32(&start, partition);
  coding::PutBigEndian64(&start, sequence);
  std::string end;
  rocksdb::Slice end_slice;
  rocksdb::ReadOptions read;
  if (scope == OutboxScope::kPartition && partition != UINT32_MAX) {
    coding::PutBigEndian32(&end, partition + 1);
    end_slice = end;
    read.iterate_upper_bound = &end_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, outbox_));
  size_t visited = 0;
  for (it->Seek(start); it->Valid() && visited < limit; it->Next()) {
    OutboxEntry e{};
    coding::Reader key(std::string_view(it->key().data(), it->key().size()));
    coding::Reader value(std::string_view(it->value().data(), it->value().size()));
    uint64_t n = 0;
    if (!key.GetBigEndian32(&e.partition) || !key.GetBigEndian64(&e.sequence) || !value.GetVarint(&n) ||
        value.rest().size() < n + 1) {
      return Status::Corruption("outbox record is malformed");
    }
    std::string_view rest = value.rest();
    e.customer = rest.substr(0, n);
    e.held_out = rest[n] != 0;
    e.action_json = rest.substr(n + 1);
    fn(e);
    ++visited;
  }
  if (Status s = FromRocks(it->status(), "reading the outbox"); !s.ok()) return s;
  return visited;
}

Status StateStore::DeleteOutbox(const std::vector<std::pair<uint32_t, uint64_t>>& records) {
  rocksdb::WriteBatch batch;
  std::vector<std::string> keys;
  keys.reserve(records.size());
  for (const auto& [partition, sequence] : records) {
    std::string& key = keys.emplace_back();
    coding::PutBigEndian32(&key, partition);
    coding::PutBigEndian64(&key, sequence);
    batch.Delete(outbox_, key);
  }
  if (listener_ != nullptr) {
    // Tombstones need not be waited for: one that is lost only makes a
    // restore deliver that action again, with its action_id.
    std::vector<StateChange> changes;
    for (size_t i = 0; i < records.size(); ++i) {
      changes.push_back(StateChange{StateFamily::kOutbox, keys[i], {}, true});
      if (i + 1 == records.size() || records[i + 1].first != records[i].first) {
        (void)Replicate(records[i].first, "", changes, false, nullptr);
        changes.clear();
      }
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  wo.disableWAL = options_.bulk_load;
  return FromRocks(db_->Write(wo, &batch), "deleting delivered outbox records");
}

uint64_t StateStore::ApproximateOutboxCount() {
  uint64_t n = 0;
  db_->GetIntProperty(outbox_, "rocksdb.estimate-num-keys", &n);
  return n;
}

uint64_t StateStore::ApproximateProfileBytes() {
  uint64_t size = 0;
  db_->GetIntProperty(profiles_, "rocksdb.total-sst-files-size", &size);
  uint64_t mem = 0;
  db_->GetIntProperty(profiles_, "rocksdb.cur-size-all-mem-tables", &mem);
  return size + mem;
}

StateStore::FamilyBytes StateStore::ApproximateBytes() {
  // Memtables are counted by the data they hold, not by their arenas, which
  // grow in megabyte blocks and would dwarf a small store.
  const std::string all_keys_end(16, '\xff');
  const rocksdb::Range all_keys(rocksdb::Slice(), all_keys_end);
  auto bytes = [this, &all_keys](rocksdb::ColumnFamilyHandle* family) {
    uint64_t sst = 0, count = 0, mem = 0;
    db_->GetIntProperty(family, "rocksdb.total-sst-files-size", &sst);
    db_->GetApproximateMemTableStats(family, all_keys, &count, &mem);
    return sst + mem;
  };
  return FamilyBytes{bytes(meta_), bytes(profiles_), bytes(outbox_)};
}

Result<std::vector<uint32_t>> StateStore::Partitions() {
  WaitForTakenGroups();
  std::set<uint32_t> found;
  // Skips from one partition's first key to the next partition's range.
  for (rocksdb::ColumnFamilyHandle* family : {profiles_, outbox_}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid();) {
      coding::Reader in(std::string_view(it->key().data(), it->key().size()));
      uint32_t partition;
      if (!in.GetBigEndian32(&partition)) return Status::Corruption("a key without a partition");
      found.insert(partition);
      if (partition == UINT32_MAX) break;
      it->Seek(PartitionPrefix(partition + 1));
    }
    if (Status s = FromRocks(it->status(), "listing partitions"); !s.ok()) return s;
  }
  for (const char* prefix : {kClockPrefix, kPositionPrefix}) {
    const std::string p = prefix;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      coding::Reader in(std::string_view(it->key().data() + p.size(), it->key().size() - p.size()));
      uint32_t partition;
      if (!in.GetBigEndian32(&partition)) return Status::Corruption("a meta key without a partition");
      found.insert(partition);
    }
    if (Status s = FromRocks(it->status(), "listing partitions"); !s.ok()) return s;
  }
  return std::vector<uint32_t>(found.begin(), found.end());
}

Status StateStore::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(db_->Flush(fo, handles_), "flushing");
}

Status StateStore::Compact() {
  // Every table file of a family is merged into its last level in one pass,
  // with the bottommost compression. (CompactRange merges level by level: a
  // bulk load's ingested files, each placed on the lowest level it does not
  // overlap, were rewritten once per level they spanned.) The families are
  // compacted side by side: at the end of a replay on several threads, one
  // after the other would leave all but one core idle. The background work is
  // paused first, so that no compaction holds a file these need.
  db_->PauseBackgroundWork();
  std::vector<Status> results(handles_.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < handles_.size(); ++i) {
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(handles_[i], &meta);
    const int last = static_cast<int>(meta.levels.size()) - 1;
    std::vector<std::string> files;
    bool only_last = true;
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      for (const rocksdb::SstFileMetaData& file : level.files) {
        files.push_back(file.name);
        only_last &= level.level == last;
      }
    }
    if (files.empty() || (files.size() == 1 && only_last)) continue;
    threads.emplace_back([this, i, last, files = std::move(files), &results] {
      rocksdb::CompactionOptions co;
      co.compression = rocksdb::kDisableCompressionOption;  // the family's, for its last level
      results[i] = FromRocks(db_->CompactFiles(co, handles_[i], files, last), "compacting");
    });
  }
  for (std::thread& t : threads) t.join();
  db_->ContinueBackgroundWork();
  for (const Status& s : results) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace rapport
