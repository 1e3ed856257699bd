// The processor against real RocksDB: each trigger kind, delays with
// re-checks, limits, holdout, group priority, timer order, restarts.
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <optional>

#include "engine_harness.h"

using rapport::testing::EngineHarness;
using Strings = std::vector<std::string>;

namespace {

std::string Ev(const std::string& type, const std::string& customer, const std::string& ts,
               const std::string& extra = "") {
  std::string s = R"({"type":")" + type + R"(","customer_id":")" + customer + R"(","ts":")" + ts + "\"";
  if (type == "purchase" && extra.find("amount") == std::string::npos) s += R"(,"amount":10)";
  if (!extra.empty()) s += "," + extra;
  return s + "}";
}

const char* kAction = R"(
    actions:
      - channel: email
        template: t)";

}  // namespace

TEST_CASE("an event trigger fires at the event's time when the condition holds") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: big-spender
    trigger: {event: purchase}
    condition: event.amount >= 100)") + kAction);
  h.Send(Ev("purchase", "a", "2026-01-01T10:00:00Z", R"("amount":99.99)"));
  h.Send(Ev("purchase", "b", "2026-01-01T11:00:00Z", R"("amount":100)"));
  h.Send(Ev("visit", "b", "2026-01-01T12:00:00Z"));
  CHECK(h.Fired() == Strings{"big-spender b 2026-01-01T11:00:00.000Z"});
}

TEST_CASE("a missing field makes a condition unknown, and unknown never fires, even under not") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: no-coupon
    trigger: {event: purchase}
    condition: not (event.coupon == "SPRING"))") + kAction);
  h.Send(Ev("purchase", "has-other", "2026-01-01T10:00:00Z", R"("coupon":"OTHER")"));
  h.Send(Ev("purchase", "has-none", "2026-01-01T11:00:00Z"));
  h.Send(Ev("purchase", "has-spring", "2026-01-01T12:00:00Z", R"("coupon":"SPRING")"));
  CHECK(h.Fired() == Strings{"no-coupon has-other 2026-01-01T10:00:00.000Z"});
}

TEST_CASE("an inactivity timer fires at last event + duration, once per lapse, re-armed by the next event") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 30d}
    condition: customer.visits >= 2)") + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "a", "2026-01-10T00:00:00Z"));   // replaces the timer: due Feb 9
  h.Send(Ev("visit", "solo", "2026-01-10T00:00:00Z"));  // one visit: its timer fires silently
  h.Send(Ev("cart", "z", "2026-03-01T00:00:00Z"));     // moves the clock past both
  CHECK(h.Fired() == Strings{"lapsed a 2026-02-09T00:00:00.000Z"});
  h.Send(Ev("visit", "a", "2026-03-02T00:00:00Z"));    // comes back: a new lapse can fire
  h.AdvanceTo("2026-04-01T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed a 2026-02-09T00:00:00.000Z", "lapsed a 2026-04-01T00:00:00.000Z"});
  CHECK(h.processor->stats().timers_fired == 3);
}

TEST_CASE("a timer due exactly at an event's time fires before that event is applied") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1d}
    condition: customer.visits == 1)") + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "a", "2026-01-02T00:00:00Z"));  // the timer is due now: it sees visits == 1
  CHECK(h.Fired() == Strings{"lapsed a 2026-01-02T00:00:00.000Z"});
}

TEST_CASE("timers fire in (due, customer, campaign) order") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: b-second
    trigger:
      inactivity: {event: visit, for: 1h})") + kAction + R"(
  - id: a-first
    trigger:
      inactivity: {event: visit, for: 1h})" + kAction);
  h.Send(Ev("visit", "c2", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "c1", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "c0", "2026-01-01T00:30:00Z"));
  h.AdvanceTo("2026-01-02T00:00:00Z");
  CHECK(h.Fired() == Strings{"a-first c1 2026-01-01T01:00:00.000Z", "b-second c1 2026-01-01T01:00:00.000Z",
                             "a-first c2 2026-01-01T01:00:00.000Z", "b-second c2 2026-01-01T01:00:00.000Z",
                             "a-first c0 2026-01-01T01:30:00.000Z", "b-second c0 2026-01-01T01:30:00.000Z"});
}

TEST_CASE("a timer moved later fires at its new due, in (due, customer, campaign) order") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1h})") + kAction);
  h.Send(Ev("visit", "c1", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "c1", "2026-01-01T00:30:00Z"));  // moves c1's timer to 01:30
  h.Send(Ev("visit", "c0", "2026-01-01T00:30:00Z"));
  h.Send(Ev("visit", "c2", "2026-01-01T00:10:00Z"));
  h.Send(Ev("visit", "c2", "2026-01-01T00:20:00Z"));
  h.Send(Ev("visit", "c2", "2026-01-01T01:05:00Z"));  // its 01:00 and 01:20 timers never fire
  h.AdvanceTo("2026-01-01T01:10:00Z");
  CHECK(h.Fired().empty());
  h.AdvanceTo("2026-01-02T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed c0 2026-01-01T01:30:00.000Z", "lapsed c1 2026-01-01T01:30:00.000Z",
                             "lapsed c2 2026-01-01T02:05:00.000Z"});
  CHECK(h.processor->stats().timers_fired == 3);
  CHECK(h.processor->customers_with_timers() == 0);
}

