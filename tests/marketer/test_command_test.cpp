// `rapport test` as a marketer runs it: campaign tests in YAML, the real
// binary, real files.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "scenario.h"
#include "temp_dir.h"

using namespace rapport::testing;

namespace {

// Runs `rapport test` with `args`; stdout and stderr in *output.
int RunTest(const std::string& args, std::string* output) {
  return RunCommand(RapportBinary() + " test " + args + " 2>&1", output);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A strict reader for the XML that `--junit` writes: a declaration, then
// elements with attributes, text, and the five named entities and &#N;.
// Anything else is malformed, so a test that parses the file proves it is
// well-formed for these constructs.
struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;
  std::vector<XmlElement> children;

  std::vector<const XmlElement*> All(const std::string& child) const {
    std::vector<const XmlElement*> out;
    for (const XmlElement& c : children) {
      if (c.name == child) out.push_back(&c);
    }
    return out;
  }
};

class XmlReader {
 public:
  explicit XmlReader(const std::string& text) : s_(text) {}

  bool Read(XmlElement* root) {
    if (s_.compare(0, 5, "<?xml") == 0) {
      size_t end = s_.find("?>");
      if (end == std::string::npos) return false;
      p_ = end + 2;
    }
    Blank();
    if (!Element(root)) return false;
    Blank();
    return p_ == s_.size();
  }

