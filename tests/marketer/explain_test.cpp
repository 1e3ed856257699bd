// `rapport explain` on a small handwritten scenario, and the sub-expressions
// of rules::Explain that it shows.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "rapport/rules/rule_set.h"
#include "scenario.h"
#include "temp_dir.h"

using namespace rapport::testing;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Ann shops; zed's purchase two days later moves the clock past ann's timer.
constexpr char kEvents[] =
    R"({"type":"visit","customer_id":"ann","ts":"2026-03-02T09:00:00Z","page":"/sale"}
{"type":"visit","customer_id":"zed","ts":"2026-03-02T10:00:00Z","page":"/sale"}
{"type":"visit","customer_id":"ann","ts":"2026-03-03T09:00:00Z","page":"/sale"}
{"type":"wishlist","customer_id":"ann","ts":"2026-03-03T12:00:00Z"}
not json
{"type":"signup","customer_id":"ann","ts":"2026-03-03T13:00:00Z"}
{"type":"purchase","customer_id":"zed","ts":"2026-03-05T00:00:00Z","amount":900}
)";

struct Scenario {
  TempDir tmp;
  Scenario() {
    WriteFile(tmp.File("rules.yaml"), kScenarioRules);
    WriteFile(tmp.File("events.jsonl"), kEvents);
  }
  int Explain(const std::string& args, std::string* out) const {
    return RunCommand(RapportBinary() + " explain --rules " + tmp.File("rules.yaml") + " --events " +
                          tmp.File("events.jsonl") + " " + args + " 2>" + tmp.File("stderr.txt"),
                      out);
  }
};

}  // namespace

TEST_CASE("Explain lists a condition and each operand of its and/or/not with its source text") {
  auto loaded = rapport::rules::LoadRulesFromStrings({{"r.yaml", kScenarioRules}});
  REQUIRE(loaded.rules);
  const auto& c = loaded.rules->campaigns[*loaded.rules->FindCampaign("sale-nudge")];
  std::vector<std::pair<std::string, int>> parts;
  for (const auto& sub : rapport::rules::Explain(*c.condition)) parts.emplace_back(std::string(sub.text), sub.depth);
  // The chain `a and (b) and not c` gives three operands at one depth; the
  // parenthesized `or` keeps its parentheses and its own operands.
  CHECK(parts == std::vector<std::pair<std::string, int>>{
                     {"event.page == \"/sale\" and (customer.purchases == 0 or event.coupon == \"STAFF\") and not "
                      "customer.stage == \"partner\"",
                      0},
                     {"event.page == \"/sale\"", 1},
                     {"(customer.purchases == 0 or event.coupon == \"STAFF\")", 1},
                     {"customer.purchases == 0", 2},
                     {"event.coupon == \"STAFF\"", 2},
                     {"not customer.stage == \"partner\"", 1},
                     {"customer.stage == \"partner\"", 2},
                 });
  // Each part is an expression of its own, reading what its text reads.
  const auto subs = rapport::rules::Explain(*c.condition);
  CHECK(subs[0].expr == c.condition.get());
  CHECK(subs[1].expr->reads_event());
  CHECK(subs[3].expr->customer_fields().size() == 1);
  CHECK(!subs[3].expr->reads_event());

  // A condition without and/or/not is one part, the whole of it.
  const auto& simple = loaded.rules->campaigns[*loaded.rules->FindCampaign("thanks-vip")];
  auto one = rapport::rules::Explain(*simple.condition);
  REQUIRE(one.size() == 1);
  CHECK(one[0].text == "event.amount > 500");
}

TEST_CASE("rapport explain shows each step of one customer with the value of each part of the condition") {
  Scenario s;
  std::string out;
  REQUIRE(s.Explain("--customer ann", &out) == 0);
  INFO(out);
  CHECK(Contains(out,
                 "customer ann: 4 events, 1 timer came due; 6 events applied, 1 rejected, clock at "
                 "2026-03-05T00:00:00.000Z\n"));
  // The first visit: offered, every part of the condition, fired.
  CHECK(Contains(out,
                 "2026-03-02T09:00:00.000Z  event visit "
                 "{\"type\":\"visit\",\"customer_id\":\"ann\",\"ts\":\"2026-03-02T09:00:00Z\",\"page\":\"/sale\"}\n"
                 "  offered sale-nudge: condition true\n"
                 "    true     event.page == \"/sale\" and (customer.purchases == 0 or event.coupon == \"STAFF\") and "
                 "not customer.stage == \"partner\"\n"
                 "    true       event.page == \"/sale\"\n"
                 "    true       (customer.purchases == 0 or event.coupon == \"STAFF\")\n"
                 "    true         customer.purchases == 0\n"
                 "    unknown      event.coupon == \"STAFF\"\n"
                 "    true       not customer.stage == \"partner\"\n"
                 "    false        customer.stage == \"partner\"\n"
                 "  fired sale-nudge: push sale {\"visits\":1,\"page\":\"/sale\"}\n"));
  // The second visit: the cooldown.
  CHECK(Contains(out, "  suppressed sale-nudge: cooldown (cooldown 3d since its last firing)\n"));
  // The wishlist arms a timer; zed's purchase moves the clock past it.
  CHECK(Contains(out, "2026-03-03T12:00:00.000Z  event wishlist "));
  CHECK(Contains(out,
                 "  offered wishlist-reminder: no condition\n"
                 "  timer armed wishlist-reminder: due 2026-03-04T12:00:00.000Z\n"));
  CHECK(Contains(out,
                 "2026-03-04T12:00:00.000Z  timer wishlist-reminder came due\n"
                 "  fired wishlist-reminder: email wishlist {}\n"));
  // The holdout.
  CHECK(Contains(out,
                 "  held out signup-welcome: email welcome {} (control group: counts as a firing, not delivered)\n"));
  // Only ann's steps, in time order.
  CHECK(!Contains(out, "zed"));
  CHECK(out.find("2026-03-02T09:00") < out.find("2026-03-03T09:00"));
  CHECK(out.find("2026-03-03T13:00") < out.find("2026-03-04T12:00:00.000Z  timer"));

  // One campaign only.
  REQUIRE(s.Explain("--customer ann --campaign wishlist-reminder", &out) == 0);
  CHECK(!Contains(out, "sale-nudge"));
  CHECK(!Contains(out, "event visit"));
  CHECK(Contains(out, "timer wishlist-reminder came due"));
}

