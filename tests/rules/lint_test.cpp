// Lint: warnings about rules that compile but probably do not do what was
// meant; each kind, and the cases that must not warn.
#include "rapport/rules/lint.h"

#include <catch2/catch.hpp>

#include "rapport/rules/rule_set.h"

using rapport::rules::Code;
using rapport::rules::Diagnostics;
using rapport::rules::Severity;

namespace {

// Loads one file (which must compile) and lints it.
Diagnostics LintOf(const std::string& yaml) {
  auto loaded = rapport::rules::LoadRulesFromStrings({{"r.yaml", yaml}});
  std::string errors;
  for (const auto& d : loaded.diagnostics) errors += d.ToString() + "\n";
  INFO(errors);
  REQUIRE(loaded.rules);
  return rapport::rules::Lint(*loaded.rules);
}

std::string All(const Diagnostics& ds) {
  std::string out;
  for (const auto& d : ds) out += d.ToString() + "\n";
  return out;
}

size_t CountOf(const Diagnostics& ds, Code code) {
  size_t n = 0;
  for (const auto& d : ds) n += d.code == code ? 1 : 0;
  return n;
}

// A campaign on `trigger` with `extra` keys (indented for a campaign), limited
// unless `extra` says otherwise, so only the warning under test appears.
std::string Campaign(const std::string& id, const std::string& extra, const std::string& trigger = "visit",
                     const std::string& channel = "email") {
  return "  - id: " + id + "\n    trigger: {event: " + trigger + "}\n" + extra + "    actions: [{channel: " + channel +
         ", template: t}]\n";
}
const std::string kOnce = "    limits: {once_per_customer: true}\n";

}  // namespace

TEST_CASE("lint: a condition that is false after folding is never-true") {
  auto ds = LintOf("campaigns:\n" + Campaign("a", "    condition: customer.visits > 1 and 2 > 3\n" + kOnce) +
                   Campaign("b", "    condition: 'false'\n" + kOnce, "purchase") +
                   Campaign("c", "    condition: 1 / 0 > 1\n" + kOnce, "referral"));
  INFO(All(ds));
  REQUIRE(ds.size() == 3);
  for (const auto& d : ds) {
    CHECK(d.severity == Severity::kWarning);
    CHECK(d.code == Code::kNeverTrue);
  }
  // At the condition's text, with the part that is always false.
  CHECK(ds[0].ToString() ==
        "r.yaml:4:16: warning[never-true]: the condition of campaign `a` can never be true: `2 > 3` is always "
        "false (the campaign never fires)");
  CHECK(ds[1].message.find("`false` is always false") != std::string::npos);
  CHECK(ds[2].message.find("`1 / 0 > 1` is never true (it computes with a missing value)") != std::string::npos);
}

