// `rapport state get` and `rapport state stats` on a state directory that a
// real replay wrote.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "rapport/engine/profile.h"
#include "rapport/engine/state_store.h"
#include "temp_dir.h"

using namespace rapport::testing;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// ann: two purchases and a referral; bob: one visit. Replayed through the
// standard pack plus two aggregates into tmp/state.
struct ReplayedState {
  TempDir tmp;
  std::string state = tmp.File("state");
  std::string rules = " --rules " + Quote(SourcePath("rules/packs/relationship")) + " --rules " + tmp.File("agg.yaml");

  ReplayedState() {
    WriteFile(tmp.File("agg.yaml"),
              "version: 1\n"
              "aggregates:\n"
              "  spend_window: {function: sum, event: purchase, field: amount, window: 18d12h}\n"
              "  orders: {function: count, event: purchase}\n");
    WriteFile(tmp.File("events.jsonl"),
              "{\"type\":\"visit\",\"customer_id\":\"ann\",\"ts\":\"2026-01-01T10:00:00Z\"}\n"
              "{\"type\":\"purchase\",\"customer_id\":\"ann\",\"ts\":\"2026-01-02T10:00:00Z\",\"amount\":42.5}\n"
              "{\"type\":\"visit\",\"customer_id\":\"bob\",\"ts\":\"2026-01-03T10:00:00Z\"}\n"
              "{\"type\":\"purchase\",\"customer_id\":\"ann\",\"ts\":\"2026-01-20T10:00:00Z\",\"amount\":10.25}\n"
              "{\"type\":\"referral\",\"customer_id\":\"ann\",\"ts\":\"2026-01-21T10:00:00Z\"}\n");
    REQUIRE(RunCommand(RapportBinary() + " replay --quiet --coupon-secret s" + rules + " --events " +
                       tmp.File("events.jsonl") + " --state " + state + " --out " + tmp.File("actions.jsonl")) == 0);
  }
};

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string() + ":" + std::to_string(e.is_regular_file() ? e.file_size() : 0));
  }
  return names;
}

}  // namespace

