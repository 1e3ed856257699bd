// `rapport replay --report`: the collector agrees with the processor's own
// counters, and the page it writes loads in a real browser (Debian's
// chromium, headless) with every chart drawn.
#include "rapport/connectors/report.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <regex>

#include "rapport/connectors/replay.h"
#include "temp_dir.h"

using namespace rapport::testing;

namespace {

// A ladder of its own (names the report must use), a campaign with a holdout
// and a goal, one with a goal and no holdout, and a cooldown that suppresses.
const char* kRules = R"(version: 1
event_types: [cart]
ladder:
  - stage: stranger
  - stage: buyer
    when: customer.purchases >= 1
  - stage: regular
    when: customer.purchases >= 3
  - stage: champion
    when: customer.referrals >= 1 and customer.purchases >= 3
campaigns:
  - id: cart-nudge
    trigger: {event: cart}
    condition: customer.purchases == 0
    limits: {cooldown: 14d}
    holdout: 30%
    goal:
      event: purchase
      condition: event.amount >= 10
      within: 7d
    actions: [{channel: email, template: cart-nudge}]
  - id: welcome
    trigger: {event: visit}
    condition: customer.visits == 1
    goal: {event: purchase, within: 30d}
    actions: [{channel: email, template: welcome}]
  - id: vip
    trigger: {stage: regular}
    actions: [{channel: email, template: vip}, {channel: sms, template: vip}]
)";

std::string Quote(const std::string& s) { return "'" + s + "'"; }

struct Scenario {
  TempDir tmp;
  std::string rules_dir, events;
  Scenario(const std::string& rules = kRules) {
    rules_dir = tmp.File("rules");
    std::filesystem::create_directory(rules_dir);
    WriteFile(rules_dir + "/campaigns.yaml", rules);
    events = tmp.File("events.jsonl");
    REQUIRE(RunCommand(RapportBinary() + " generate --customers 800 --days 60 --seed 11 --out " + Quote(events) +
                       " 2>/dev/null") == 0);
  }
  // Runs `rapport replay --report` and returns the report's path.
  std::string Report() {
    const std::string report = tmp.File("report.html");
    std::string out;
    REQUIRE(RunCommand(RapportBinary() + " replay --quiet --rules " + Quote(rules_dir) + " --events " + Quote(events) +
                           " --out /dev/null --report " + Quote(report) + " 2>&1",
                       &out) == 0);
    INFO(out);
    return report;
  }
};

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// The text of <svg id="id" ...>...</svg>, or "" when there is none.
std::string Svg(const std::string& dom, const std::string& id) {
  const size_t start = dom.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  const size_t end = dom.find("</svg>", start);
  return end == std::string::npos ? "" : dom.substr(start, end - start);
}

std::string Chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

}  // namespace

TEST_CASE("the report collector counts what the processor counts") {
  Scenario s;
  auto loaded = rapport::rules::LoadRules({s.rules_dir});
  REQUIRE(loaded.rules);
  rapport::connectors::ReportCollector collector(loaded.rules);
  rapport::connectors::ReplayOptions options;
  options.events_path = s.events;
  options.tracer = &collector;
  struct Discard : rapport::ActionSink {
    void Deliver(const rapport::FiredAction&) override {}
  } sink;
  auto summary = rapport::connectors::RunReplay(options, loaded.rules, sink);
  REQUIRE(summary.ok());
  const rapport::connectors::ReportData d = collector.Data();
  const auto& rules = *loaded.rules;
  uint64_t conversions = 0, held_conversions = 0;
  for (size_t ci = 0; ci < rules.campaigns.size(); ++ci) {
    const auto& counters = summary->processor.campaigns[rules.campaigns[ci].id];
    uint64_t per_day = 0;
    for (const auto& [day, counts] : d.firings_by_day) per_day += counts[ci];
    INFO(rules.campaigns[ci].id);
    CHECK(per_day == counters.fired);  // firings, though `vip` sends two actions each
    CHECK(d.conversions[ci] == counters.conversions);
    CHECK(d.conversions_held_out[ci] == counters.conversions_held_out);
    for (size_t k = 0; k < rapport::kSuppressionCount; ++k) CHECK(d.suppressed[ci][k] == counters.suppressed[k]);
    conversions += counters.conversions;
    held_conversions += counters.conversions_held_out;
  }
  CHECK(conversions > 0);
  CHECK(held_conversions > 0);
  CHECK(d.customers == 800);
  REQUIRE_FALSE(d.stages_by_week.empty());
  uint64_t in_last_week = 0;
  for (uint64_t n : d.stages_by_week.rbegin()->second) in_last_week += n;
  CHECK(in_last_week == d.customers);
  CHECK(d.stages_by_week.rbegin()->first - d.stages_by_week.begin()->first >= 8);  // 60 days
}