TEST_CASE("a cache smaller than the customers evicts committed profiles and reads them back") {
  const std::string long_id = "customer-with-an-id-longer-than-a-timer-entry-holds";
  EngineHarness h(std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1d}
    condition: customer.visits >= 2)") + kAction,
                  "", 2);
  for (const std::string& c : {std::string("a"), std::string("b"), long_id, std::string("d")}) {
    h.Send(Ev("visit", c, "2026-01-01T00:00:00Z"));
    h.Commit();  // beyond 2 profiles, a commit evicts
  }
  for (const std::string& c : {std::string("a"), long_id, std::string("d")}) {
    h.Send(Ev("visit", c, "2026-01-01T06:00:00Z"));  // a second visit: read back if evicted
    h.Commit();
  }
  h.AdvanceTo("2026-01-03T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed a 2026-01-02T06:00:00.000Z", "lapsed " + long_id + " 2026-01-02T06:00:00.000Z",
                             "lapsed d 2026-01-02T06:00:00.000Z"});
  CHECK(h.processor->stats().profiles_created == 4);
  CHECK(h.processor->stats().profiles_loaded >= 1);
  CHECK(h.StoredProfile(long_id).types.at(0).count == 2);
}

TEST_CASE("a delay re-checks its condition when it ends") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: ask
    trigger: {event: purchase}
    condition: customer.purchases == 3
    delay:
      for: 2d
      recheck: customer.referrals == 0)") + kAction);
  for (const char* who : {"keeps-quiet", "refers"}) {
    h.Send(Ev("purchase", who, "2026-01-01T00:00:00Z"));
    h.Send(Ev("purchase", who, "2026-01-02T00:00:00Z"));
    h.Send(Ev("purchase", who, "2026-01-03T00:00:00Z"));
  }
  h.Send(Ev("referral", "refers", "2026-01-04T00:00:00Z", R"("referred_customer_id":"x")"));
  h.Send(Ev("purchase", "keeps-quiet", "2026-01-04T12:00:00Z"));  // a 4th purchase does not re-trigger
  h.AdvanceTo("2026-02-01T00:00:00Z");
  CHECK(h.Fired() == Strings{"ask keeps-quiet 2026-01-05T00:00:00.000Z"});
  CHECK(h.processor->stats().campaigns.at("ask").suppressed[static_cast<int>(rapport::Suppression::kRecheck)] == 1);
}

TEST_CASE("a delay not yet over at the end of the stream does not fire") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: later
    trigger: {event: visit}
    delay: {for: 1d})") + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.AdvanceTo("2026-01-01T23:59:59.999Z");
  CHECK(h.Fired().empty());
  h.AdvanceTo("2026-01-02T00:00:00Z");
  CHECK(h.Fired() == Strings{"later a 2026-01-02T00:00:00.000Z"});
}

TEST_CASE("entering a ladder stage triggers stage campaigns once, with custom thresholds") {
  EngineHarness h(std::string(R"(
ladder:
  - stage: prospect
  - stage: customer
    when: customer.purchases >= 1
  - stage: regular
    when: customer.purchases >= 2 and customer.total_spent >= 50
campaigns:
  - id: welcome-regular
    trigger: {stage: regular})") + kAction);
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z", R"("amount":30)"));
  h.Send(Ev("purchase", "a", "2026-01-02T00:00:00Z", R"("amount":10)"));  // 2 purchases, 40 spent
  h.Send(Ev("purchase", "a", "2026-01-03T00:00:00Z", R"("amount":10.5)"));  // enters `regular`
  h.Send(Ev("purchase", "a", "2026-01-04T00:00:00Z", R"("amount":10)"));  // still regular: no new entry
  CHECK(h.Fired() == Strings{"welcome-regular a 2026-01-03T00:00:00.000Z"});
  REQUIRE(h.sink.actions.size() == 1);
  CHECK(h.sink.actions[0].json.find(R"("trigger":{"kind":"stage","stage":"regular","event_type":"purchase"},)") !=
        std::string::npos);
  h.Commit();
  auto p = h.StoredProfile("a");
  CHECK(p.stage == 2);
  CHECK(p.total_spent_cents == 6050);
}

TEST_CASE("the default ladder is the one docs/rule-language.md describes") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: stage-report
    trigger: {event: visit}
    condition: customer.stage == "x")") + kAction);
  auto stage_of = [&](const std::string& who) {
    h.Commit();
    return h.rules->ladder[h.StoredProfile(who).stage].name;
  };
  h.Send(Ev("visit", "v", "2026-01-01T00:00:00Z"));
  CHECK(stage_of("v") == "prospect");
  h.Send(Ev("purchase", "v", "2026-01-01T01:00:00Z"));
  CHECK(stage_of("v") == "customer");
  h.Send(Ev("purchase", "v", "2026-01-01T02:00:00Z"));
  CHECK(stage_of("v") == "client");
  h.Send(Ev("purchase", "v", "2026-01-01T03:00:00Z"));
  CHECK(stage_of("v") == "supporter");
  h.Send(Ev("referral", "v", "2026-01-01T04:00:00Z", R"("referred_customer_id":"r1")"));
  CHECK(stage_of("v") == "advocate");
  h.Send(Ev("referral", "v", "2026-01-01T05:00:00Z", R"("referred_customer_id":"r2")"));
  h.Send(Ev("referral", "v", "2026-01-01T06:00:00Z", R"("referred_customer_id":"r3")"));
  CHECK(stage_of("v") == "advocate");  // 3 referrals but only 3 purchases
  h.Send(Ev("purchase", "v", "2026-01-01T07:00:00Z"));
  h.Send(Ev("purchase", "v", "2026-01-01T08:00:00Z"));
  CHECK(stage_of("v") == "partner");
}

