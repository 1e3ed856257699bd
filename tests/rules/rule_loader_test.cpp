// The rule loader: every error of every file, each at file:line:col.
#include <catch2/catch.hpp>

#include "rapport/rules/rule_set.h"

using rapport::rules::Code;
using rapport::rules::LoadRulesFromStrings;

namespace {

std::vector<std::string> Errors(const rapport::rules::LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) out.push_back(d.ToString());
  return out;
}

bool Has(const rapport::rules::LoadResult& r, const std::string& needle) {
  for (const auto& d : r.diagnostics) {
    if (d.ToString().find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the standard pack's shape loads and indexes campaigns by trigger") {
  auto r = LoadRulesFromStrings({{"a.yaml", R"(
event_types: [cart]
campaigns:
  - id: z-on-visit
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
  - id: a-on-visit
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
  - id: off
    enabled: false
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
  - id: lapse
    trigger: {inactivity: {event: cart, for: 2h}}
    actions: [{channel: email, template: t}]
)"}});
  INFO(Errors(r).size());
  REQUIRE(r.rules);
  const auto& rules = *r.rules;
  REQUIRE(rules.campaigns.size() == 4);
  CHECK(rules.campaigns[0].id == "a-on-visit");  // sorted by id
  auto visit = rules.FindEventType("visit");
  auto cart = rules.FindEventType("cart");
  REQUIRE(visit);
  REQUIRE(cart);
  std::vector<std::string> on_visit;
  for (uint32_t i : rules.OnEvent(*visit)) on_visit.push_back(rules.campaigns[i].id);
  CHECK(on_visit == std::vector<std::string>{"a-on-visit", "z-on-visit"});  // `off` is not subscribed
  CHECK(rules.OnEvent(*cart).empty());
  REQUIRE(rules.OnInactivity(*cart).size() == 1);
  CHECK(rules.campaigns[rules.OnInactivity(*cart)[0]].trigger.inactivity.ms == 2 * 3600 * 1000);
}

TEST_CASE("every error of every file is reported with file:line:col, and the set is refused") {
  auto r = LoadRulesFromStrings({
      {"one.yaml", R"(campaigns:
  - id: first
    trigger: {event: purchse}
    condition: customer.visit >= 2
    limits: {cooldown: 7}
    actions: [{channel: email, template: t}]
  - id: third
    trigger: {event: visit}
    condition: customer.visits >= 2 && event.amount > 5
    actions: [{channel: email, template: t}]
)"},
      {"two.yaml", R"(campaigns:
  - id: second
    triger: {event: visit}
    holdout: 150%
    actions: [{channel: email}]
  - id: first
    trigger: {stage: advocat}
    actions: [{channel: email, template: t}]
)"}});
  CHECK_FALSE(r.rules);
  CHECK(Has(r, "one.yaml:3:22: error[unknown-event-type]: unknown event type `purchse` (did you mean `purchase`?"));
  CHECK(Has(r, "one.yaml:4:16: error[unknown-field]: unknown field `customer.visit`"));
  CHECK(Has(r, "did you mean `customer.visits`?"));
  CHECK(Has(r, "one.yaml:9:37: error[syntax]: unexpected `&&` (use `and`)"));
  CHECK(Has(r, "one.yaml:5:24: error[bad-duration]: cooldown `7` is not a duration (a duration needs a unit: 7d"));
  CHECK(Has(r, "two.yaml:3:5: error[unknown-key]: unknown key `triger` in campaign `second` (did you mean `trigger`?)"));
  CHECK(Has(r, "two.yaml:2:5: error[missing-key]: campaign `second` needs a `trigger`"));
  CHECK(Has(r, "two.yaml:4:14: error[bad-value]: holdout `150%` must be a percentage from 0 to 100"));
  CHECK(Has(r, "two.yaml:5:15: error[missing-key]: an action needs a `template`"));
  CHECK(Has(r, "two.yaml:6:9: error[duplicate]: campaign `first` is already defined at one.yaml:2"));
  CHECK(Has(r, "two.yaml:7:22: error[unknown-stage]: unknown ladder stage `advocat` (did you mean `advocate`?)"));
}

TEST_CASE("event fields are refused where no event is in hand") {
  auto r = LoadRulesFromStrings({{"x.yaml", R"(campaigns:
  - id: lapse
    trigger: {inactivity: {event: visit, for: 30d}}
    condition: event.page == "/"
    actions: [{channel: email, template: t}]
  - id: later
    trigger: {event: purchase}
    delay: {for: 2d, recheck: event.amount > 3}
    actions: [{channel: email, template: t, payload: {amount: "{{ event.amount }}"}}]
)"}});
  CHECK_FALSE(r.rules);
  CHECK(Has(r, "x.yaml:4:16: error[unavailable]"));
  CHECK(Has(r, "x.yaml:8:31: error[unavailable]"));
  CHECK(Has(r, "x.yaml:9:67: error[unavailable]"));
}

TEST_CASE("bad YAML is a yaml-syntax error at its position") {
  auto r = LoadRulesFromStrings({{"bad.yaml", "campaigns:\n  - id: [unclosed\n"}});
  CHECK_FALSE(r.rules);
  REQUIRE_FALSE(r.diagnostics.empty());
  CHECK(r.diagnostics[0].code == Code::kYamlSyntax);
  CHECK(r.diagnostics[0].file == "bad.yaml");
  CHECK(r.diagnostics[0].line >= 2);
}

TEST_CASE("a declared event type makes its count and last time customer fields") {
  auto r = LoadRulesFromStrings({{"x.yaml", R"(event_types: [search]
campaigns:
  - id: searcher
    trigger: {event: search}
    condition: customer.searches > 3 and customer.last_search != null
    actions: [{channel: push, template: t}]
)"}});
  INFO(Errors(r).size());
  CHECK(r.rules);
  auto undeclared = LoadRulesFromStrings({{"y.yaml", R"(campaigns:
  - id: searcher
    trigger: {event: visit}
    condition: customer.searches > 3
    actions: [{channel: push, template: t}]
)"}});
  CHECK_FALSE(undeclared.rules);
  CHECK(Has(undeclared, "declare that type under `event_types:`"));
}

TEST_CASE("PluralOf names the count fields") {
  using rapport::rules::PluralOf;
  CHECK(PluralOf("visit") == "visits");
  CHECK(PluralOf("search") == "searches");
  CHECK(PluralOf("reply") == "replies");
  CHECK(PluralOf("day") == "days");
}
