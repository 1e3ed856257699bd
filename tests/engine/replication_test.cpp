// StateStore replication: the listener sees a partition's changes before
// they land, per-partition symbols, restore (ApplyChanges) and DropPartition,
// and stores written before symbols were per partition.
#include <rocksdb/db.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>
#include <map>

#include "rapport/engine/coding.h"
#include "rapport/engine/state_store.h"
#include "temp_dir.h"

using namespace rapport;
using rapport::testing::TempDir;

namespace {

// Keeps owned copies of everything it is shown, like a changelog topic.
class RecordingListener : public StateChangeListener {
 public:
  struct Record {
    uint32_t partition;
    std::string position;
    StateFamily family;
    std::string key, value;
    bool deleted;
  };
  Result<int64_t> OnChanges(uint32_t partition, std::string_view position, const std::vector<StateChange>& changes,
                            bool wait) override {
    if (refuse) return Status::Unavailable("replica down");
    for (const StateChange& c : changes) {
      records.push_back(Record{partition, std::string(position), c.family, std::string(c.key), std::string(c.value),
                               c.deleted});
    }
    if (!wait) return int64_t{-1};
    return static_cast<int64_t>(records.size());
  }
  Status Sync() override { return refuse ? Status::Unavailable("replica down") : Status::Ok(); }
  int64_t EndOffset(uint32_t /*partition*/) override { return static_cast<int64_t>(records.size()); }
  std::vector<Record> records;
  bool refuse = false;
};

std::map<std::string, std::string> Profiles(StateStore& store, uint32_t partition) {
  std::map<std::string, std::string> out;
  REQUIRE(store.ForEachProfile(partition, [&](std::string_view c, std::string_view v) {
                 out[std::string(c)] = std::string(v);
               }).ok());
  return out;
}

// A store in a temporary directory whose changes a RecordingListener sees.
struct ListenedStore {
  TempDir tmp;
  RecordingListener listener;
  std::unique_ptr<StateStore> store;
  ListenedStore() {
    auto opened = StateStore::Open(tmp.File("s"), StateStoreOptions{});
    REQUIRE(opened.ok());
    store = std::move(*opened);
    store->SetChangeListener(&listener);
  }
};

}  // namespace

TEST_CASE("a commit reaches the listener before it lands, with its position and checkpoint") {
  ListenedStore listened;
  StateStore* store = listened.store.get();
  RecordingListener& listener = listened.listener;

  CommitBatch batch(*store);
  batch.PutProfile(3, "amy", "profile-bytes");
  batch.PutOutbox(3, 0, "amy", false, "{\"action_id\":\"a\"}");
  batch.SetPosition(3, "42");
  REQUIRE(store->Commit(batch).ok());

  REQUIRE(listener.records.size() == 3);
  for (const auto& r : listener.records) {
    CHECK(r.partition == 3);
    CHECK(r.position == "42");
  }
  CHECK(listener.records[0].family == StateFamily::kProfiles);
  CHECK(listener.records[1].family == StateFamily::kOutbox);
  CHECK(listener.records[1].value.find("action_id") != std::string::npos);
  CHECK(listener.records[2].family == StateFamily::kMeta);
  auto checkpoint = store->GetChangelogOffset(3);
  REQUIRE(checkpoint.ok());
  REQUIRE(checkpoint->has_value());
  CHECK(**checkpoint == 3);

  SECTION("a commit the replica refuses writes nothing locally") {
    listener.refuse = true;
    batch.PutProfile(3, "bob", "other");
    batch.SetPosition(3, "43");
    CHECK_FALSE(store->Commit(batch).ok());
    CHECK(Profiles(*store, 3).count("bob") == 0);
    CHECK(*store->GetPosition(3) == "42");
  }
}

TEST_CASE("symbols belong to their partition and are replicated as they are made") {
  ListenedStore listened;
  StateStore* store = listened.store.get();
  RecordingListener& listener = listened.listener;
  auto visit0 = store->Symbol(0, SymbolKind::kEventType, "visit");
  auto purchase1 = store->Symbol(1, SymbolKind::kEventType, "purchase");
  auto visit1 = store->Symbol(1, SymbolKind::kEventType, "visit");
  REQUIRE(visit0.ok());
  REQUIRE(purchase1.ok());
  REQUIRE(visit1.ok());
  CHECK(*visit0 == 0);
  CHECK(*purchase1 == 0);  // ids are dense per partition
  CHECK(*visit1 == 1);
  CHECK(store->SymbolName(0, SymbolKind::kEventType, 0) == "visit");
  CHECK(store->SymbolName(1, SymbolKind::kEventType, 0) == "purchase");
  CHECK(store->SymbolName(0, SymbolKind::kEventType, 1).empty());
  REQUIRE(listener.records.size() == 3);
  CHECK(listener.records[1].partition == 1);
  CHECK(listener.records[1].position.empty());  // outside a commit: always applied on restore
}