 private:
  void Blank() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\t' || s_[p_] == '\r')) ++p_;
  }
  bool Name(std::string* out) {
    size_t start = p_;
    while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '_' || s_[p_] == '-')) ++p_;
    *out = s_.substr(start, p_ - start);
    return !out->empty();
  }
  bool Text(char stop, std::string* out) {
    while (p_ < s_.size() && s_[p_] != stop) {
      char c = s_[p_];
      if (c == '<' || (stop == '"' && c == '>')) return false;
      if (c != '&') {
        out->push_back(c);
        ++p_;
        continue;
      }
      size_t semi = s_.find(';', p_);
      if (semi == std::string::npos) return false;
      const std::string entity = s_.substr(p_ + 1, semi - p_ - 1);
      static const std::map<std::string, char> kNamed = {
          {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
      if (auto it = kNamed.find(entity); it != kNamed.end()) {
        out->push_back(it->second);
      } else if (entity.size() > 1 && entity[0] == '#' &&
                 entity.find_first_not_of("0123456789", 1) == std::string::npos) {
        out->push_back(static_cast<char>(std::stoi(entity.substr(1))));
      } else {
        return false;
      }
      p_ = semi + 1;
    }
    return p_ < s_.size() || stop == '<';
  }
  bool Element(XmlElement* e) {
    if (p_ >= s_.size() || s_[p_] != '<') return false;
    ++p_;
    if (!Name(&e->name)) return false;
    while (true) {
      Blank();
      if (p_ >= s_.size()) return false;
      if (s_.compare(p_, 2, "/>") == 0) {
        p_ += 2;
        return true;
      }
      if (s_[p_] == '>') {
        ++p_;
        break;
      }
      std::string key, value;
      if (!Name(&key) || p_ + 1 >= s_.size() || s_[p_] != '=' || s_[p_ + 1] != '"') return false;
      p_ += 2;
      if (!Text('"', &value)) return false;
      ++p_;
      if (!e->attributes.emplace(key, value).second) return false;
    }
    while (true) {
      if (!Text('<', &e->text)) return false;
      if (p_ >= s_.size()) return false;
      if (s_.compare(p_, 2, "</") == 0) {
        p_ += 2;
        std::string closing;
        if (!Name(&closing) || closing != e->name || p_ >= s_.size() || s_[p_] != '>') return false;
        ++p_;
        return true;
      }
      e->children.emplace_back();
      if (!Element(&e->children.back())) return false;
    }
  }

  const std::string& s_;
  size_t p_ = 0;
};

// Every expectation kind and every suppression reason, on the scenario's rules.
constexpr char kPassingTests[] = R"(rules: rules.yaml
start: 2026-03-02T09:00:00Z
fixtures:
  buyer:
    - {at: -10d, type: purchase, amount: 20}
tests:
  - name: cooldown holds the next sale visits back
    customer: ann
    events:
      - {at: +0, type: visit, fields: {page: /sale}, every: 1d, times: 4}
    expect:
      - {fired: sale-nudge, at: +0, channel: push, template: sale, payload: {visits: 1, page: /sale}}
      - {suppressed: sale-nudge, reason: cooldown, at: +1d}
      - {suppressed: sale-nudge, reason: cooldown, from: +1d, until: +2d, count: 2}
      - {fired: sale-nudge, at: +3d, payload: {visits: 4}}
      - {fired: sale-nudge, count: 2}
  - name: a buyer gets no sale nudge
    customer: ann
    given: {ann: buyer}
    events:
      - {at: +0, type: visit, fields: {page: /sale}}
    expect:
      - {never: sale-nudge}
      - {fired: thanks-standard, at: -10d, payload: {amount: 20}}
  - name: at most two carts a week
    customer: bo
    events:
      - {at: +0, type: cart, every: 1d, times: 5}
      - {at: +7d, type: cart}
    expect:
      - {fired: cart-cap, until: +1d, count: 2}
      - {suppressed: cart-cap, reason: at_most, count: 3}
      - {fired: cart-cap, at: +7d}
  - name: a referral is thanked once
    customer: cy
    events:
      - {at: +0, type: referral}
      - {at: +1h30m, type: referral}
    expect:
      - {fired: referral-thanks, at: +0, payload_matches: {code: "^REF-[0-9A-Z]{10}$"}}
      - {suppressed: referral-thanks, reason: once_per_customer, at: +1h30m}
  - name: the vip thank-you wins its group
    events:
      - {at: +0, type: purchase, customer: dee, amount: 900}
      - {at: +0, type: purchase, customer: eve, amount: 20.5}
    expect:
      - {fired: thanks-vip, customer: dee, at: +0, payload: {amount: 900}}
      - {suppressed: thanks-standard, customer: dee, reason: group_priority, at: +0}
      - {fired: thanks-standard, customer: eve, at: +0, payload: {amount: 20.5}}
      - {never: thanks-vip, customer: eve}
  - name: a purchase during the wait fails the recheck
    customer: fay
    events:
      - {at: +0, type: wishlist}
      - {at: +2h, type: wishlist}
      - {at: +5h, type: purchase, amount: 15}
      - {at: 2026-03-10T00:00:00Z, type: wishlist}
    until: +12d
    expect:
      - {suppressed: wishlist-reminder, reason: delay_already_pending, at: +2h}
      - {suppressed: wishlist-reminder, reason: recheck_failed, at: +1d}
      - {fired: wishlist-reminder, at: 2026-03-11T00:00:00Z, count: 1}
  - name: the control group is held out
    customer: gil
    events:
      - {at: +0, type: signup}
    expect:
      - {suppressed: signup-welcome, reason: held_out, at: +0}
)";

// Each of these expectations is wrong.
constexpr char kFailingTests[] = R"(rules: rules.yaml
start: 2026-03-02T09:00:00Z
tests:
  - name: the cooldown is longer than this test thinks
    customer: ann
    events:
      - {at: +0, type: visit, fields: {page: /sale}, every: 1d, times: 3}
    expect:
      - {fired: sale-nudge, at: +1d}
  - name: wrong payload
    customer: bo
    events:
      - {at: +0, type: purchase, amount: 20}
    expect:
      - {fired: thanks-standard, at: +0, payload: {amount: 21}}
  - name: held out is not fired
    customer: gil
    events:
      - {at: +0, type: signup}
    expect:
      - {fired: signup-welcome}
      - {never: signup-welcome}
  - name: wrong reason
    customer: cy
    events:
      - {at: +0, type: referral, every: 1h, times: 2}
    expect:
      - {suppressed: referral-thanks, reason: cooldown}
  - name: this one passes
    customer: dee
    events:
      - {at: +0, type: cart}
    expect:
      - {fired: cart-cap, at: +0}
)";

}  // namespace