TEST_CASE("limits: once per customer, cooldown, at most N per window") {
  SECTION("once_per_customer") {
    EngineHarness h(std::string(R"(
campaigns:
  - id: once
    trigger: {event: visit}
    limits: {once_per_customer: true})") + kAction);
    h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
    h.Send(Ev("visit", "a", "2026-03-01T00:00:00Z"));
    h.Restart();  // the limit history survives a restart
    h.Send(Ev("visit", "a", "2026-05-01T00:00:00Z"));
    CHECK(h.Fired() == Strings{"once a 2026-01-01T00:00:00.000Z"});
  }
  SECTION("cooldown") {
    EngineHarness h(std::string(R"(
campaigns:
  - id: cool
    trigger: {event: visit}
    limits: {cooldown: 7d})") + kAction);
    h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
    h.Send(Ev("visit", "a", "2026-01-07T23:59:59Z"));
    h.Send(Ev("visit", "a", "2026-01-08T00:00:00Z"));
    CHECK(h.Fired() == Strings{"cool a 2026-01-01T00:00:00.000Z", "cool a 2026-01-08T00:00:00.000Z"});
    CHECK(h.processor->stats().campaigns.at("cool").suppressed[static_cast<int>(rapport::Suppression::kCooldown)] == 1);
  }
  SECTION("at_most") {
    EngineHarness h(std::string(R"(
campaigns:
  - id: capped
    trigger: {event: visit}
    limits:
      at_most: {count: 2, per: 10d})") + kAction);
    for (const char* day : {"01", "02", "03", "10", "11", "12"}) {
      h.Send(Ev("visit", "a", std::string("2026-01-") + day + "T00:00:00Z"));
    }
    // Jan 1 and 2 fire; 3 and 10 are capped (two in the last 10 days); 11 is
    // more than 10 days after Jan 1, 12 after Jan 2.
    CHECK(h.Fired() == Strings{"capped a 2026-01-01T00:00:00.000Z", "capped a 2026-01-02T00:00:00.000Z",
                               "capped a 2026-01-11T00:00:00.000Z", "capped a 2026-01-12T00:00:00.000Z"});
  }
}

TEST_CASE("holdout is deterministic per customer, recorded with held_out and counted") {
  std::string rules = std::string(R"(
campaigns:
  - id: half
    trigger: {event: visit}
    holdout: 50%)") + kAction;
  EngineHarness first(rules), second(rules);
  for (int i = 0; i < 400; ++i) {
    std::string e = Ev("visit", "c" + std::to_string(i), "2026-01-01T00:00:00Z");
    first.Send(e);
    second.Send(e);
  }
  size_t held = 0;
  for (const auto& a : first.sink.actions) {
    held += a.held_out;
    CHECK(a.json.find(a.held_out ? "\"held_out\":true" : "\"held_out\":false") != std::string::npos);
  }
  CHECK(held > 150);
  CHECK(held < 250);
  CHECK(first.Fired() == second.Fired());
  CHECK(first.processor->stats().campaigns.at("half").held_out == held);
}

TEST_CASE("inside a group only the highest priority match fires") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: generic
    trigger: {event: purchase}
    group: post-purchase
    priority: 1)") + kAction + R"(
  - id: vip
    trigger: {event: purchase}
    condition: event.amount > 500
    group: post-purchase
    priority: 10)" + kAction + R"(
  - id: ungrouped
    trigger: {event: purchase})" + kAction);
  h.Send(Ev("purchase", "small", "2026-01-01T00:00:00Z", R"("amount":20)"));
  h.Send(Ev("purchase", "big", "2026-01-01T01:00:00Z", R"("amount":900)"));
  CHECK(h.Fired() == Strings{"generic small 2026-01-01T00:00:00.000Z", "ungrouped small 2026-01-01T00:00:00.000Z",
                             "ungrouped big 2026-01-01T01:00:00.000Z", "vip big 2026-01-01T01:00:00.000Z"});
}

TEST_CASE("state and timers survive a restart; a replaced timer never fires") {
  rapport::testing::TempDir dir;
  std::string rules = std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1d})") + kAction;
  {
    EngineHarness h(rules, dir.File("state"));
    h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
    h.Send(Ev("visit", "a", "2026-01-01T12:00:00Z"));
    h.Commit();
  }
  EngineHarness h(rules, dir.File("state"));
  CHECK(h.processor->customers_with_timers() == 1);
  REQUIRE(h.processor->clock());
  CHECK(rapport::FormatRfc3339(*h.processor->clock()) == "2026-01-01T12:00:00.000Z");
  h.AdvanceTo("2026-01-03T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed a 2026-01-02T12:00:00.000Z"});
  auto p = h.StoredProfile("a");
  REQUIRE(p.types.size() == 1);
  CHECK(p.types[0].count == 2);
}