TEST_CASE("state get prints a customer's profile with names, and with --rules the stage and aggregate values") {
  ReplayedState s;
  std::string out;
  REQUIRE(RunCommand(RapportBinary() + " state get ann --state " + s.state + s.rules, &out) == 0);
  CHECK(out.find("\n  \"customer_id\": \"ann\",\n") != std::string::npos);  // indented for people
  simdjson::dom::parser parser;
  simdjson::dom::element p = parser.parse(out);
  CHECK(std::string_view(p["customer_id"]) == "ann");
  CHECK(int64_t(p["partition"]) == 0);
  CHECK(std::string_view(p["first_seen"]) == "2026-01-01T10:00:00.000Z");
  CHECK(std::string_view(p["last_seen"]) == "2026-01-21T10:00:00.000Z");
  CHECK(double(p["total_spent"]) == 52.75);
  CHECK(std::string_view(p["stage"]) == "advocate");
  CHECK(int64_t(p["stage_index"]) == 4);
  CHECK(int64_t(p["events"]["purchase"]["count"]) == 2);
  CHECK(std::string_view(p["events"]["purchase"]["last"]) == "2026-01-20T10:00:00.000Z");
  CHECK(int64_t(p["events"]["referral"]["count"]) == 1);
  // The window ends at the stream clock (Jan 21): the purchase of Jan 2, still
  // stored (it was inside the window when Jan 20 came), no longer counts.
  CHECK(std::string_view(p["aggregates"]["spend_window"]["function"]) == "sum");
  CHECK(std::string_view(p["aggregates"]["spend_window"]["window"]) == "18d12h");
  CHECK(double(p["aggregates"]["spend_window"]["value"]) == 10.25);
  CHECK(simdjson::dom::array(p["aggregates"]["spend_window"]["window_entries"]).size() == 2);
  CHECK(int64_t(p["aggregates"]["orders"]["value"]) == 2);
  simdjson::dom::element thanks = p["campaigns"]["post-purchase-thank-you"];
  CHECK(int64_t(thanks["fired"]) == 1);
  CHECK(std::string_view(thanks["last_fired"]) == "2026-01-02T10:00:00.000Z");
  CHECK(simdjson::dom::array(thanks["recent_firings"]).size() == 0);  // kept only for `at_most` caps
  CHECK(thanks["armed_due"].is_null());

  // Without rules: the stage index, and aggregates as stored (hundredths).
  REQUIRE(RunCommand(RapportBinary() + " state get ann --compact --state " + s.state + " --partition 0", &out) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  p = parser.parse(out);
  CHECK(p["stage"].error() == simdjson::NO_SUCH_FIELD);
  CHECK(int64_t(p["stage_index"]) == 4);
  CHECK(int64_t(p["aggregates"]["orders"]["stored"]) == 2);
  CHECK(p["aggregates"]["spend_window"]["stored"].is_null());  // windowed: only the entries count
  CHECK(simdjson::dom::array(p["aggregates"]["spend_window"]["window_entries"]).at(1).at(1).get_int64().value() ==
        1025);

  // bob has the lapsed-visitor inactivity timer armed.
  REQUIRE(RunCommand(RapportBinary() + " state get bob --compact --state " + s.state, &out) == 0);
  p = parser.parse(out);
  CHECK(std::string_view(p["campaigns"]["lapsed-visitor"]["armed_due"]) == "2026-02-02T10:00:00.000Z");
  CHECK(int64_t(p["campaigns"]["lapsed-visitor"]["fired"]) == 0);
}

TEST_CASE("state get says clearly when the customer or the state is missing") {
  ReplayedState s;
  std::string out;
  CHECK(RunCommand(RapportBinary() + " state get nobody --state " + s.state + " 2>&1", &out) == 1);
  CHECK(out == "rapport state get: no customer `nobody` in " + s.state + " (partition 0)\n");
  CHECK(RunCommand(RapportBinary() + " state get ann --partition 7 --state " + s.state + " 2>&1", &out) == 1);
  CHECK(out.find("no customer `ann`") != std::string::npos);
  CHECK(RunCommand(RapportBinary() + " state get ann --state " + s.tmp.File("nothing-here") + " 2>&1", &out) == 2);
  CHECK(out.find("is not a Rapport state directory") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(s.tmp.File("nothing-here")));  // read-only: nothing created
  CHECK(RunCommand(RapportBinary() + " state get --state " + s.state + " 2>/dev/null") == 2);  // no customer id
}

TEST_CASE("state stats counts customers, stages, timers and bytes, as text and JSON") {
  ReplayedState s;
  std::string out;
  REQUIRE(RunCommand(RapportBinary() + " state stats --format json --state " + s.state + s.rules, &out) == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element st = parser.parse(out);
  CHECK(int64_t(st["customers"]) == 2);
  CHECK(int64_t(st["pending_timers"]) == 2);  // lapsed-visitor for ann and bob
  CHECK(int64_t(st["outbox_waiting"]) == 0);
  CHECK(int64_t(st["stages"]["advocate"]) == 1);
  CHECK(int64_t(st["stages"]["prospect"]) == 1);
  CHECK(int64_t(st["bytes"]["profiles"]) > 0);
  CHECK(int64_t(st["bytes"]["directory"]) > int64_t(st["bytes"]["profiles"]));
  CHECK(double(st["encoded_bytes_per_customer"]) > 10);
  simdjson::dom::array partitions = st["partitions"];
  REQUIRE(partitions.size() == 1);
  CHECK(int64_t(partitions.at(0)["partition"]) == 0);
  CHECK(int64_t(partitions.at(0)["customers"]) == 2);
  CHECK(std::string_view(partitions.at(0)["clock"]) == "2026-01-21T10:00:00.000Z");
  CHECK(std::string_view(partitions.at(0)["position"]).find("events.jsonl:") != std::string_view::npos);

  REQUIRE(RunCommand(RapportBinary() + " state stats --state " + s.state, &out) == 0);
  CHECK(out.find("state " + s.state + "\n") == 0);
  CHECK(out.find("\n  0                   2           2           0  2026-01-21T10:00:00.000Z  ") != std::string::npos);
  CHECK(out.find("customers by stage (stage index; pass --rules for names)\n  0                              1\n"
                 "  4                              1\n") != std::string::npos);
  CHECK(out.find("per customer") != std::string::npos);
}

TEST_CASE("state commands read a store that a running rapport holds, and change nothing in it") {
  ReplayedState s;
  const std::set<std::string> before = FilesIn(s.state);
  {
    // This process holds the store, as `rapport run` would.
    auto held = rapport::StateStore::Open(s.state, rapport::StateStoreOptions{});
    REQUIRE(held.ok());
    auto second = rapport::StateStore::Open(s.state, rapport::StateStoreOptions{});
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().message().find("is in use by a running rapport") != std::string::npos);

    std::string out;
    CHECK(RunCommand(RapportBinary() + " state stats --state " + s.state + " --format json", &out) == 0);
    CHECK(out.find("\"customers\":2") != std::string::npos);
    CHECK(RunCommand(RapportBinary() + " state get bob --state " + s.state + " >/dev/null") == 0);
  }
  // The read-write open above may have rewritten RocksDB's own files; the
  // read-only commands alone must leave everything as it is.
  const std::set<std::string> after_writer = FilesIn(s.state);
  REQUIRE(RunCommand(RapportBinary() + " state stats --state " + s.state + " >/dev/null") == 0);
  REQUIRE(RunCommand(RapportBinary() + " state get ann --state " + s.state + " >/dev/null") == 0);
  CHECK(FilesIn(s.state) == after_writer);
  CHECK_FALSE(before.empty());
}

TEST_CASE("state get and stats look in every partition") {
  TempDir tmp;
  const std::string dir = tmp.File("state");
  {
    auto store = rapport::StateStore::Open(dir, rapport::StateStoreOptions{});
    REQUIRE(store.ok());
    // Symbols are per partition: both partitions name type 0 `visit`.
    auto visit = (*store)->Symbol(3, rapport::SymbolKind::kEventType, "visit");
    REQUIRE(visit.ok());
    auto visit_in_7 = (*store)->Symbol(7, rapport::SymbolKind::kEventType, "visit");
    REQUIRE(visit_in_7.ok());
    REQUIRE(*visit_in_7 == *visit);
    rapport::Profile profile;
    profile.first_seen_ms = profile.last_seen_ms = 1767261600000;  // 2026-01-01T10:00:00Z
    profile.Type(*visit).count = 1;
    profile.Type(*visit).last_ms = profile.last_seen_ms;
    std::string encoded;
    rapport::EncodeProfile(profile, &encoded);
    rapport::CommitBatch batch(**store);
    batch.PutProfile(3, "zed", encoded);
    batch.PutProfile(7, "zed", encoded);  // a customer whose events went to two partitions
    batch.PutProfile(7, "amy", encoded);
    batch.SetClock(9, rapport::EventTime{profile.last_seen_ms});  // a partition with a clock only
    REQUIRE((*store)->Commit(batch).ok());
  }
  simdjson::dom::parser parser;
  std::string out;
  REQUIRE(RunCommand(RapportBinary() + " state get zed --compact --state " + dir, &out) == 0);
  simdjson::dom::array both = parser.parse(out);
  REQUIRE(both.size() == 2);
  CHECK(int64_t(both.at(0)["partition"]) == 3);
  CHECK(int64_t(both.at(1)["partition"]) == 7);
  CHECK(int64_t(both.at(1)["events"]["visit"]["count"]) == 1);
  REQUIRE(RunCommand(RapportBinary() + " state get amy --compact --state " + dir, &out) == 0);
  CHECK(int64_t(parser.parse(out)["partition"]) == 7);
  CHECK(RunCommand(RapportBinary() + " state get bob --state " + dir + " 2>&1", &out) == 1);
  CHECK(out.find("(partitions 3, 7, 9)") != std::string::npos);

  REQUIRE(RunCommand(RapportBinary() + " state stats --format json --state " + dir, &out) == 0);
  simdjson::dom::element stats = parser.parse(out);
  CHECK(int64_t(stats["customers"]) == 3);
  simdjson::dom::array partitions = stats["partitions"];
  REQUIRE(partitions.size() == 3);
  CHECK(int64_t(partitions.at(0)["customers"]) == 1);
  CHECK(int64_t(partitions.at(1)["customers"]) == 2);
  CHECK(int64_t(partitions.at(2)["partition"]) == 9);
  CHECK(int64_t(partitions.at(2)["customers"]) == 0);
  CHECK(std::string_view(partitions.at(2)["clock"]) == "2026-01-01T10:00:00.000Z");
  CHECK(partitions.at(2)["position"].is_null());
}