TEST_CASE("rapport test passes a file that checks every expectation kind and suppression reason") {
  TempDir tmp;
  WriteFile(tmp.File("rules.yaml"), kScenarioRules);
  WriteFile(tmp.File("scenario.test.yaml"), kPassingTests);
  std::string out;
  CHECK(RunTest(tmp.path().string(), &out) == 0);
  INFO(out);
  CHECK(Contains(out, tmp.File("scenario.test.yaml") + "\n"));
  CHECK(Contains(out, "  ok    cooldown holds the next sale visits back\n"));
  CHECK(Contains(out, "  ok    the control group is held out\n"));
  CHECK(Contains(out, "tests: 7 passed, 0 failed\n"));
  // Rule files beside the tests are not tests.
  CHECK(!Contains(out, "rules.yaml\n"));
}

TEST_CASE("rapport test shows the expected against the actual actions and the explanation") {
  TempDir tmp;
  WriteFile(tmp.File("rules.yaml"), kScenarioRules);
  WriteFile(tmp.File("failing.test.yaml"), kFailingTests);
  std::string out;
  CHECK(RunTest(tmp.File("failing.test.yaml"), &out) == 1);
  INFO(out);
  const std::string f = tmp.File("failing.test.yaml");
  CHECK(Contains(out, "tests: 1 passed, 4 failed\n"));
  CHECK(Contains(out, "  ok    this one passes\n"));

  // fired: the expectation, what happened instead, the customer's actions
  // with times, and the explanation of the campaign.
  CHECK(Contains(out, "  FAIL  the cooldown is longer than this test thinks\n"));
  CHECK(Contains(out, f + ":9:9: expected sale-nudge to fire for ann at +1d (2026-03-03T09:00:00.000Z)\n"));
  CHECK(Contains(out,
                 "but it did not fire at +1d (2026-03-03T09:00:00.000Z); it fired at +0; "
                 "it was suppressed (cooldown) at +1d\n"));
  CHECK(Contains(out, "actual actions of ann:\n"));
  CHECK(
      Contains(out, "+0 (2026-03-02T09:00:00.000Z)  fired sale-nudge: push sale {\"visits\":1,\"page\":\"/sale\"}\n"));
  CHECK(Contains(out, "explanation of sale-nudge for ann (rapport explain):\n"));
  CHECK(Contains(out, "2026-03-03T09:00:00.000Z (+1d)  event visit "));
  CHECK(Contains(out, "suppressed sale-nudge: cooldown (cooldown 3d since its last firing)\n"));

  // payload: the field that differs.
  CHECK(Contains(out, "but at +0 payload.amount is 20, expected 21\n"));
  // held out: neither delivered nor "never fired".
  CHECK(Contains(out, "but it was held out (the customer is in its control group) at +0\n"));
  CHECK(Contains(out, "expected signup-welcome never to fire for gil from +0 to +0\n"));
  CHECK(Contains(out, "but it fired at +0 (2026-03-02T09:00:00.000Z) (held out)\n"));
  CHECK(Contains(out, "held out signup-welcome: email welcome {} (control group: counts as a firing, not delivered)"));
  // suppressed: the reasons seen instead.
  CHECK(Contains(out, "expected referral-thanks to be suppressed for cy by cooldown from +0 to +1h\n"));
  CHECK(Contains(out, "but it was not; suppressions seen: once_per_customer at +1h; it fired at +0\n"));
}

