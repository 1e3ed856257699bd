// `rapport replay --threads N` and the bulk load of a fresh state directory:
// whatever the number of threads, the actions are the same bytes and the
// committed state holds the same keys and values as a one-thread replay.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "rapport/connectors/replay.h"
#include "rapport/connectors/store_simulator.h"
#include "rapport/engine/state_store.h"
#include "temp_dir.h"

namespace {

using rapport::testing::ReadFile;
using rapport::testing::SourcePath;
using rapport::testing::TempDir;

// Every key and value a replay leaves in the store, as text.
std::map<std::string, std::string> DumpState(const std::string& dir) {
  rapport::StateStoreOptions options;
  options.read_only = true;
  auto store = rapport::StateStore::Open(dir, options);
  REQUIRE(store.ok());
  std::map<std::string, std::string> out;
  REQUIRE((*store)->ForEachProfile(0, [&](std::string_view customer, std::string_view encoded) {
    out["profile " + std::string(customer)] = std::string(encoded);
  }).ok());
  auto clock = (*store)->GetClock(0);
  REQUIRE(clock.ok());
  REQUIRE(clock->has_value());
  out["clock"] = std::to_string((*clock)->ms);
  auto position = (*store)->GetPosition(0);
  REQUIRE(position.ok());
  out["position"] = *position;
  for (auto kind : {rapport::SymbolKind::kEventType, rapport::SymbolKind::kCampaign, rapport::SymbolKind::kAggregate}) {
    for (uint32_t id = 0;; ++id) {
      std::string name = (*store)->SymbolName(0, kind, id);
      if (name.empty()) break;
      out["symbol " + std::string(1, static_cast<char>(kind)) + std::to_string(id)] = name;
    }
  }
  auto partitions = (*store)->Partitions();
  REQUIRE(partitions.ok());
  CHECK(*partitions == std::vector<uint32_t>{0});
  return out;
}

// The keys whose values differ between two dumps (at most ten, with the
// values' sizes), empty when the dumps are equal: a failure then says where.
std::string StateDiff(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  std::string out;
  int shown = 0;
  auto note = [&](const std::string& line) {
    if (shown++ < 10) out += line + "\n";
  };
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    if (it == b.end()) {
      note("only in the first: " + key);
    } else if (it->second != value) {
      note("differs: " + key + " (" + std::to_string(value.size()) + " vs " + std::to_string(it->second.size()) +
           " bytes)");
    }
  }
  for (const auto& [key, value] : b) {
    if (!a.count(key)) note("only in the second: " + key);
  }
  if (shown > 10) out += std::to_string(shown - 10) + " more\n";
  return out;
}

struct Run {
  std::string actions;
  std::map<std::string, std::string> state;
  rapport::connectors::ReplaySummary summary;
};

Run Replay(const TempDir& dir, const std::string& name, const std::string& events, const std::string& rules,
           unsigned threads) {
  auto loaded = rapport::rules::LoadRules({SourcePath(rules)});
  REQUIRE(loaded.rules);
  rapport::connectors::ReplayOptions options;
  options.events_path = events;
  options.state_dir = dir.File(name + "-state");
  options.dead_letter_path = dir.File(name + "-dead.jsonl");
  options.coupon_secret = "s";
  // Write-backs every few hundred changed profiles, and evictions, so that
  // profiles round-trip through RocksDB.
  options.cache_capacity = 400;
  options.threads = threads;
  const std::string out = dir.File(name + "-actions.jsonl");
  Run run;
  {
    auto sink = rapport::connectors::JsonlActionSink::Open(out);
    REQUIRE(sink.ok());
    auto summary = rapport::connectors::RunReplay(options, loaded.rules, **sink);
    REQUIRE(summary.ok());
    REQUIRE((*sink)->Flush().ok());
    run.summary = *summary;
  }
  run.actions = ReadFile(out);
  run.state = DumpState(options.state_dir);
  CHECK(ReadFile(dir.File(name + "-dead.jsonl")) == ReadFile(dir.File("t1-" + rules.substr(rules.rfind('/') + 1) +
                                                                       "-dead.jsonl")));
  return run;
}

// A generated store with malformed lines, plus events the generator does not
// write: types no rule knows (they get symbols in order of arrival), events
// out of time order (which arm timers already due) and equal times.
std::string MakeEvents(const TempDir& dir) {
  const std::string path = dir.File("events.jsonl");
  rapport::connectors::StoreSimulatorOptions sim;
  sim.customers = 1500;
  sim.days = 100;
  sim.seed = 5;
  sim.bad_rate = 0.01;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  rapport::connectors::GenerateStats stats;
  REQUIRE(rapport::connectors::WriteStoreEvents(sim, f, &stats).ok());
  for (int i = 0; i < 40; ++i) {
    std::fprintf(f,
                 "{\"type\":\"wish-%d\",\"customer_id\":\"c-%d\",\"ts\":\"2026-04-0%dT10:00:00Z\"}\n"
                 "{\"type\":\"purchase\",\"customer_id\":\"late-%d\",\"ts\":\"2026-01-0%dT10:00:00Z\",\"amount\":%d}\n"
                 "{\"type\":\"purchase\",\"customer_id\":\"late-%d\",\"ts\":\"2026-01-0%dT11:00:00Z\",\"amount\":5}\n"
                 "{\"type\":\"purchase\",\"customer_id\":\"late-%d\",\"ts\":\"2026-01-0%dT12:00:00Z\",\"amount\":5}\n"
                 "{\"type\":\"visit\",\"customer_id\":\"c-%d\",\"ts\":\"2026-05-01T00:00:00Z\"}\n",
                 i % 7, i * 13, 1 + i % 9, i, 1 + i % 9, 10 + i, i, 1 + i % 9, i, 1 + i % 9, i * 7);
  }
  std::fclose(f);
  return path;
}

}  // namespace

