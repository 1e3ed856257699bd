// The outbox dispatcher against a real store (RocksDB in a temp dir) and an
// output that records what it is given. DeliverNow runs the delivery on the
// test's thread, so nothing waits on the dispatcher's own.
#include "rapport/connectors/outbox_dispatcher.h"

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "temp_dir.h"

using rapport::CommitBatch;
using rapport::StateStore;
using rapport::StateStoreOptions;
using rapport::Status;
using rapport::connectors::ActionOutput;
using rapport::connectors::OutboxDispatcher;
using rapport::connectors::OutboxRecord;
using rapport::testing::TempDir;
using Delivered = std::vector<std::pair<uint32_t, uint64_t>>;

namespace {

class RecordingOutput : public ActionOutput {
 public:
  explicit RecordingOutput(Delivered* delivered) : delivered_(delivered) {}
  Status Deliver(std::span<const OutboxRecord> records, const std::atomic<bool>&) override {
    for (const OutboxRecord& r : records) delivered_->emplace_back(r.partition, r.sequence);
    return Status::Ok();
  }
  std::string Describe() const override { return "recording"; }

 private:
  Delivered* delivered_;
};

struct Fixture {
  Fixture() {
    auto opened = StateStore::Open(tmp.File("state"), StateStoreOptions{});
    REQUIRE(opened.ok());
    store = std::move(*opened);
    std::vector<std::unique_ptr<ActionOutput>> outputs;
    outputs.push_back(std::make_unique<RecordingOutput>(&delivered));
    dispatcher = std::make_unique<OutboxDispatcher>(*store, std::move(outputs), [](const std::string&) {});
  }
  void Put(uint32_t partition, uint64_t from, uint64_t to) {
    CommitBatch batch(*store);
    for (uint64_t s = from; s < to; ++s) {
      batch.PutOutbox(partition, s, "c-" + std::to_string(s), false, R"({"action_id":"a"})");
    }
    REQUIRE(store->Commit(batch).ok());
  }
  size_t Waiting() {
    auto n = store->ScanOutbox(0, 0, SIZE_MAX, StateStore::OutboxScope::kOnward, [](const auto&) {});
    REQUIRE(n.ok());
    return *n;
  }
  bool DeliverAll(const std::set<uint32_t>& partitions) {
    return dispatcher->DeliverNow(partitions, std::chrono::seconds(60));
  }

  TempDir tmp;
  std::unique_ptr<StateStore> store;
  Delivered delivered;
  std::unique_ptr<OutboxDispatcher> dispatcher;
};

}  // namespace

TEST_CASE("the dispatcher delivers each owned partition's records once, in order, over many chunks") {
  Fixture f;
  f.Put(0, 0, 3000);
  f.Put(1, 0, 10);
  f.Put(2, 0, 2500);
  f.Put(3, 0, 5);  // not owned
  f.dispatcher->SetPartitions(std::set<uint32_t>{0, 1, 2});
  REQUIRE(f.DeliverAll({0, 1, 2}));
  std::map<uint32_t, uint64_t> next;
  for (const auto& [partition, sequence] : f.delivered) {
    CHECK(partition != 3);
    CHECK(sequence == next[partition]++);
  }
  CHECK(next == std::map<uint32_t, uint64_t>{{0, 3000}, {1, 10}, {2, 2500}});
  CHECK(f.Waiting() == 5);

  // Later records start past the delivered ones' delete markers.
  f.delivered.clear();
  f.Put(1, 10, 12);
  REQUIRE(f.DeliverAll({0, 1, 2}));
  CHECK(f.delivered == Delivered{{1, 10}, {1, 11}});
}

TEST_CASE("records restored below a partition's old floor are delivered when it comes back") {
  Fixture f;
  f.Put(0, 0, 5);
  f.dispatcher->SetPartitions(std::set<uint32_t>{0});
  REQUIRE(f.DeliverAll({0}));
  CHECK(f.delivered.size() == 5);
  f.delivered.clear();
  // The partition moves away and back; its restore brings record 2 back (its
  // delete marker was lost on the way to the changelog) and another
  // instance's record 5.
  f.dispatcher->SetPartitions(std::set<uint32_t>{});
  f.Put(0, 2, 3);
  f.Put(0, 5, 6);
  f.dispatcher->SetPartitions(std::set<uint32_t>{0});
  REQUIRE(f.DeliverAll({0}));
  CHECK(f.delivered == Delivered{{0, 2}, {0, 5}});
  CHECK(f.Waiting() == 0);
}