namespace {
// An inactivity timer and a delay: a customer can have both armed.
const std::string kTwoTimerRules = std::string(R"(
campaigns:
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1d})") + kAction + R"(
  - id: thanks-later
    trigger: {event: purchase}
    delay: {for: 3d})" + kAction;

}  // namespace

TEST_CASE("a restarted processor finds its timers in the profiles: one queue entry per customer, at the earliest") {
  EngineHarness h(kTwoTimerRules);
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z", R"("amount":20)"));
  h.Send(Ev("visit", "a", "2026-01-01T01:00:00Z"));
  h.Send(Ev("visit", "b", "2026-01-01T02:00:00Z"));
  h.Send(Ev("visit", "a", "2026-01-01T05:00:00Z"));  // a's earliest moves later
  CHECK(h.processor->customers_with_timers() == 2);
  h.Restart();
  CHECK(h.processor->customers_with_timers() == 2);
  h.AdvanceTo("2026-01-03T00:00:00Z");  // the lapsed timers; a's delay is its earliest now
  CHECK(h.Fired() == Strings{"lapsed b 2026-01-02T02:00:00.000Z", "lapsed a 2026-01-02T05:00:00.000Z"});
  CHECK(h.processor->customers_with_timers() == 1);
  h.Restart();
  CHECK(h.processor->customers_with_timers() == 1);
  h.AdvanceTo("2026-01-05T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed b 2026-01-02T02:00:00.000Z", "lapsed a 2026-01-02T05:00:00.000Z",
                             "thanks-later a 2026-01-04T00:00:00.000Z"});
  CHECK(h.processor->customers_with_timers() == 0);
  h.Restart();
  CHECK(h.processor->customers_with_timers() == 0);
}

TEST_CASE("a processor does not open on a partition with a profile that does not decode, and names the customer") {
  rapport::testing::TempDir dir;
  {
    EngineHarness h(kTwoTimerRules, dir.File("state"));
    h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
    h.Commit();
    rapport::CommitBatch batch(*h.store);
    batch.PutProfile(0, "mangled", "\x07not a profile");
    REQUIRE(h.store->Commit(batch).ok());
  }
  try {
    EngineHarness h(kTwoTimerRules, dir.File("state"));
    FAIL("the processor opened");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("profile of customer mangled") && Catch::Contains("version 7"));
  }
}

namespace {
// A replica that takes every change at once, so that a store groups commits.
class AcceptingReplica : public rapport::StateChangeListener {
 public:
  rapport::Result<int64_t> OnChanges(uint32_t, std::string_view, const std::vector<rapport::StateChange>&,
                                     bool) override {
    return int64_t{-1};
  }
  rapport::Status Sync() override { return rapport::Status::Ok(); }
  int64_t EndOffset(uint32_t) override { return -1; }
};
}  // namespace

