// A bulk load (StateStoreOptions::bulk_load) writes its commits as table
// files linked into the store instead of through the memtables, and its
// final Compact() leaves each family in one file on the last level.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "rapport/engine/state_store.h"
#include "temp_dir.h"

namespace {

using rapport::testing::TempDir;

std::string Customer(int i) {
  char id[16];
  std::snprintf(id, sizeof id, "c%06d", i);
  return id;
}

std::string TimerKey(int64_t due, const std::string& customer) {
  std::string key;
  rapport::AppendTimerKey(&key, 0, rapport::EventTime{due}, customer);
  return key;
}

std::vector<std::string> TableFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst") out.push_back(entry.path().filename().string());
  }
  return out;
}

}  // namespace

TEST_CASE("a bulk load's commits land as table files, deletes included, and compact into one file per family") {
  TempDir dir;
  const std::string path = dir.File("state");
  {
    rapport::StateStoreOptions options;
    options.bulk_load = true;
    auto store = rapport::StateStore::Open(path, options);
    REQUIRE(store.ok());
    rapport::CommitBatch batch(**store);
    // Three write-backs: each rewrites every third customer's profile and
    // moves its timer, deleting the key the write-back before it wrote.
    for (int round = 0; round < 3; ++round) {
      for (int i = round; i < 3000; i += 3) {
        batch.PutProfile(0, Customer(i), "round " + std::to_string(round));
      }
      for (int i = 0; i < 3000; i += 3) {
        if (round > 0) batch.DeleteTimer(TimerKey(round - 1, Customer(i)));
      }
      for (int i = 0; i < 3000; i += 3) batch.PutTimer(TimerKey(round, Customer(i)));
      REQUIRE((*store)->Commit(batch).ok());
      // No memtable holds them: table files are in the directory at once
      // (through the memtable, 3,000 small writes would wait for a flush).
      CHECK(TableFiles(path).size() >= static_cast<size_t>(round + 1));
      std::string value;
      bool found = false;
      REQUIRE((*store)->GetProfile(0, Customer(round), &value, &found).ok());
      CHECK(found);
      CHECK(value == "round " + std::to_string(round));
    }
    // Keys out of order (a writer that does not sort) still land: those a
    // table file cannot take go through the memtable.
    batch.PutProfile(0, Customer(5000), "late");
    batch.PutProfile(0, Customer(4000), "later, lower key");
    REQUIRE((*store)->Commit(batch).ok());
    for (int i : {4000, 5000}) {
      std::string value;
      bool found = false;
      REQUIRE((*store)->GetProfile(0, Customer(i), &value, &found).ok());
      CHECK(found);
      CHECK(value == (i == 4000 ? "later, lower key" : "late"));
    }
    batch.SetClock(0, rapport::EventTime{2});
    batch.SetPosition(0, "events.jsonl:42");
    REQUIRE((*store)->Commit(batch).ok());
    REQUIRE((*store)->Flush().ok());
    REQUIRE((*store)->Compact().ok());
    // Profiles, timers and the clock and position: one file each, and no
    // file of the writer's left behind.
    auto files = TableFiles(path);
    CHECK(files.size() == 3);
    for (const std::string& f : files) CHECK(f.rfind("ingest-", 0) != 0);
  }
  rapport::StateStoreOptions options;
  options.read_only = true;
  auto store = rapport::StateStore::Open(path, options);
  REQUIRE(store.ok());
  int profiles = 0;
  REQUIRE((*store)->ForEachProfile(0, [&](std::string_view customer, std::string_view value) {
    const int i = std::stoi(std::string(customer.substr(1)));
    if (i < 3000) CHECK(value == "round " + std::to_string(i % 3));
    ++profiles;
  }).ok());
  CHECK(profiles == 3002);
  std::vector<std::string> timers;
  REQUIRE((*store)->ForEachTimer(0, [&](std::string_view key) { timers.emplace_back(key); }).ok());
  REQUIRE(timers.size() == 1000);
  CHECK(timers.front() == TimerKey(2, Customer(0)));
  CHECK(timers.back() == TimerKey(2, Customer(2997)));
  auto position = (*store)->GetPosition(0);
  REQUIRE(position.ok());
  CHECK(*position == "events.jsonl:42");
}