TEST_CASE("rapport test --junit writes JUnit XML with each case and its failure") {
  TempDir tmp;
  WriteFile(tmp.File("rules.yaml"), kScenarioRules);
  WriteFile(tmp.File("a.test.yaml"), kPassingTests);
  WriteFile(tmp.File("b.test.yaml"), kFailingTests);
  std::string out;
  CHECK(RunTest(tmp.path().string() + " --junit " + tmp.File("junit.xml"), &out) == 1);
  XmlElement root;
  const std::string xml = ReadFile(tmp.File("junit.xml"));
  INFO(xml);
  REQUIRE(XmlReader(xml).Read(&root));
  CHECK(root.name == "testsuites");
  CHECK(root.attributes["tests"] == "12");
  CHECK(root.attributes["failures"] == "4");
  CHECK(root.attributes["errors"] == "0");
  auto suites = root.All("testsuite");
  REQUIRE(suites.size() == 2);
  CHECK(suites[0]->attributes.at("name") == tmp.File("a.test.yaml"));
  CHECK(suites[0]->attributes.at("tests") == "7");
  CHECK(suites[0]->attributes.at("failures") == "0");
  CHECK(suites[0]->All("testcase").size() == 7);
  CHECK(suites[0]->All("testcase")[0]->attributes.at("name") == "cooldown holds the next sale visits back");
  CHECK(suites[0]->All("testcase")[0]->children.empty());

  auto cases = suites[1]->All("testcase");
  REQUIRE(cases.size() == 5);
  CHECK(cases[0]->attributes.at("classname") == tmp.File("b.test.yaml"));
  auto failures = cases[0]->All("failure");
  REQUIRE(failures.size() == 1);
  // The message keeps its line break; the body is the whole report.
  CHECK(failures[0]->attributes.at("message") ==
        tmp.File("b.test.yaml") +
            ":9:9: expected sale-nudge to fire for ann at +1d (2026-03-03T09:00:00.000Z)\n"
            "  but it did not fire at +1d (2026-03-03T09:00:00.000Z); it fired at +0; it was suppressed (cooldown) "
            "at +1d");
  CHECK(Contains(failures[0]->text, "actual actions of ann:\n"));
  CHECK(Contains(failures[0]->text, "{\"visits\":1,\"page\":\"/sale\"}"));
  CHECK(cases[4]->attributes.at("name") == "this one passes");
  CHECK(cases[4]->All("failure").empty());
}

TEST_CASE("rapport test reports every mistake in a test file at file:line:col and runs nothing") {
  TempDir tmp;
  WriteFile(tmp.File("rules.yaml"), kScenarioRules);
  const std::string f = tmp.File("bad.test.yaml");
  WriteFile(f,
            "rules: rules.yaml\n"
            "start: 2026-03-02T09:00:00Z\n"
            "tests:\n"
            "  - name: typos\n"
            "    customer: ann\n"
            "    evnets: []\n"
            "    events:\n"
            "      - {at: tomorrow, type: visit}\n"
            "      - {at: +1d, type: purchase}\n"
            "      - {at: +2d, type: visit, colour: red}\n"
            "      - {at: +3d, type: visit, every: 1d}\n"
            "    expect:\n"
            "      - {fired: sale-nudg, at: +1d}\n"
            "      - {suppressed: cart-cap, reason: capped}\n"
            "      - {never: cart-cap, customer: ann, at: +1d}\n"
            "      - {at: +1d}\n"
            "  - name: no customer\n"
            "    given: {bob: buyer}\n"
            "    events:\n"
            "      - {at: +0, type: visit}\n"
            "    expect:\n"
            "      - {never: cart-cap}\n");
  std::string out;
  CHECK(RunTest(f + " --junit " + tmp.File("junit.xml"), &out) == 2);
  INFO(out);
  CHECK(Contains(out, f + ":6:5: error[unknown-key]: unknown key `evnets` in a test (did you mean `events`?)\n"));
  CHECK(Contains(out, f + ":8:14: error[bad-value]: `at` `tomorrow` is not a time (write an offset from the "
                          "test's start, like +0, +2d, +1h30m or -10d, or an RFC 3339 time)\n"));
  CHECK(Contains(out, f + ":9:9: error[missing-key]: a purchase needs an `amount`"));
  CHECK(Contains(out, f + ":10:32: error[unknown-key]: unknown key `colour` in an event"));
  CHECK(Contains(out, f + ":11:39: error[missing-key]: a repeated event needs both `every` and `times`"));
  CHECK(Contains(out, f + ":13:17: error[bad-value]: no campaign `sale-nudg` in the rules under test "
                          "(did you mean `sale-nudge`?)\n"));
  CHECK(Contains(out, f + ":14:40: error[bad-value]: unknown reason `capped` (one of: held_out"));
  CHECK(Contains(out, f + ":15:42: error[unknown-key]: unknown key `at` in a `never` expectation"));
  CHECK(Contains(out, f + ":16:9: error[missing-key]: an expectation needs one of `fired`, `never` or `suppressed`"));
  CHECK(Contains(out, f + ":18:18: error[bad-value]: no fixture `buyer`"));
  CHECK(Contains(out, f + ":20:9: error[missing-key]: the event has no `customer`"));
  CHECK(Contains(out, f + ":22:9: error[missing-key]: the expectation has no `customer`"));
  CHECK(Contains(out, "the file has errors; none of its tests ran\n"));
  CHECK(!Contains(out, "  ok  "));
  CHECK(Contains(out, "tests: 0 passed, 0 failed; 1 file with errors not run\n"));

  XmlElement root;
  REQUIRE(XmlReader(ReadFile(tmp.File("junit.xml"))).Read(&root));
  CHECK(root.attributes["errors"] == "1");
  auto suites = root.All("testsuite");
  REQUIRE(suites.size() == 1);
  REQUIRE(suites[0]->All("testcase").size() == 1);
  auto errors = suites[0]->All("testcase")[0]->All("error");
  REQUIRE(errors.size() == 1);
  CHECK(Contains(errors[0]->text, f + ":13:17: error[bad-value]"));
}

