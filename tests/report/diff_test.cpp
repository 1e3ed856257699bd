// `rapport diff`: two rule sets over the same events, compared action by
// action, through the real binary.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "temp_dir.h"

using namespace rapport::testing;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Rules(const std::string& threshold) {
  return R"(version: 1
campaigns:
  - id: big-order
    trigger: {event: purchase}
    condition: event.amount > )" +
         threshold + R"(
    actions: [{channel: email, template: big, payload: {code: "{{ coupon('BIG') }}"}}]
  - id: welcome
    trigger: {event: visit}
    condition: customer.visits == 1
    actions: [{channel: email, template: welcome}]
)";
}

struct Fixture {
  TempDir tmp;
  std::string events = tmp.File("events.jsonl");
  Fixture() {
    REQUIRE(RunCommand(RapportBinary() + " generate --customers 400 --days 30 --seed 4 --out " + Quote(events) +
                       " 2>/dev/null") == 0);
  }
  std::string WriteRules(const std::string& name, const std::string& yaml) {
    const std::string dir = tmp.File(name);
    std::filesystem::create_directory(dir);
    WriteFile(dir + "/rules.yaml", yaml);
    return dir;
  }
  int Diff(const std::string& old_rules, const std::string& new_rules, const std::string& extra, std::string* out) {
    return RunCommand(RapportBinary() + " diff --rules " + Quote(old_rules) + " --rules " + Quote(new_rules) +
                          " --events " + Quote(events) + " " + extra + " 2>&1",
                      out);
  }
};

}  // namespace

TEST_CASE("a loosened condition adds actions for exactly the customers it now lets through") {
  Fixture f;
  const std::string old_rules = f.WriteRules("old", Rules("100"));
  const std::string new_rules = f.WriteRules("new", Rules("50"));
  // What the new threshold adds: purchases of more than 50 and at most 100.
  std::set<std::pair<std::string, std::string>> expected;  // (customer, ts as written)
  {
    simdjson::dom::parser parser;
    simdjson::dom::document_stream stream;
    REQUIRE(parser.load_many(f.events).get(stream) == simdjson::SUCCESS);
    for (auto doc : stream) {
      simdjson::dom::element e;
      if (doc.get(e) != simdjson::SUCCESS) continue;
      std::string_view type, customer, ts;
      double amount;
      if (e["type"].get(type) || type != "purchase" || e["amount"].get(amount)) continue;
      if (amount > 50 && amount <= 100 && !e["customer_id"].get(customer) && !e["ts"].get(ts)) {
        expected.emplace(std::string(customer), std::string(ts));
      }
    }
  }
  REQUIRE(expected.size() > 10);

  std::string out;
  REQUIRE(f.Diff(old_rules, new_rules, "--format json --samples 4", &out) == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  INFO(out);
  REQUIRE(parser.parse(out).get(doc) == simdjson::SUCCESS);
  CHECK(bool(doc["changed"]) == true);
  simdjson::dom::array campaigns = doc["campaigns"];
  REQUIRE(campaigns.size() == 2);
  simdjson::dom::element big = campaigns.at(0), welcome = campaigns.at(1);
  CHECK(std::string_view(big["campaign"]) == "big-order");
  CHECK(int64_t(big["added"]) == static_cast<int64_t>(expected.size()));
  CHECK(int64_t(big["removed"]) == 0);
  CHECK(int64_t(big["new_actions"]) - int64_t(big["old_actions"]) == static_cast<int64_t>(expected.size()));
  simdjson::dom::array samples = big["added_samples"];
  CHECK(samples.size() == 4);
  std::set<std::string> sampled;
  std::set<std::string> expected_customers;
  for (const auto& [customer, ts] : expected) expected_customers.insert(customer);
  for (simdjson::dom::element sample : samples) {
    const std::string customer{std::string_view(sample["customer_id"])};
    CHECK(expected_customers.count(customer) == 1);
    CHECK(sampled.insert(customer).second);  // distinct customers
  }
  CHECK(int64_t(welcome["added"]) == 0);
  CHECK(int64_t(welcome["removed"]) == 0);
  CHECK(int64_t(welcome["old_actions"]) == 400);
  CHECK(int64_t(doc["total"]["added"]) == static_cast<int64_t>(expected.size()));

  // The other way round, the same actions are removed; text for people.
  REQUIRE(f.Diff(new_rules, old_rules, "--samples 2", &out) == 0);
  CHECK(out.find("big-order") != std::string::npos);
  CHECK(out.find("-" + std::to_string(expected.size())) != std::string::npos);
  CHECK(out.find("removed for") != std::string::npos);
  CHECK(out.find("no change") == std::string::npos);
}

TEST_CASE("identical rule sets report no change, from a file or from stdin") {
  Fixture f;
  const std::string a = f.WriteRules("a", Rules("100"));
  const std::string b = f.WriteRules("b", Rules("100"));
  std::string out;
  REQUIRE(f.Diff(a, b, "--format json", &out) == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  INFO(out);
  REQUIRE(parser.parse(out).get(doc) == simdjson::SUCCESS);
  CHECK(bool(doc["changed"]) == false);
  CHECK(int64_t(doc["total"]["added"]) == 0);
  CHECK(int64_t(doc["total"]["removed"]) == 0);
  CHECK(int64_t(doc["total"]["old_actions"]) > 400);
  CHECK(int64_t(doc["total"]["old_actions"]) == int64_t(doc["total"]["new_actions"]));

  REQUIRE(RunCommand(RapportBinary() + " diff --rules " + Quote(a) + " --rules " + Quote(b) + " --events - < " +
                         Quote(f.events) + " 2>&1",
                     &out) == 0);
  CHECK(out.find("no change: both rule sets fire the same actions") != std::string::npos);
}

TEST_CASE("diff needs two rule sets without errors") {
  Fixture f;
  const std::string a = f.WriteRules("a", Rules("100"));
  const std::string bad = f.WriteRules("bad", Rules("100") + "  - id: broken\n    trigger: {event: nope}\n");
  std::string out;
  CHECK(RunCommand(RapportBinary() + " diff --rules " + Quote(a) + " --events " + Quote(f.events) + " 2>&1", &out) ==
        2);
  CHECK(out.find("give --rules twice") != std::string::npos);
  CHECK(f.Diff(a, bad, "", &out) == 1);
  CHECK(out.find("rules.yaml:12:22: error[unknown-event-type]") != std::string::npos);
  CHECK(out.find("the new rules") != std::string::npos);
}