TEST_CASE("while a commit group is written, a read waits for it only for a profile that commit evicted") {
  const std::string rules = std::string(R"(
campaigns:
  - id: third-visit
    trigger: {event: visit}
    condition: customer.visits == 3)") + kAction;
  rapport::testing::TempDir dir;
  EngineHarness h(rules, dir.File("state"), /*cache_capacity=*/1);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "b", "2026-01-01T00:00:00Z"));
  h.Restart();  // a partition that held state at open reads every customer it has not cached
  AcceptingReplica replica;
  h.store->SetChangeListener(&replica);
  h.Send(Ev("visit", "a", "2026-01-02T00:00:00Z"));
  h.Send(Ev("visit", "c", "2026-01-02T00:00:00Z"));
  h.store->BeginCommitGroup();
  h.Commit();  // held in the group; a and c leave the cache (bound 1)
  std::future<void> b, a;
  // Writes the group at the latest when the test ends, so that a read
  // waiting for it (a failure) does not keep the test from ending.
  struct GroupWriter {
    rapport::StateStore& store;
    std::optional<rapport::StateStore::CommitGroup> group;
    rapport::Status Write() {
      rapport::Status s = store.WriteCommitGroup(std::move(*group));
      group.reset();
      return s;
    }
    ~GroupWriter() {
      if (group) (void)Write();
    }
  } writer{*h.store, h.store->TakeCommitGroup()};
  // b's stored profile is its latest: read at once, the group still unwritten
  // (a wait here would never end, so the test bounds it).
  b = std::async(std::launch::async, [&] { h.Send(Ev("visit", "b", "2026-01-03T00:00:00Z")); });
  REQUIRE(b.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  b.get();
  // a's latest profile is in the group: its read waits until it is written.
  a = std::async(std::launch::async, [&] { h.Send(Ev("visit", "a", "2026-01-03T00:00:00Z")); });
  REQUIRE(writer.Write().ok());
  a.get();
  CHECK(h.Fired() == Strings{"third-visit a 2026-01-03T00:00:00.000Z"});
  h.Commit();
  CHECK(h.StoredProfile("b").types.front().count == 2);
}

TEST_CASE("a timer whose campaign left the rules never fires; the others of its customer do") {
  const std::string lapsed = std::string(R"(
  - id: lapsed
    trigger:
      inactivity: {event: visit, for: 1d})") + kAction;
  EngineHarness h(std::string("campaigns:") + lapsed + R"(
  - id: early
    trigger:
      inactivity: {event: visit, for: 2h})" + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Commit();
  rapport::rules::LoadResult loaded = rapport::rules::LoadRulesFromStrings({{"test.yaml", "campaigns:" + lapsed}});
  REQUIRE(loaded.rules);
  REQUIRE(h.processor->SetRules(loaded.rules).ok());
  h.AdvanceTo("2026-01-03T00:00:00Z");
  CHECK(h.Fired() == Strings{"lapsed a 2026-01-02T00:00:00.000Z"});
  CHECK(h.processor->stats().stale_timers == 1);
  CHECK(h.processor->customers_with_timers() == 0);
  for (const rapport::CampaignState& c : h.StoredProfile("a").campaigns) CHECK(c.armed_due_ms == rapport::kNoTime);
}

TEST_CASE("events older than the clock update state but do not move the clock back") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: second-visit
    trigger: {event: visit}
    condition: customer.visits == 2)") + kAction);
  h.Send(Ev("visit", "a", "2026-01-05T00:00:00Z"));
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  CHECK(h.Fired() == Strings{"second-visit a 2026-01-01T00:00:00.000Z"});
  CHECK(rapport::FormatRfc3339(*h.processor->clock()) == "2026-01-05T00:00:00.000Z");
  h.Commit();
  auto p = h.StoredProfile("a");
  CHECK(p.first_seen_ms == rapport::ParseRfc3339("2026-01-01T00:00:00Z")->ms);
  CHECK(p.last_seen_ms == rapport::ParseRfc3339("2026-01-05T00:00:00Z")->ms);
}

TEST_CASE("declared aggregates: count, sum, min, max, last, and a sliding window") {
  EngineHarness h(std::string(R"(
aggregates:
  orders: {function: count, event: purchase}
  spent: {function: sum, event: purchase, field: amount}
  smallest: {function: min, event: purchase, field: amount}
  largest: {function: max, event: purchase, field: amount}
  last_page: {function: last, event: visit, field: page}
  spent_7d: {function: sum, event: purchase, field: amount, window: 7d}
campaigns:
  - id: report
    trigger: {event: visit}
    actions:
      - channel: test
        template: t
        payload:
          orders: "{{ customer.orders }}"
          spent: "{{ customer.spent }}"
          smallest: "{{ customer.smallest }}"
          largest: "{{ customer.largest }}"
          last_page: "{{ customer.last_page }}"
          spent_7d: "{{ customer.spent_7d }}")"));
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z", R"("amount":10.10)"));
  h.Send(Ev("purchase", "a", "2026-01-05T00:00:00Z", R"("amount":0.2)"));
  h.Send(Ev("purchase", "a", "2026-01-09T00:00:00Z", R"("amount":5)"));
  h.Send(Ev("visit", "a", "2026-01-10T00:00:00Z", R"("page":"/shoes")"));
  REQUIRE(h.sink.actions.size() == 1);
  const std::string& json = h.sink.actions[0].json;
  CHECK(json.find(R"("payload":{"orders":3,"spent":15.3,"smallest":0.2,"largest":10.1,"last_page":"/shoes","spent_7d":5.2})") !=
        std::string::npos);
}

TEST_CASE("actions carry a stable id, the event time, rendered payload and trigger") {
  std::string rules = R"(
campaigns:
  - id: thanks
    trigger: {event: purchase}
    actions:
      - channel: email
        template: thank-you
        payload:
          greeting: "Thanks {{ customer.id }} for order {{ event.order_id }}"
          amount: "{{ event.amount }}"
          code: "{{ coupon('THX') }}"
          nested: {fixed: 3, list: [1, "two"]}
)";
  EngineHarness a(rules), b(rules);
  std::string e = Ev("purchase", "c-1", "2026-01-01T10:00:00+02:00", R"("event_id":"e-7","order_id":"o-1","amount":12.5)");
  a.Send(e);
  b.Send(e);
  REQUIRE(a.sink.actions.size() == 1);
  CHECK(a.sink.actions[0].json == b.sink.actions[0].json);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(a.sink.actions[0].json);
  CHECK(std::string_view(doc["action_id"]).size() == 32);
  CHECK(std::string_view(doc["ts"]) == "2026-01-01T08:00:00.000Z");
  CHECK(std::string_view(doc["campaign"]) == "thanks");
  CHECK(std::string_view(doc["channel"]) == "email");
  CHECK(std::string_view(doc["payload"]["greeting"]) == "Thanks c-1 for order o-1");
  CHECK(double(doc["payload"]["amount"]) == 12.5);
  std::string_view code = doc["payload"]["code"];
  CHECK(code.substr(0, 4) == "THX-");
  CHECK(code.size() == 14);
  CHECK(int64_t(doc["payload"]["nested"]["fixed"]) == 3);
  CHECK(std::string_view(doc["payload"]["nested"]["list"].at(1)) == "two");
  CHECK(std::string_view(doc["trigger"]["event_id"]) == "e-7");
  CHECK(bool(doc["held_out"]) == false);
}

