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

// Every diagnostic, one a line, for a failure's message.
std::string All(const rapport::rules::LoadResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += d.ToString() + "\n";
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

TEST_CASE("a ladder stage can use a declared aggregate, but not the stage itself") {
  auto r = LoadRulesFromStrings({{"ladder.yaml", R"(ladder:
  - stage: prospect
  - stage: regular
    when: customer.orders_90d >= 3
)"},
                                 {"aggregates.yaml", R"(aggregates:
  orders_90d: {function: count, event: purchase, window: 90d}
)"}});
  INFO(All(r));
  REQUIRE(r.rules);
  REQUIRE(r.rules->ladder.size() == 2);
  CHECK(r.rules->ladder[1].condition);
  auto self = LoadRulesFromStrings({{"x.yaml", R"(ladder:
  - stage: prospect
  - stage: again
    when: customer.stage == "prospect"
)"}});
  CHECK_FALSE(self.rules);
  CHECK(Has(self, "x.yaml:4:11: error[unknown-field]"));
  CHECK(Has(self, "a ladder stage cannot depend on the stage itself"));
}

TEST_CASE("errors inside folded and literal block scalars point at their line and column") {
  SECTION("folded `>`") {
    auto r = LoadRulesFromStrings({{"f.yaml", R"(campaigns:
  - id: folded
    trigger: {event: visit}
    condition: >
      customer.visits >= 2
      and customer.visit > 3
    actions: [{channel: email, template: t}]
)"}});
    CHECK_FALSE(r.rules);
    INFO(All(r));
    CHECK(Has(r, "f.yaml:6:11: error[unknown-field]: unknown field `customer.visit`"));
  }
  SECTION("folded `>-`, with an empty line and a more-indented line") {
    auto r = LoadRulesFromStrings({{"f.yaml", R"(campaigns:
  - id: folded
    trigger: {event: visit}
    condition: >-
      customer.visits >= 2

      and (customer.purchases > 1
          or customer.referals > 0)
    actions: [{channel: email, template: t}]
  - id: syntax
    trigger: {event: visit}
    condition: >

      customer.visits >= 2

      and event.x = 1
    actions: [{channel: email, template: t}]
)"}});
    CHECK_FALSE(r.rules);
    INFO(All(r));
    CHECK(Has(r, "f.yaml:8:14: error[unknown-field]: unknown field `customer.referals`"));
    CHECK(Has(r, "f.yaml:16:19: error[syntax]: unexpected `=`"));
  }
  SECTION("literal `|`, a payload template in a folded block, and a plain scalar over two lines") {
    auto r = LoadRulesFromStrings({{"f.yaml", R"(campaigns:
  - id: blocks
    trigger: {event: visit}
    condition: |
      customer.visits >= 2
        and customer.vists > 3
    delay:
      for: 1d
      recheck: customer.visits > 1
        and customer.purchase > 0
    actions:
      - channel: email
        template: t
        payload:
          text: >
            Hello
            {{ customer.nope }}
)"}});
    CHECK_FALSE(r.rules);
    INFO(All(r));
    CHECK(Has(r, "f.yaml:6:13: error[unknown-field]: unknown field `customer.vists`"));
    CHECK(Has(r, "f.yaml:10:13: error[unknown-field]: unknown field `customer.purchase`"));
    CHECK(Has(r, "f.yaml:17:16: error[unknown-field]: unknown field `customer.nope`"));
  }
}

TEST_CASE("an event type whose fields would clash with another field is an error") {
  auto r = LoadRulesFromStrings({{"x.yaml", R"(event_types: [cart, seen]
campaigns:
  - id: c
    trigger: {event: visit}
    condition: customer.last_seen != null
    actions: [{channel: email, template: t}]
)"}});
  CHECK_FALSE(r.rules);
  INFO(All(r));
  CHECK(Has(r, "x.yaml:1:21: error[duplicate]: event type `seen` would define `customer.last_seen`, which is a "
               "built-in customer field (give the event type another name)"));
  auto two =
      LoadRulesFromStrings({{"a.yaml", "event_types: [last_order]\n"}, {"b.yaml", "event_types:\n  - orders\n"}});
  INFO(All(two));
  CHECK_FALSE(two.rules);
  CHECK(Has(two, "b.yaml:2:5: error[duplicate]: event types `last_order` and `orders` would both define "
                 "`customer.last_orders`"));
  auto again = LoadRulesFromStrings({{"a.yaml", "event_types: [cart, visit]\n"}, {"b.yaml", "event_types: [cart]\n"}});
  CHECK(again.rules);  // declaring a type twice, or a built-in one, is harmless
}
