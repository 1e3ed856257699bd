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

std::vector<std::string> TableFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst") out.push_back(entry.path().filename().string());
  }
  return out;
}

}  // namespace

// What round `round` of the test below wrote last for customer i.
std::string Latest(int i, int last_round) {
  const int round = i % 3 == 0 ? last_round : std::min(i % 3, last_round);
  return "round " + std::to_string(round);
}

TEST_CASE("a bulk load's commits land as table files, later ones over earlier, compacted to one file per family") {
  TempDir dir;
  const std::string path = dir.File("state");
  {
    rapport::StateStoreOptions options;
    options.bulk_load = true;
    auto store = rapport::StateStore::Open(path, options);
    REQUIRE(store.ok());
    rapport::CommitBatch batch(**store);
    // Three write-backs: round r writes the customers i with i % 3 == r,
    // and rewrites those with i % 3 == 0 every time.
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 3000; ++i) {
        if (i % 3 == 0 || i % 3 == round) batch.PutProfile(0, Customer(i), "round " + std::to_string(round));
      }
      REQUIRE((*store)->Commit(batch).ok());
      // No memtable holds them: table files are in the directory at once
      // (through the memtable, 3,000 small writes would wait for a flush).
      CHECK(TableFiles(path).size() >= static_cast<size_t>(round + 1));
      std::string value;
      bool found = false;
      for (int i : {0, 1, 2, 2997}) {
        REQUIRE((*store)->GetProfile(0, Customer(i), &value, &found).ok());
        CHECK(found == (i % 3 <= round));
        if (found) CHECK(value == Latest(i, round));
      }
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
    // Profiles, and the clock and position: one file each, and no file of
    // the writer's left behind.
    auto files = TableFiles(path);
    CHECK(files.size() == 2);
    for (const std::string& f : files) CHECK(f.rfind("ingest-", 0) != 0);
  }
  rapport::StateStoreOptions options;
  options.read_only = true;
  auto store = rapport::StateStore::Open(path, options);
  REQUIRE(store.ok());
  int profiles = 0;
  REQUIRE((*store)->ForEachProfile(0, [&](std::string_view customer, std::string_view value) {
    const int i = std::stoi(std::string(customer.substr(1)));
    if (i < 3000) CHECK(value == Latest(i, 2));
    ++profiles;
  }).ok());
  CHECK(profiles == 3002);
  auto position = (*store)->GetPosition(0);
  REQUIRE(position.ok());
  CHECK(*position == "events.jsonl:42");
}