TEST_CASE("the report is one self-contained page that loads in headless Chromium with every chart drawn") {
  Scenario s;
  const std::string report = s.Report();
  const std::string html = ReadFile(report);
  // Self-contained: nothing is fetched from anywhere.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(html.find("viewBox=") != std::string::npos);

  const std::string chromium = Chromium();
  const char* ci = std::getenv("CI");
  if (chromium.empty()) {
    if (ci != nullptr && std::string(ci) == "true") FAIL("chromium is not installed: `make test` installs it");
    WARN("SKIPPED: chromium is not installed (./deploy/install-deps.sh chromium); the page was not rendered");
    return;
  }
  const std::string dom = s.tmp.File("dom.html"), log = s.tmp.File("chromium.log");
  // A profile directory of its own, so parallel runs never share one.
  const std::string flags =
      " --headless --disable-gpu --no-sandbox --no-first-run --user-data-dir=" + Quote(s.tmp.File("profile")) +
      " --enable-logging=stderr --v=0 ";
  REQUIRE(RunCommand(chromium + flags + "--dump-dom " + Quote("file://" + report) + " >" + Quote(dom) + " 2>" +
                     Quote(log)) == 0);
  const std::string logged = ReadFile(log);
  INFO(logged);
  CHECK(logged.find("Uncaught") == std::string::npos);
  CHECK(logged.find("CONSOLE") == std::string::npos);  // no console message of any level
  const std::string page = ReadFile(dom);
  REQUIRE(page.find("<h1>Replay report</h1>") != std::string::npos);

  const std::string actions = Svg(page, "actions-per-day");
  CHECK(Count(actions, "<path") == 3);  // one line per campaign that delivered
  CHECK(Count(actions, "<rect") > 50);  // a hover column per day
  const std::string lift = Svg(page, "conversion-lift");
  CHECK(Count(lift, "<rect") == 3);  // cart-nudge treated and held out, welcome treated
  CHECK(lift.find("no holdout") != std::string::npos);
  const std::string ladder = Svg(page, "ladder-funnel");
  CHECK(Count(ladder, "<rect") > 8);
  for (const char* stage : {"stranger", "buyer", "regular"}) CHECK(ladder.find(stage) != std::string::npos);
  const std::string suppressions = Svg(page, "suppressions");
  CHECK(Count(suppressions, "<rect") >= 1);
  CHECK(suppressions.find("cooldown") != std::string::npos);
  CHECK(page.find("stranger → buyer → regular → champion") != std::string::npos);
  CHECK(page.find("The rules declare no ladder") == std::string::npos);
  CHECK(std::regex_search(page, std::regex("customers</div><div class=\"v\">800<")));
}

TEST_CASE("the report says when the rules declare no ladder and no goal") {
  Scenario s(R"(version: 1
campaigns:
  - id: hello
    trigger: {event: visit}
    actions: [{channel: email, template: t}]
)");
  const std::string html = ReadFile(s.Report());
  CHECK(html.find("The rules declare no ladder") != std::string::npos);
  CHECK(html.find("prospect → customer → client → supporter → advocate → partner") != std::string::npos);
  CHECK(html.find("No campaign declares a <code>goal</code>") != std::string::npos);
  CHECK(html.find("Nothing was suppressed.") != std::string::npos);
  CHECK(html.find("<svg id=\"actions-per-day\"") != std::string::npos);
}

TEST_CASE("a report that cannot be written fails before the replay, with exit 2") {
  Scenario s;
  std::string out;
  CHECK(RunCommand(RapportBinary() + " replay --quiet --rules " + Quote(s.rules_dir) + " --events " + Quote(s.events) +
                       " --out /dev/null --report " + Quote(s.tmp.File("no/such/dir/report.html")) + " 2>&1",
                   &out) == 2);
  CHECK(out.find("cannot write the report") != std::string::npos);
}