TEST_CASE("a partition restored from another store's changes is the same; dropping it empties it") {
  TempDir tmp;
  RecordingListener listener;
  {
    auto source = StateStore::Open(tmp.File("source"), StateStoreOptions{});
    REQUIRE(source.ok());
    (*source)->SetChangeListener(&listener);
    REQUIRE((*source)->Symbol(5, SymbolKind::kCampaign, "thank-you").ok());
    CommitBatch batch(**source);
    batch.PutProfile(5, "amy", "v1");
    batch.PutOutbox(5, 0, "amy", false, "{\"action_id\":\"a\"}");
    batch.SetPosition(5, "7");
    REQUIRE((*source)->Commit(batch).ok());
    batch.PutProfile(5, "amy", "v2");
    batch.PutProfile(5, "bob", "b1");
    batch.SetPosition(5, "9");
    REQUIRE((*source)->Commit(batch).ok());
    REQUIRE((*source)->DeleteOutbox({{5, 0}}).ok());
  }
  auto target = StateStore::Open(tmp.File("target"), StateStoreOptions{});
  REQUIRE(target.ok());
  // Something stale of the same partition is already there.
  {
    CommitBatch stale(**target);
    stale.PutProfile(5, "zed", "stale");
    stale.SetPosition(5, "1");
    REQUIRE((*target)->Commit(stale).ok());
  }
  REQUIRE((*target)->DropPartition(5).ok());
  CHECK(Profiles(**target, 5).empty());
  CHECK((*target)->GetPosition(5)->empty());

  std::vector<StateChange> changes;
  for (const auto& r : listener.records) changes.push_back(StateChange{r.family, r.key, r.value, r.deleted});
  REQUIRE((*target)->ApplyChanges(5, changes, static_cast<int64_t>(listener.records.size())).ok());

  CHECK(Profiles(**target, 5) == std::map<std::string, std::string>{{"amy", "v2"}, {"bob", "b1"}});
  CHECK(*(*target)->NextOutboxSequence(5) == 0);  // delivered and deleted at the source
  CHECK(*(*target)->GetPosition(5) == "9");
  CHECK((*target)->SymbolName(5, SymbolKind::kCampaign, 0) == "thank-you");
  CHECK(**(*target)->GetChangelogOffset(5) == static_cast<int64_t>(listener.records.size()));

  REQUIRE((*target)->DropPartition(5).ok());
  CHECK(Profiles(**target, 5).empty());
  CHECK((*target)->SymbolName(5, SymbolKind::kCampaign, 0).empty());
  CHECK_FALSE((*target)->GetChangelogOffset(5)->has_value());
}

TEST_CASE("a store from before per-partition symbols keeps its names in every partition") {
  TempDir tmp;
  const std::string dir = tmp.File("old");
  {
    // The previous layout: one table, "sym/" + kind + name.
    auto store = StateStore::Open(dir, StateStoreOptions{});
    REQUIRE(store.ok());
    CommitBatch batch(**store);
    batch.PutProfile(0, "amy", "p0");
    batch.PutProfile(2, "bob", "p2");
    REQUIRE((*store)->Commit(batch).ok());
  }
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}},
                                                             {"profiles", {}},
                                                             {"outbox", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, families, &handles, &raw).ok());
    std::string id0, id1;
    coding::PutVarint(&id0, 0);
    coding::PutVarint(&id1, 1);
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[0], "sym/tvisit", id0).ok());
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[0], "sym/tpurchase", id1).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  {
    StateStoreOptions read_only;
    read_only.read_only = true;
    auto store = StateStore::Open(dir, read_only);
    REQUIRE(store.ok());
    CHECK((*store)->SymbolName(2, SymbolKind::kEventType, 1) == "purchase");
  }
  auto store = StateStore::Open(dir, StateStoreOptions{});
  REQUIRE(store.ok());
  for (uint32_t p : {0u, 2u}) {
    CHECK((*store)->SymbolName(p, SymbolKind::kEventType, 0) == "visit");
    CHECK((*store)->SymbolName(p, SymbolKind::kEventType, 1) == "purchase");
  }
  // New symbols continue after the copied ones.
  CHECK(*(*store)->Symbol(0, SymbolKind::kEventType, "referral") == 2);
}