TEST_CASE("replay with several threads gives the one-thread actions and state, byte for byte") {
  TempDir dir;
  const std::string events = MakeEvents(dir);
  for (const std::string rules : {"rules/packs/relationship", "bench/packs/fifty"}) {
    INFO(rules);
    const std::string pack = rules.substr(rules.rfind('/') + 1);
    Run one = Replay(dir, "t1-" + pack, events, rules, 1);
    CHECK(one.summary.threads == 1);
    CHECK(one.summary.bulk_load);
    CHECK(one.summary.rejected > 0);
    CHECK(one.summary.processor.timers_fired > 100);
    CHECK(one.summary.processor.commits > 1);
    REQUIRE(one.actions.size() > 1000);
    for (unsigned threads : {2u, 3u, 8u}) {
      INFO(threads << " threads");
      Run many = Replay(dir, "t" + std::to_string(threads) + "-" + pack, events, rules, threads);
      CHECK(many.summary.threads == threads);
      CHECK(many.actions == one.actions);
      CHECK(StateDiff(one.state, many.state) == "");
      CHECK(many.summary.lines == one.summary.lines);
      CHECK(many.summary.accepted == one.summary.accepted);
      CHECK(many.summary.processor.events == one.summary.processor.events);
      CHECK(many.summary.processor.timers_fired == one.summary.processor.timers_fired);
      // Each processor writes back when its share of the cache fills.
      CHECK(many.summary.processor.commits > threads);
      CHECK(many.summary.customers_with_timers == one.summary.customers_with_timers);
      CHECK(many.summary.final_clock.value().ms == one.summary.final_clock.value().ms);
      for (const auto& [id, counters] : one.summary.processor.campaigns) {
        INFO(id);
        const auto& other = many.summary.processor.campaigns.at(id);
        CHECK(other.fired == counters.fired);
        CHECK(other.held_out == counters.held_out);
        CHECK(other.conversions == counters.conversions);
        for (size_t k = 0; k < rapport::kSuppressionCount; ++k) CHECK(other.suppressed[k] == counters.suppressed[k]);
      }
    }
  }
}

TEST_CASE("a replay into a store that holds state runs one thread and writes through the log") {
  TempDir dir;
  const std::string events = MakeEvents(dir);
  auto loaded = rapport::rules::LoadRules({SourcePath("rules/packs/relationship")});
  REQUIRE(loaded.rules);
  rapport::connectors::ReplayOptions options;
  options.events_path = events;
  options.state_dir = dir.File("state");
  options.coupon_secret = "s";
  options.threads = 4;
  auto sink = rapport::connectors::JsonlActionSink::Open(dir.File("first.jsonl"));
  REQUIRE(sink.ok());
  auto first = rapport::connectors::RunReplay(options, loaded.rules, **sink);
  REQUIRE(first.ok());
  CHECK(first->threads == 4);
  CHECK(first->bulk_load);
  // The bulk load is durable once the replay returns: a new open sees it.
  const auto state = DumpState(options.state_dir);
  CHECK(state.size() > 1500);

  auto again = rapport::connectors::JsonlActionSink::Open(dir.File("second.jsonl"));
  REQUIRE(again.ok());
  auto second = rapport::connectors::RunReplay(options, loaded.rules, **again);
  REQUIRE(second.ok());
  CHECK(second->threads == 1);
  CHECK_FALSE(second->bulk_load);
  CHECK(second->processor.profiles_created == 0);  // every customer was there already
}

TEST_CASE("a bulk load leaves the state a replay through the write-ahead log leaves") {
  TempDir dir;
  const std::string events = MakeEvents(dir);
  auto loaded = rapport::rules::LoadRules({SourcePath("rules/packs/relationship")});
  REQUIRE(loaded.rules);
  std::map<std::string, std::string> states[2];
  std::string actions[2];
  for (int bulk = 0; bulk < 2; ++bulk) {
    rapport::connectors::ReplayOptions options;
    options.events_path = events;
    options.state_dir = dir.File("state-" + std::to_string(bulk));
    options.coupon_secret = "s";
    options.cache_capacity = 400;  // write-backs and commits every few hundred profiles
    options.commit_every = 500;
    // A directory with something in it is no fresh one: the replay commits
    // through the log as it goes.
    std::filesystem::create_directories(options.state_dir);
    if (!bulk) std::fclose(std::fopen((options.state_dir + "/notes.txt").c_str(), "w"));
    const std::string out = dir.File("actions-" + std::to_string(bulk) + ".jsonl");
    {
      auto sink = rapport::connectors::JsonlActionSink::Open(out);
      REQUIRE(sink.ok());
      auto summary = rapport::connectors::RunReplay(options, loaded.rules, **sink);
      REQUIRE(summary.ok());
      CHECK(summary->bulk_load == (bulk == 1));
      CHECK(summary->processor.commits > 3);
      REQUIRE((*sink)->Flush().ok());
    }
    actions[bulk] = ReadFile(out);
    states[bulk] = DumpState(options.state_dir);
  }
  CHECK(actions[0].size() > 1000);
  CHECK(actions[1] == actions[0]);
  CHECK(states[1].size() > 1500);
  CHECK(states[1] == states[0]);
}
