// `rapport validate` and `rapport replay` as a user runs them.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "temp_dir.h"

using namespace rapport::testing;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

TEST_CASE("golden scenarios replay to their expected actions byte for byte") {
  namespace fs = std::filesystem;
  int scenarios = 0;
  for (const auto& entry : fs::directory_iterator(SourcePath("tests/golden"))) {
    if (!entry.is_directory()) continue;
    ++scenarios;
    const fs::path dir = entry.path();
    SECTION(dir.filename().string()) {
      TempDir tmp;
      std::string rules = fs::exists(dir / "rules.yaml") ? (dir / "rules.yaml").string()
                                                          : SourcePath(ReadFile((dir / "rules-from").string()).substr(
                                                                0, ReadFile((dir / "rules-from").string()).find('\n')));
      std::string cmd = RapportBinary() + " replay --quiet --coupon-secret golden --rules " + Quote(rules) +
                        " --events " + Quote((dir / "events.jsonl").string()) + " --out " +
                        Quote(tmp.File("actions.jsonl")) + " --dead-letter " + Quote(tmp.File("dead.jsonl"));
      REQUIRE(RunCommand(cmd) == 0);
      CHECK(ReadFile(tmp.File("actions.jsonl")) == ReadFile((dir / "expected.jsonl").string()));
      if (fs::exists(dir / "expected-dead-letters.jsonl")) {
        std::string dead = Replace(ReadFile(tmp.File("dead.jsonl")), (dir / "events.jsonl").string(), "EVENTS");
        CHECK(dead == ReadFile((dir / "expected-dead-letters.jsonl").string()));
      }
    }
  }
  CHECK(scenarios > 0);
}

TEST_CASE("two replays of the same stream give the same bytes") {
  TempDir tmp;
  REQUIRE(RunCommand(RapportBinary() + " generate --customers 1500 --days 90 --seed 5 --bad-rate 0.01 --out " +
                     tmp.File("events.jsonl") + " 2>/dev/null") == 0);
  for (const char* out : {"a.jsonl", "b.jsonl"}) {
    REQUIRE(RunCommand(RapportBinary() + " replay --quiet --coupon-secret s --rules " +
                       Quote(SourcePath("rules/packs/relationship")) + " --events " + tmp.File("events.jsonl") +
                       " --out " + tmp.File(out) + " --commit-every 1000") == 0);
  }
  const std::string a = ReadFile(tmp.File("a.jsonl"));
  CHECK(a.size() > 1000);
  CHECK(a == ReadFile(tmp.File("b.jsonl")));
}

TEST_CASE("replay reads stdin, keeps state in --state, and prints a summary") {
  TempDir tmp;
  WriteFile(tmp.File("events.jsonl"),
            "{\"type\":\"purchase\",\"customer_id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\",\"amount\":3}\n"
            "\x01\x02 junk\n"
            "{\"type\":\"visit\",\"customer_id\":\"a\"}\n");
  std::string out;
  int code = RunCommand("cat " + tmp.File("events.jsonl") + " | " + RapportBinary() + " replay --rules " +
                            Quote(SourcePath("rules/packs/relationship")) + " --events - --state " +
                            tmp.File("state") + " 2>" + tmp.File("summary.txt"),
                        &out);
  REQUIRE(code == 0);
  CHECK(out.find("\"campaign\":\"post-purchase-thank-you\"") != std::string::npos);
  const std::string summary = ReadFile(tmp.File("summary.txt"));
  CHECK(std::regex_search(summary, std::regex("events read +3\n")));
  CHECK(std::regex_search(summary, std::regex("invalid_json +1\n")));
  CHECK(std::regex_search(summary, std::regex("missing_ts +1\n")));
  CHECK(summary.find("events/s") != std::string::npos);
  CHECK(std::filesystem::exists(tmp.File("state") + "/CURRENT"));
  // The same state again: the customer already bought, so no second thank-you.
  code = RunCommand(RapportBinary() + " replay --quiet --rules " + Quote(SourcePath("rules/packs/relationship")) +
                        " --events " + tmp.File("events.jsonl") + " --state " + tmp.File("state"),
                    &out);
  REQUIRE(code == 0);
  CHECK(out.empty());
}

TEST_CASE("validate exits 0 on the standard pack and 1 with every error as file:line:col") {
  std::string out;
  CHECK(RunCommand(RapportBinary() + " validate " + Quote(SourcePath("rules/packs/relationship")), &out) == 0);
  CHECK(out == "ok: 3 campaigns in 3 files\n");

  TempDir tmp;
  WriteFile(tmp.File("a.yaml"), "campaigns:\n  - id: x\n    trigger: {event: vist}\n    condition: customer.visits > 1d\n"
                                "    actions: [{channel: email, template: t}]\n");
  WriteFile(tmp.File("b.yaml"), "campaigns:\n  - id: y\n    trigger: {event: visit}\n    colour: red\n"
                                "    actions: [{channel: email, template: t}]\n");
  CHECK(RunCommand(RapportBinary() + " validate " + tmp.path().string(), &out) == 1);
  CHECK(out.find(tmp.File("a.yaml") + ":3:22: error[unknown-event-type]") != std::string::npos);
  CHECK(out.find(tmp.File("a.yaml") + ":4:32: error[type-mismatch]") != std::string::npos);
  CHECK(out.find(tmp.File("b.yaml") + ":4:5: error[unknown-key]: unknown key `colour`") != std::string::npos);
  CHECK(out.find("3 errors; the rule set is refused") != std::string::npos);

  CHECK(RunCommand(RapportBinary() + " validate --format json " + tmp.path().string(), &out) == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(out);
  CHECK(bool(doc["ok"]) == false);
  CHECK(int64_t(doc["errors"]) == 3);
  simdjson::dom::array diags = doc["diagnostics"];
  CHECK(diags.size() == 3);
  CHECK(std::string_view(diags.at(0)["code"]) == "unknown-event-type");
  CHECK(int64_t(diags.at(0)["line"]) == 3);
  CHECK(int64_t(diags.at(0)["column"]) == 22);
}

TEST_CASE("replay refuses broken rules and a bad --until with exit codes 1 and 2") {
  TempDir tmp;
  WriteFile(tmp.File("bad.yaml"), "campaigns: [{id: x}]\n");
  WriteFile(tmp.File("e.jsonl"), "");
  CHECK(RunCommand(RapportBinary() + " replay --rules " + tmp.File("bad.yaml") + " --events " + tmp.File("e.jsonl") +
                   " 2>/dev/null") == 1);
  CHECK(RunCommand(RapportBinary() + " replay --rules " + Quote(SourcePath("rules/packs/relationship")) +
                   " --events " + tmp.File("e.jsonl") + " --until tomorrow 2>/dev/null") == 2);
  CHECK(RunCommand(RapportBinary() + " replay --rules " + Quote(SourcePath("rules/packs/relationship")) +
                   " --events " + tmp.File("missing.jsonl") + " 2>/dev/null") == 2);
}