TEST_CASE("a store with the former timers family opens read-only as it is, and drops the family at open") {
  TempDir tmp;
  const std::string dir = tmp.File("old");
  {
    // The previous layout: a fourth family of timer keys, repeating the
    // profiles' due times.
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"profiles", {}}, {"timers", {}}, {"outbox", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    REQUIRE(rocksdb::DB::Open(options, dir, families, &handles, &raw).ok());
    std::string profile_key, timer_key;
    AppendProfileKey(&profile_key, 0, "amy");
    timer_key = profile_key + "timer";
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[1], profile_key, "p0").ok());
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[2], timer_key, "").ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  auto family_names = [&dir] {
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
    std::sort(names.begin(), names.end());
    return names;
  };
  {
    StateStoreOptions read_only;
    read_only.read_only = true;
    auto store = StateStore::Open(dir, read_only);
    REQUIRE(store.ok());
    CHECK(Profiles(**store, 0) == std::map<std::string, std::string>{{"amy", "p0"}});
  }
  CHECK(family_names() == std::vector<std::string>{"default", "outbox", "profiles", "timers"});
  {
    auto store = StateStore::Open(dir, StateStoreOptions{});
    REQUIRE(store.ok());
    CHECK(Profiles(**store, 0) == std::map<std::string, std::string>{{"amy", "p0"}});
  }
  CHECK(family_names() == std::vector<std::string>{"default", "outbox", "profiles"});
  auto reopened = StateStore::Open(dir, StateStoreOptions{});
  REQUIRE(reopened.ok());
  CHECK(Profiles(**reopened, 0) == std::map<std::string, std::string>{{"amy", "p0"}});
}

TEST_CASE("a commit group waits for the replica once and then writes every partition's batch") {
  ListenedStore listened;
  StateStore* store = listened.store.get();
  RecordingListener& listener = listened.listener;
  CommitBatch first(*store), second(*store);
  store->BeginCommitGroup();
  first.PutProfile(1, "amy", "a");
  first.SetPosition(1, "10");
  second.PutProfile(2, "bob", "b");
  second.SetPosition(2, "20");
  REQUIRE(store->Commit(first).ok());
  REQUIRE(store->Commit(second).ok());
  CHECK(listener.records.empty());      // held ...
  CHECK(Profiles(*store, 1).empty());  // ... and not written
  CHECK(first.Count() == 0);
  StateStore::CommitGroup group = store->TakeCommitGroup();
  CHECK_FALSE(group.empty());
  CHECK(listener.records.empty());
  REQUIRE(store->WriteCommitGroup(std::move(group)).ok());
  CHECK(listener.records.size() == 4);
  CHECK(Profiles(*store, 1).count("amy") == 1);
  CHECK(Profiles(*store, 2).count("bob") == 1);
  CHECK(**store->GetChangelogOffset(2) == 4);

  SECTION("a replica that fails the group writes nothing") {
    store->BeginCommitGroup();
    first.PutProfile(1, "cid", "c");
    first.SetPosition(1, "11");
    REQUIRE(store->Commit(first).ok());
    listener.refuse = true;
    CHECK_FALSE(store->EndCommitGroup().ok());
    CHECK(Profiles(*store, 1).count("cid") == 0);
  }
}

TEST_CASE("a read waits for a taken commit group to be written, so it sees what was committed") {
  ListenedStore listened;
  StateStore* store = listened.store.get();
  CommitBatch batch(*store);
  store->BeginCommitGroup();
  batch.PutProfile(3, "cal", "encoded");
  batch.SetPosition(3, "7");
  REQUIRE(store->Commit(batch).ok());
  StateStore::CommitGroup group = store->TakeCommitGroup();

  // A processor that evicted "cal" after its commit reads it back while the
  // group is still on its way.
  std::string value;
  bool found = false;
  Status read;
  std::thread reader([&] { read = store->GetProfile(3, "cal", &value, &found); });
  REQUIRE(store->WriteCommitGroup(std::move(group)).ok());
  reader.join();
  REQUIRE(read.ok());
  CHECK(found);
  CHECK(value == "encoded");
  CHECK(*store->GetPosition(3) == "7");
}