TEST_CASE("rapport explain --format json gives the same steps for tools") {
  Scenario s;
  std::string out;
  REQUIRE(s.Explain("--customer ann --format json", &out) == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(out);
  CHECK(std::string_view(doc["customer"]) == "ann");
  CHECK(int64_t(doc["rejected"]) == 1);
  CHECK(int64_t(doc["customer_events"]) == 4);
  simdjson::dom::array steps = doc["steps"];
  REQUIRE(steps.size() == 5);
  simdjson::dom::element first = steps.at(0);
  CHECK(std::string_view(first["kind"]) == "event");
  CHECK(std::string_view(first["event"]["page"]) == "/sale");
  simdjson::dom::element offered = first["decisions"].at(0);
  CHECK(std::string_view(offered["kind"]) == "offered");
  CHECK(bool(offered["condition_true"]));
  simdjson::dom::array parts = offered["condition"];
  REQUIRE(parts.size() == 7);
  CHECK(std::string_view(parts.at(4)["text"]) == "event.coupon == \"STAFF\"");
  CHECK(int64_t(parts.at(4)["depth"]) == 2);
  CHECK(parts.at(4)["value"].is_null());
  CHECK(bool(parts.at(6)["value"]) == false);
  CHECK(std::string_view(first["decisions"].at(1)["kind"]) == "fired");
  CHECK(std::string_view(first["decisions"].at(1)["action"]["campaign"]) == "sale-nudge");
  CHECK(std::string_view(steps.at(1)["decisions"].at(1)["reason"]) == "cooldown");
  simdjson::dom::element timer = steps.at(4);
  CHECK(std::string_view(timer["kind"]) == "timer");
  CHECK(std::string_view(timer["campaign"]) == "wishlist-reminder");
  CHECK(bool(timer["stale"]) == false);
  CHECK(std::string_view(steps.at(3)["decisions"].at(1)["kind"]) == "held_out");
}

TEST_CASE("rapport explain shows inactivity timers replaced and fired, up to --until") {
  TempDir tmp;
  WriteFile(tmp.File("events.jsonl"),
            "{\"type\":\"visit\",\"customer_id\":\"c1\",\"ts\":\"2026-01-01T10:00:00Z\"}\n"
            "{\"type\":\"visit\",\"customer_id\":\"c1\",\"ts\":\"2026-01-03T10:00:00Z\"}\n");
  std::string out;
  const std::string cmd = RapportBinary() + " explain --rules " + SourcePath("rules/packs/relationship") +
                          " --events " + tmp.File("events.jsonl") + " --customer c1";
  REQUIRE(RunCommand(cmd, &out) == 0);
  INFO(out);
  CHECK(Contains(out, "  timer armed lapsed-visitor: due 2026-01-31T10:00:00.000Z\n"));
  CHECK(Contains(out,
                 "  timer armed lapsed-visitor: due 2026-02-02T10:00:00.000Z, replacing the one due "
                 "2026-01-31T10:00:00.000Z\n"));
  // Without --until the clock stops at the last event: the timer is pending.
  CHECK(Contains(out, "0 timers came due"));
  CHECK(!Contains(out, "timer lapsed-visitor came due"));

  REQUIRE(RunCommand(cmd + " --until 2026-03-01T00:00:00Z", &out) == 0);
  CHECK(Contains(out,
                 "2026-02-02T10:00:00.000Z  timer lapsed-visitor came due\n"
                 "  offered lapsed-visitor: condition true\n"
                 "    true     customer.visits >= 2\n"
                 "  fired lapsed-visitor: email we-miss-you {\"visits\":2,"));
}

TEST_CASE("rapport explain exits 1 for a customer without events and 2 for bad usage") {
  Scenario s;
  std::string out;
  CHECK(s.Explain("--customer nobody", &out) == 1);
  CHECK(Contains(ReadFile(s.tmp.File("stderr.txt")), "no event of customer `nobody`"));
  CHECK(s.Explain("--customer ann --until yesterday", &out) == 2);
  CHECK(Contains(ReadFile(s.tmp.File("stderr.txt")), "--until `yesterday` is not an RFC 3339 time"));
  CHECK(s.Explain("--customer ann --campaign nope", &out) == 2);
  CHECK(s.Explain("", &out) == 2);  // --customer is required
}