TEST_CASE("coupon codes differ per customer and per secret") {
  std::string rules = R"(
campaigns:
  - id: c
    trigger: {event: visit}
    actions:
      - {channel: email, template: t, payload: {code: "{{ coupon('X') }}"}}
)";
  EngineHarness h(rules);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "b", "2026-01-01T00:00:00Z"));
  REQUIRE(h.sink.actions.size() == 2);
  CHECK(h.sink.actions[0].json.substr(h.sink.actions[0].json.find("X-"), 12) !=
        h.sink.actions[1].json.substr(h.sink.actions[1].json.find("X-"), 12));
}

TEST_CASE("unquoted payload scalars are JSON numbers only in JSON's own grammar, else strings") {
  EngineHarness h(R"(
campaigns:
  - id: scalars
    trigger: {event: visit}
    actions:
      - channel: email
        template: t
        payload:
          leading_zero: 007
          trailing_dot: 1.
          hex: 0x10
          minus_inf: -inf
          dot_inf: .inf
          not_a_number: .nan
          dot_five: .5
          plus_one: +1
          too_big: 1e999
          underscores: 1_000
          zero: 0
          whole: 10
          negative: -3
          fraction: 2.5
          exponent: 1E3
          small: -0.5e-2
          word: yes
          cased: True
          yes_bool: true
          no_bool: false
          tilde: ~
          nothing:
          quoted_number: "42"
          quotes_and_backslash: He said "hi" \ twice
)");
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  REQUIRE(h.sink.actions.size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  INFO(h.sink.actions[0].json);
  REQUIRE(parser.parse(h.sink.actions[0].json).get(doc) == simdjson::SUCCESS);
  simdjson::dom::element payload = doc["payload"];
  auto string_of = [&](const char* key) { return std::string(std::string_view(payload[key])); };
  CHECK(string_of("leading_zero") == "007");
  CHECK(string_of("trailing_dot") == "1.");
  CHECK(string_of("hex") == "0x10");
  CHECK(string_of("minus_inf") == "-inf");
  CHECK(string_of("dot_inf") == ".inf");
  CHECK(string_of("not_a_number") == ".nan");
  CHECK(string_of("dot_five") == ".5");
  CHECK(string_of("plus_one") == "+1");
  CHECK(string_of("too_big") == "1e999");
  CHECK(string_of("underscores") == "1_000");
  CHECK(int64_t(payload["zero"]) == 0);
  CHECK(int64_t(payload["whole"]) == 10);
  CHECK(int64_t(payload["negative"]) == -3);
  CHECK(double(payload["fraction"]) == 2.5);
  CHECK(double(payload["exponent"]) == 1000);
  CHECK(double(payload["small"]) == -0.005);
  CHECK(string_of("word") == "yes");
  CHECK(string_of("cased") == "True");
  CHECK(bool(payload["yes_bool"]) == true);
  CHECK(bool(payload["no_bool"]) == false);
  CHECK(payload["tilde"].is_null());
  CHECK(payload["nothing"].is_null());
  CHECK(string_of("quoted_number") == "42");
  CHECK(string_of("quotes_and_backslash") == R"(He said "hi" \ twice)");
}

TEST_CASE("a ladder stage can read a declared aggregate, and its action names the stage entered") {
  EngineHarness h(std::string(R"(
aggregates:
  spent_30d: {function: sum, event: purchase, field: amount, window: 30d}
ladder:
  - stage: prospect
  - stage: big-spender
    when: customer.spent_30d >= 100
campaigns:
  - id: welcome-big
    trigger: {stage: big-spender}
    condition: event.amount > 0)") + kAction + R"(
  - id: every-purchase
    trigger: {event: purchase})" + kAction);
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z", R"("event_id":"e-1","amount":60)"));
  h.Send(Ev("purchase", "a", "2026-01-02T00:00:00Z", R"("event_id":"e-2","amount":50)"));
  CHECK(h.Fired() == Strings{"every-purchase a 2026-01-01T00:00:00.000Z", "every-purchase a 2026-01-02T00:00:00.000Z",
                             "welcome-big a 2026-01-02T00:00:00.000Z"});
  REQUIRE(h.sink.actions.size() == 3);
  // Event triggers are reported as before; a stage entry says which stage,
  // and which event moved the customer there.
  CHECK(h.sink.actions[1].json.find(R"("trigger":{"kind":"event","event_type":"purchase","event_id":"e-2"},)") !=
        std::string::npos);
  CHECK(h.sink.actions[2].json.find(
            R"("trigger":{"kind":"stage","stage":"big-spender","event_type":"purchase","event_id":"e-2"},)") !=
        std::string::npos);
  h.Commit();
  CHECK(h.StoredProfile("a").stage == 1);
}

TEST_CASE("an event of a type the rules do not know can move the stage, and fires its campaigns") {
  // The ladder's now() is last_seen, which every event moves: a customer
  // lapses at their first event, of any type, 30 days after their purchase.
  EngineHarness h(std::string(R"(
ladder:
  - stage: prospect
  - stage: buyer
    when: customer.purchases >= 1
  - stage: lapsed
    when: customer.purchases >= 1 and days_since(customer.last_purchase) > 30
campaigns:
  - id: win-back
    trigger: {stage: lapsed})") + kAction);
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("newsletter_open", "a", "2026-01-20T00:00:00Z"));  // not yet 30 days
  h.Send(Ev("newsletter_open", "a", "2026-02-15T00:00:00Z", R"("event_id":"n-2")"));
  h.Send(Ev("newsletter_open", "a", "2026-02-16T00:00:00Z"));  // already lapsed: no new entry
  CHECK(h.Fired() == Strings{"win-back a 2026-02-15T00:00:00.000Z"});
  REQUIRE(h.sink.actions.size() == 1);
  CHECK(h.sink.actions[0].json.find(
            R"("trigger":{"kind":"stage","stage":"lapsed","event_type":"newsletter_open","event_id":"n-2"},)") !=
        std::string::npos);
}

// --- Conversion goals -------------------------------------------------------

namespace {

struct Conversion {
  std::string campaign, customer, now, fired_at;
  bool held_out;
};

class ConversionTracer : public rapport::ProcessorTracer {
 public:
  void OnConversion(const rapport::rules::Campaign& c, std::string_view customer, rapport::EventTime now,
                    rapport::EventTime fired_at, bool held_out) override {
    conversions.push_back(
        {c.id, std::string(customer), rapport::FormatRfc3339(now), rapport::FormatRfc3339(fired_at), held_out});
  }
  std::vector<Conversion> conversions;
};

// Reopens the harness's processor with `tracer` watching it.
void Trace(EngineHarness& h, rapport::ProcessorTracer* tracer) {
  h.processor.reset();
  rapport::ProcessorOptions options;
  options.coupon_secret = "test-secret";
  options.tracer = tracer;
  auto p = rapport::Processor::Open(*h.store, h.rules, h.sink, options);
  REQUIRE(p.ok());
  h.processor = std::move(*p);
}

const rapport::CampaignCounters& Counters(const EngineHarness& h, const std::string& campaign) {
  return h.processor->stats().campaigns.at(campaign);
}

}  // namespace

TEST_CASE("a goal reached within its window after a firing is one conversion; later is none") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: welcome
    trigger: {event: visit}
    condition: customer.visits == 1
    goal:
      event: purchase
      within: 7d)") + kAction);
  ConversionTracer tracer;
  Trace(h, &tracer);
  for (const char* who : {"inside", "edge", "late", "never"}) h.Send(Ev("visit", who, "2026-01-01T00:00:00Z"));
  h.Send(Ev("purchase", "inside", "2026-01-05T00:00:00Z"));
  h.Send(Ev("purchase", "edge", "2026-01-08T00:00:00Z"));      // exactly 7 days: still inside
  h.Send(Ev("purchase", "late", "2026-01-08T00:00:00.001Z"));  // one millisecond too late
  h.Send(Ev("visit", "never", "2026-01-06T00:00:00Z"));        // not the goal's type
  CHECK(Counters(h, "welcome").conversions == 2);
  CHECK(Counters(h, "welcome").conversions_held_out == 0);
  REQUIRE(tracer.conversions.size() == 2);
  CHECK(tracer.conversions[0].customer == "inside");
  CHECK(tracer.conversions[0].now == "2026-01-05T00:00:00.000Z");
  CHECK(tracer.conversions[0].fired_at == "2026-01-01T00:00:00.000Z");
  CHECK(tracer.conversions[1].customer == "edge");
  // Goals only measure: the same firings as without a goal.
  CHECK(h.Fired().size() == 4);
  h.Commit();
  CHECK(h.StoredProfile("inside").campaigns.at(0).converted);
  CHECK_FALSE(h.StoredProfile("late").campaigns.at(0).converted);
}