TEST_CASE("lint: comparisons of one field that contradict each other are never-true") {
  auto ds = LintOf("event_types: [cart]\ncampaigns:\n" +
                   Campaign("range", "    condition: customer.visits > 5 and customer.visits < 3\n" + kOnce) +
                   Campaign("equal", "    condition: event.x == 1 and event.y == 2 and event.x == 2\n" + kOnce) +
                   Campaign("kinds", "    condition: event.x == 1 and event.x == \"1\"\n" + kOnce) +
                   Campaign("absent", "    condition: event.coupon == null and event.coupon in ['A', 'B']\n" + kOnce) +
                   Campaign("whole", "    condition: customer.carts > 1 and customer.carts < 2\n" + kOnce) +
                   Campaign("negative", "    condition: customer.visits < 0\n" + kOnce) +
                   Campaign("stage", "    condition: customer.stage == 'vip'\n" + kOnce) +
                   Campaign("point", "    condition: event.n >= 2 and event.n <= 2 and event.n != 2\n" + kOnce) +
                   Campaign("times",
                            "    condition: event.at > time('2026-02-01T00:00:00Z') and event.at < "
                            "time('2026-01-01T00:00:00Z')\n" +
                                kOnce) +
                   Campaign("list",
                            "    condition: event.country in ['DE', 'AT'] and event.country not in ['DE', "
                            "'AT', 'CH']\n" +
                                kOnce) +
                   Campaign("both-or", "    condition: (event.a > 1 and event.a < 0) or false\n" + kOnce) +
                   Campaign("recheck",
                            "    delay: {for: 1d, recheck: customer.purchases == 1 and "
                            "customer.purchases == 2}\n" +
                                kOnce));
  INFO(All(ds));
  CHECK(CountOf(ds, Code::kNeverTrue) == 12);
  CHECK(ds.size() == 12);
  auto message_of = [&ds](const std::string& id) {
    for (const auto& d : ds) {
      if (d.message.find("campaign `" + id + "`") != std::string::npos) return d.message;
    }
    return std::string("(none)");
  };
  CHECK(message_of("range") ==
        "the condition of campaign `range` can never be true: `customer.visits > 5` and `customer.visits < 3` "
        "cannot both be true");
  CHECK(message_of("equal").find("`event.x == 1` and `event.x == 2` cannot both be true") != std::string::npos);
  CHECK(message_of("whole").find("(`customer.carts` is a whole number, 0 or more)") != std::string::npos);
  CHECK(message_of("negative").find("`customer.visits < 0` is never true") != std::string::npos);
  CHECK(message_of("stage").find("the ladder's stages are prospect, customer, client, supporter, advocate, "
                                 "partner") != std::string::npos);
  CHECK(message_of("point").find("cannot all be true") != std::string::npos);
  CHECK(message_of("recheck").find("the recheck of campaign `recheck` can never be true") != std::string::npos);
}

TEST_CASE("lint: satisfiable conditions are not never-true") {
  // Each on its own channel, so that they do not overlap.
  auto ds = LintOf(
      "campaigns:\n" +
      Campaign("ok-range", "    condition: customer.visits > 3 and customer.visits < 5\n" + kOnce, "visit",
               "ok-range") +
      Campaign("ok-or", "    condition: customer.visits > 5 or customer.visits < 3\n" + kOnce, "visit", "ok-or") +
      Campaign("ok-null-ne", "    condition: event.coupon == null and event.coupon != 'SPRING'\n" + kOnce, "visit",
               "ok-null-ne") +
      Campaign("ok-two-fields", "    condition: event.x == 1 and event.y == 2\n" + kOnce, "visit", "ok-two-fields") +
      Campaign("ok-now", "    condition: now() > time('2030-01-01T00:00:00Z')\n" + kOnce, "visit", "ok-now") +
      Campaign("ok-fractional", "    condition: event.amount > 1 and event.amount < 2\n" + kOnce, "visit",
               "ok-fractional") +
      Campaign("ok-stage", "    condition: customer.stage in ['client', 'vip']\n" + kOnce, "visit", "ok-stage") +
      Campaign("ok-true", "    condition: 'true'\n" + kOnce, "visit", "ok-true") +
      Campaign("ok-point", "    condition: customer.visits >= 2 and customer.visits <= 2\n" + kOnce, "visit",
               "ok-point") +
      Campaign("ok-field-vs-field", "    condition: event.a > event.b and event.a < event.b\n" + kOnce, "visit",
               "ok-field-vs-field"));
  INFO(All(ds));
  CHECK(ds.empty());
}