TEST_CASE("rapport test reports broken YAML, a missing start and broken rules, with exit 2") {
  TempDir tmp;
  WriteFile(tmp.File("rules.yaml"), kScenarioRules);
  WriteFile(tmp.File("broken-rules.yaml"), "campaigns:\n  - id: x\n    trigger: {event: vist}\n");
  WriteFile(tmp.File("yaml.test.yaml"), "rules: rules.yaml\ntests:\n  - name: [unclosed\n");
  WriteFile(tmp.File("start.test.yaml"),
            "rules: rules.yaml\ntests:\n  - name: when?\n    customer: a\n    expect: [{never: cart-cap}]\n");
  WriteFile(tmp.File("rules.test.yaml"),
            "rules: [broken-rules.yaml]\nstart: 2026-01-01T00:00:00Z\n"
            "tests:\n  - name: x\n    customer: a\n    expect: [{never: x}]\n");
  WriteFile(tmp.File("late.test.yaml"),
            "rules: rules.yaml\nstart: 2026-01-01T00:00:00Z\ntests:\n  - name: late\n    customer: a\n"
            "    until: +1d\n    events:\n      - {at: +0, type: cart, every: 12h, times: 4}\n"
            "    expect:\n      - {never: cart-cap, until: +2d}\n");
  std::string out;
  CHECK(RunTest(tmp.path().string(), &out) == 2);
  INFO(out);
  CHECK(Contains(out, tmp.File("yaml.test.yaml") + ":4:1: error[yaml-syntax]"));
  CHECK(Contains(out, tmp.File("late.test.yaml") + ":8:9: error[bad-value]: the event at +1d12h is after the end of "
                                                   "the test (`until: +1d`)"));
  CHECK(Contains(out, tmp.File("late.test.yaml") + ":10:9: error[bad-value]: the expectation looks at +2d, after the "
                                                   "end of the test (`until: +1d`)"));
  CHECK(Contains(out, tmp.File("start.test.yaml") +
                          ":3:5: error[missing-key]: the test has no `start` (give it (or "
                          "the whole file) a start time, like start: 2026-01-05T10:00:00Z)\n"));
  CHECK(Contains(out, tmp.File("broken-rules.yaml") + ":3:22: error[unknown-event-type]"));
  CHECK(Contains(out, tmp.File("rules.test.yaml") + ":1:8: error[bad-value]: the rules under test do not load"));

  CHECK(RunTest(tmp.File("nowhere"), &out) == 2);
  CHECK(Contains(out, tmp.File("nowhere") + ": error[io]: no such file or directory"));
}
