// The standard pack over a generated stream with 1% malformed lines, checked
// against an independent, deliberately plain computation of the three
// campaigns' semantics as docs/rule-language.md states them.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <map>
#include <tuple>

#include "rapport/connectors/replay.h"
#include "rapport/connectors/store_simulator.h"
#include "temp_dir.h"

namespace {

using rapport::testing::SourcePath;
using rapport::testing::TempDir;

constexpr int64_t kDay = 86400000;

// Only the generator's own formats: "YYYY-MM-DDTHH:MM:SS.mmmZ".
bool ParseGeneratorTs(std::string_view s, int64_t* ms) {
  if (s.size() != 24 || s[23] != 'Z') return false;
  auto num = [&](size_t pos, size_t n, int* out) {
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      if (s[pos + i] < '0' || s[pos + i] > '9') return false;
      v = v * 10 + (s[pos + i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, se, mil;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) || !num(14, 2, &mi) ||
      !num(17, 2, &se) || !num(20, 3, &mil)) {
    return false;
  }
  // Days from civil (the same algorithm as any calendar library).
  y -= mo <= 2;
  int64_t era = y / 400, yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + se * 1000 + mil;
  return true;
}

std::vector<std::string> Reference(const std::string& events_path) {
  struct Customer {
    int visits = 0, purchases = 0, referrals = 0;
    int64_t last_visit = INT64_MIN;
    int64_t lapse_due = INT64_MIN;
    bool referral_pending = false, asked = false;
  };
  std::map<std::string, Customer> customers;
  std::map<std::tuple<int64_t, std::string, std::string>, bool> timers;
  std::vector<std::string> out;
  int64_t clock = INT64_MIN;
  auto fmt = [](int64_t ms) { return rapport::FormatRfc3339(rapport::EventTime{ms}); };
  auto fire = [&](int64_t upto) {
    while (!timers.empty() && std::get<0>(timers.begin()->first) <= upto) {
      auto [due, who, campaign] = timers.begin()->first;
      timers.erase(timers.begin());
      Customer& c = customers[who];
      if (campaign == "lapsed-visitor") {
        c.lapse_due = INT64_MIN;
        if (c.visits >= 2) out.push_back("lapsed-visitor " + who + " " + fmt(due));
      } else {
        c.referral_pending = false;
        if (c.referrals == 0 && !c.asked) {
          c.asked = true;
          out.push_back("referral-request " + who + " " + fmt(due));
        }
      }
    }
  };
  simdjson::dom::parser parser;
  simdjson::padded_string text = simdjson::padded_string::load(events_path);
  std::string_view all(text.data(), text.size());
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string_view::npos) end = all.size();
    simdjson::padded_string line(all.substr(pos, end - pos));
    pos = end + 1;
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS || !doc.is_object()) continue;
    std::string_view type, who, ts_text;
    int64_t ts;
    if (doc["type"].get(type) || type.empty() || doc["customer_id"].get(who) || who.empty() ||
        doc["ts"].get(ts_text) || !ParseGeneratorTs(ts_text, &ts)) {
      continue;
    }
    double amount;
    if (type == "purchase" && doc["amount"].get(amount)) continue;
    if (ts > clock) {
      fire(ts);
      clock = ts;
    }
    Customer& c = customers[std::string(who)];
    if (type == "visit") {
      ++c.visits;
      c.last_visit = std::max(c.last_visit, ts);
      if (c.lapse_due != INT64_MIN) timers.erase({c.lapse_due, std::string(who), "lapsed-visitor"});
      c.lapse_due = c.last_visit + 30 * kDay;
      timers[{c.lapse_due, std::string(who), "lapsed-visitor"}] = true;
    } else if (type == "purchase") {
      ++c.purchases;
      if (c.purchases == 1) out.push_back("post-purchase-thank-you " + std::string(who) + " " + fmt(ts));
      if (c.purchases == 3 && !c.referral_pending && !c.asked) {
        c.referral_pending = true;
        timers[{ts + 2 * kDay, std::string(who), "referral-request"}] = true;
      }
    } else if (type == "referral") {
      ++c.referrals;
    }
  }
  fire(clock);
  return out;
}

class Collect : public rapport::ActionSink {
 public:
  void Deliver(const rapport::FiredAction& a) override {
    lines.push_back(a.campaign->id + " " + std::string(a.customer_id) + " " + rapport::FormatRfc3339(a.ts));
  }
  std::vector<std::string> lines;
};

}  // namespace

TEST_CASE("the standard pack over a generated stream equals an independent computation") {
  TempDir dir;
  const std::string events = dir.File("events.jsonl");
  rapport::connectors::StoreSimulatorOptions sim;
  sim.customers = 3000;
  sim.days = 150;
  sim.seed = 11;
  sim.bad_rate = 0.01;
  std::FILE* f = std::fopen(events.c_str(), "wb");
  REQUIRE(f != nullptr);
  rapport::connectors::GenerateStats stats;
  REQUIRE(rapport::connectors::WriteStoreEvents(sim, f, &stats).ok());
  std::fclose(f);
  REQUIRE(stats.malformed > 0);

  auto loaded = rapport::rules::LoadRules({SourcePath("rules/packs/relationship")});
  REQUIRE(loaded.rules);
  rapport::connectors::ReplayOptions options;
  options.events_path = events;
  options.coupon_secret = "s";
  options.commit_every = 5000;  // several commit groups
  options.cache_capacity = 500;  // and evictions, so profiles round-trip through RocksDB
  Collect sink;
  auto summary = rapport::connectors::RunReplay(options, loaded.rules, sink);
  REQUIRE(summary.ok());
  CHECK(summary->rejected > 0);
  CHECK(summary->accepted + summary->rejected == summary->lines);
  CHECK(summary->lines == stats.events + stats.malformed);

  std::vector<std::string> expected = Reference(events);
  std::map<std::string, int> per_campaign;
  for (const auto& l : expected) ++per_campaign[l.substr(0, l.find(' '))];
  CHECK(per_campaign["post-purchase-thank-you"] > 100);
  CHECK(per_campaign["lapsed-visitor"] > 100);
  CHECK(per_campaign["referral-request"] > 10);
  REQUIRE(sink.lines.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("action " << i);
    REQUIRE(sink.lines[i] == expected[i]);
  }
}