TEST_CASE("lint: an event campaign without a limit is unlimited, unless the condition caps the count") {
  auto ds = LintOf("campaigns:\n" + Campaign("every-visit", "") +
                   Campaign("every-order", "    condition: event.amount > 100\n", "purchase", "sms") +
                   Campaign("first-order", "    condition: customer.purchases == 1\n", "purchase", "push") +
                   Campaign("first-three", "    condition: 3 >= customer.referrals\n", "referral") +
                   Campaign("cooled", "    limits: {cooldown: 7d}\n", "visit", "phone") +
                   Campaign("capped", "    limits: {at_most: {count: 2, per: 30d}}\n", "visit", "letter") +
                   Campaign("off", "    enabled: false\n", "visit", "fax") +
                   "  - id: lapse\n    trigger: {inactivity: {event: visit, for: 30d}}\n"
                   "    actions: [{channel: email, template: t}]\n"
                   "  - id: staged\n    trigger: {stage: client}\n    actions: [{channel: email, template: t}]\n");
  INFO(All(ds));
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].ToString() ==
        "r.yaml:2:5: warning[unlimited]: campaign `every-visit` has no limit: a customer may get it on every "
        "`visit` event (add `limits:` (once_per_customer, cooldown or at_most), or a condition that caps it such "
        "as `customer.visits == 1`)");
  CHECK(ds[1].code == Code::kUnlimited);
  CHECK(ds[1].message.find("`every-order`") != std::string::npos);
  CHECK(ds[1].message.find("every `purchase` event") != std::string::npos);
}

TEST_CASE("lint: two campaigns on one trigger and channel outside a group overlap") {
  auto ds = LintOf("campaigns:\n" + Campaign("z-second", kOnce) + Campaign("a-first", kOnce) +
                   // Another channel, another trigger, one group, exclusive conditions: no warning.
                   Campaign("sms-one", kOnce, "visit", "sms") + Campaign("on-purchase", kOnce, "purchase", "push") +
                   Campaign("grouped-1", "    group: g\n    priority: 1\n" + kOnce, "referral") +
                   Campaign("grouped-2", "    group: g\n" + kOnce, "referral") +
                   Campaign("first", "    condition: customer.purchases == 1\n" + kOnce, "purchase") +
                   Campaign("third", "    condition: customer.purchases == 3\n" + kOnce, "purchase") +
                   Campaign("off", "    enabled: false\n" + kOnce, "visit"));
  INFO(All(ds));
  REQUIRE(ds.size() == 1);
  // Reported at the later of the two in the file, naming the earlier first.
  CHECK(ds[0].ToString() ==
        "r.yaml:6:5: warning[overlap]: campaigns `z-second` and `a-first` both send on `email` on every `visit` "
        "event and are not in one group: a customer can get both at once (put them in one `group` so that only "
        "the higher `priority` sends, or give them conditions that exclude each other)");
}

TEST_CASE("lint: inactivity and stage triggers overlap only with the same duration or stage") {
  auto ds = LintOf(
      "campaigns:\n"
      "  - id: lapse-30\n    trigger: {inactivity: {event: visit, for: 30d}}\n"
      "    actions: [{channel: email, template: t}]\n"
      "  - id: lapse-30-again\n    trigger: {inactivity: {event: visit, for: 30d}}\n"
      "    actions: [{channel: email, template: t2}]\n"
      "  - id: lapse-60\n    trigger: {inactivity: {event: visit, for: 60d}}\n"
      "    actions: [{channel: email, template: t}]\n"
      "  - id: client-a\n    trigger: {stage: client}\n    actions: [{channel: sms, template: t}]\n"
      "  - id: client-b\n    trigger: {stage: client}\n    actions: [{channel: sms, template: t}]\n");
  INFO(All(ds));
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].message.find("on 30d without a `visit` event") != std::string::npos);
  CHECK(ds[1].message.find("on entering stage `client`") != std::string::npos);
}

TEST_CASE("lint: warnings never refuse a rule set") {
  auto loaded = rapport::rules::LoadRulesFromStrings(
      {{"r.yaml", "campaigns:\n" + Campaign("a", "    condition: 'false'\n") + Campaign("b", "")}});
  REQUIRE(loaded.rules);
  CHECK_FALSE(rapport::rules::HasErrors(loaded.diagnostics));
  auto ds = rapport::rules::Lint(*loaded.rules);
  CHECK_FALSE(ds.empty());
  CHECK_FALSE(rapport::rules::HasErrors(ds));
}