TEST_CASE("held-out firings convert too, counted apart from treated ones") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: half
    trigger: {event: visit}
    holdout: 50%
    goal: {event: purchase, within: 2d})") + kAction);
  ConversionTracer tracer;
  Trace(h, &tracer);
  for (int i = 0; i < 200; ++i) h.Send(Ev("visit", "c" + std::to_string(i), "2026-01-01T00:00:00Z"));
  // Every third customer buys the next day.
  for (int i = 0; i < 200; i += 3) h.Send(Ev("purchase", "c" + std::to_string(i), "2026-01-02T00:00:00Z"));
  std::map<std::string, bool> held_out;
  for (const auto& a : h.sink.actions) held_out[a.customer] = a.held_out;
  uint64_t treated = 0, held = 0;
  for (int i = 0; i < 200; i += 3) ++(held_out.at("c" + std::to_string(i)) ? held : treated);
  REQUIRE(held > 0);
  REQUIRE(treated > 0);
  CHECK(Counters(h, "half").conversions == treated);
  CHECK(Counters(h, "half").conversions_held_out == held);
  REQUIRE(tracer.conversions.size() == treated + held);
  for (const auto& c : tracer.conversions) CHECK(c.held_out == held_out.at(c.customer));
  h.Commit();
  for (int i = 0; i < 200; i += 3) {
    const std::string who = "c" + std::to_string(i);
    CHECK(h.StoredProfile(who).campaigns.at(0).last_held_out == held_out.at(who));
  }
}

