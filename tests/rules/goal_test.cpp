// Conversion goals in the rule loader: what a goal compiles to, and every
// mistake in one reported at file:line:col.
#include <catch2/catch.hpp>

#include "rapport/rules/rule_set.h"

using rapport::rules::LoadRulesFromStrings;

namespace {

std::string All(const rapport::rules::LoadResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += d.ToString() + "\n";
  return out;
}

bool Has(const rapport::rules::LoadResult& r, const std::string& needle) {
  return All(r).find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("a goal compiles to its event type, condition and window, and indexes its campaign by type") {
  auto r = LoadRulesFromStrings({{"g.yaml", R"(event_types: [signup]
campaigns:
  - id: welcome
    enabled: false
    trigger: {event: signup}
    actions: [{channel: email, template: t}]
    goal:
      event: purchase
      condition: event.amount >= 20 and customer.purchases >= 1
      within: 7d
  - id: plain
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
)"}});
  INFO(All(r));
  REQUIRE(r.rules);
  const auto& rules = *r.rules;
  const auto& welcome = rules.campaigns[*rules.FindCampaign("welcome")];
  REQUIRE(welcome.goal);
  CHECK(rules.event_types[welcome.goal->event_type] == "purchase");
  CHECK(welcome.goal->condition != nullptr);
  CHECK(welcome.goal->within.ms == 7 * 86400000LL);
  CHECK_FALSE(rules.campaigns[*rules.FindCampaign("plain")].goal);
  // Disabled campaigns keep measuring the firings they made before.
  CHECK(rules.GoalsOf(*rules.FindEventType("purchase")) == std::vector<uint32_t>{*rules.FindCampaign("welcome")});
  CHECK(rules.GoalsOf(*rules.FindEventType("visit")).empty());
}

TEST_CASE("bad goals are errors at file:line:col and the set is refused") {
  auto r = LoadRulesFromStrings({{"bad.yaml", R"(campaigns:
  - id: a
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal:
      event: purchse
      within: 7
      condition: customer.total_spent >= "20"
      window: 3d
  - id: b
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal: {condition: customer.purchases >= 1}
  - id: c
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal: purchase
  - id: d
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal: {event: purchase, within: 0d, condition: coupon("X") == "Y"}
  - id: e
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal: {event: purchase, within: 1d, condition: customer.purchase > 1}
)"}});
  INFO(All(r));
  CHECK_FALSE(r.rules);
  CHECK(Has(r, "bad.yaml:6:14: error[unknown-event-type]: unknown event type `purchse` (did you mean `purchase`?"));
  CHECK(Has(r, "bad.yaml:7:15: error[bad-duration]: within `7` is not a duration (a duration needs a unit: 7d"));
  CHECK(Has(r, "bad.yaml:8:39: error[type-mismatch]: cannot compare number with string"));
  CHECK(
      Has(r, "bad.yaml:9:7: error[unknown-key]: unknown key `window` in goal (allowed keys: event condition within)"));
  CHECK(Has(r, "bad.yaml:13:11: error[missing-key]: a goal needs the `event` that counts as a conversion"));
  CHECK(Has(r, "bad.yaml:13:11: error[missing-key]: a goal needs `within`"));
  CHECK(Has(r, "bad.yaml:17:11: error[wrong-shape]: goal must be a map of keys to values"));
  CHECK(Has(r, "bad.yaml:21:37: error[bad-value]: within must be longer than zero"));
  CHECK(Has(r, "bad.yaml:21:52: error[unavailable]"));
  CHECK(Has(r, "bad.yaml:25:52: error[unknown-field]: unknown field `customer.purchase`"));
}

TEST_CASE("a goal's event type must be declared like a trigger's") {
  auto r = LoadRulesFromStrings({{"x.yaml", R"(campaigns:
  - id: a
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
    goal: {event: signup, within: 1d}
)"}});
  CHECK_FALSE(r.rules);
  CHECK(
      Has(r, "x.yaml:5:19: error[unknown-event-type]: unknown event type `signup` (declare it under `event_types:`)"));
}