TEST_CASE("one conversion per firing, across restarts; a new firing can convert again") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: ping
    trigger: {event: visit}
    goal: {event: purchase, within: 30d})") + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("purchase", "a", "2026-01-02T00:00:00Z"));
  h.Send(Ev("purchase", "a", "2026-01-03T00:00:00Z"));
  CHECK(Counters(h, "ping").conversions == 1);
  h.Restart();
  h.Send(Ev("purchase", "a", "2026-01-04T00:00:00Z"));  // the firing's conversion was stored
  CHECK(h.processor->stats().campaigns.count("ping") == 0);
  h.Send(Ev("visit", "a", "2026-01-05T00:00:00Z"));  // fires again
  h.Send(Ev("purchase", "a", "2026-01-06T00:00:00Z"));
  CHECK(Counters(h, "ping").conversions == 1);  // since the restart
}

TEST_CASE("a goal's condition must hold, and the firing event itself never converts") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: thanks
    trigger: {event: purchase}
    condition: customer.purchases == 1
    goal:
      event: purchase
      condition: event.amount >= 20 and customer.purchases >= 2
      within: 30d)") + kAction);
  h.Send(Ev("purchase", "a", "2026-01-01T00:00:00Z", R"("amount":50)"));  // fires; does not convert itself
  CHECK(Counters(h, "thanks").conversions == 0);
  h.Send(Ev("purchase", "a", "2026-01-02T00:00:00Z", R"("amount":19.99)"));  // condition false
  CHECK(Counters(h, "thanks").conversions == 0);
  h.Send(Ev("purchase", "a", "2026-01-03T00:00:00Z", R"("amount":20)"));
  CHECK(Counters(h, "thanks").conversions == 1);
  CHECK(h.Fired() == Strings{"thanks a 2026-01-01T00:00:00.000Z"});
}

TEST_CASE("a delayed firing's window starts when it fires, and late events from before it do not convert") {
  EngineHarness h(std::string(R"(
campaigns:
  - id: later
    trigger: {event: visit}
    delay: {for: 1d}
    goal: {event: purchase, within: 1d})") + kAction);
  h.Send(Ev("visit", "a", "2026-01-01T00:00:00Z"));
  h.Send(Ev("visit", "z", "2026-01-02T12:00:00Z"));     // the clock passes the due time: fires
  h.Send(Ev("purchase", "a", "2026-01-01T12:00:00Z"));  // late, and before the firing
  CHECK(h.processor->stats().campaigns.at("later").conversions == 0);
  h.Send(Ev("purchase", "a", "2026-01-02T18:00:00Z"));
  CHECK(h.processor->stats().campaigns.at("later").conversions == 1);
}
