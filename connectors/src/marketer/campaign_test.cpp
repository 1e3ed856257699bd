#include "rapport/connectors/campaign_test.h"

#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "rapport/connectors/explain.h"
#include "rapport/connectors/replay.h"
#include "rapport/engine/event.h"
#include "rapport/engine/json_writer.h"
#include "rapport/engine/processor.h"
#include "rapport/engine/state_store.h"
#include "rapport/rules/json_number.h"
#include "rapport/rules/rule_set.h"
#include "rapport/rules/suggest.h"

namespace rapport::connectors {

bool CampaignTestFile::ok() const {
  return problems.empty() && std::all_of(cases.begin(), cases.end(), [](const auto& c) { return c.passed; });
}

namespace {

namespace fs = std::filesystem;
using rules::Code;
using rules::Diagnostic;
using rules::Diagnostics;

// The secret `rapport replay` uses when none is set, so that a test shows the
// coupon codes and action ids of such a replay.
constexpr char kCouponSecret[] = "rapport-replay-default-secret";
constexpr int64_t kMaxRepeat = 10000;
constexpr std::string_view kHeldOut = "held_out";

// "did you mean `x`?" for the closest candidate, or "".
template <class Range>
std::string DidYouMean(std::string_view name, const Range& candidates) {
  std::string best = rules::Closest(name, candidates);
  return best.empty() ? std::string() : "did you mean `" + best + "`?";
}

// ------------------------------------------------------------ the model ---

// A time as written: an offset from the test's start ("+2d") or absolute.
struct TimeSpec {
  bool absolute = false;
  EventTime time;
  Duration offset;
  EventTime At(EventTime start) const { return absolute ? time : start + offset; }
};

// An event item of a fixture or a test, before it is given a start and a customer.
struct EventSpec {
  YAML::Mark mark;
  std::string where;
  TimeSpec at;
  std::string type;
  std::string customer;  // empty: the test's customer, or the one a fixture is given to
  std::string amount_json, event_id;
  std::vector<std::pair<std::string, std::string>> fields;  // key, encoded JSON
  Duration every;
  int64_t times = 1;
};

struct TestEvent {
  EventTime ts;
  bool fixture = false;
  size_t order = 0;
  std::string json;
  YAML::Mark mark;
  std::string where;
};

enum class ExpectKind : uint8_t { kFired, kNever, kSuppressed };

struct PayloadPattern {
  std::vector<std::string> path;
  std::string text;
  std::regex pattern;
};

struct Expectation {
  ExpectKind kind = ExpectKind::kFired;
  YAML::Mark mark;
  std::string where;
  std::string campaign, customer;
  std::optional<EventTime> at, from, until;
  std::string payload_json;  // empty: any payload
  std::vector<PayloadPattern> matches;
  std::string channel, template_name;
  std::string reason;
  std::optional<int64_t> count;
};

struct TestCase {
  std::string name, where;
  EventTime start;
  EventTime end;
  std::vector<TestEvent> events;
  std::vector<Expectation> expectations;
};

struct TestFile {
  std::shared_ptr<const rules::RuleSet> rules;
  std::vector<TestCase> cases;
};

// ------------------------------------------------------------- parsing ---

class Parser {
 public:
  Parser(std::string path, Diagnostics* problems) : path_(std::move(path)), problems_(problems) {}

  TestFile Parse(const std::string& text);

 private:
  std::string Where(const YAML::Mark& m) const {
    return path_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  void Error(const YAML::Mark& m, Code code, std::string message, std::string hint = {}) {
    Diagnostic d;
    d.code = code;
    d.file = path_;
    d.line = m.line + 1;
    d.column = m.column + 1;
    d.message = std::move(message);
    d.hint = std::move(hint);
    problems_->push_back(std::move(d));
  }
  bool ExpectMap(const YAML::Node& n, std::string_view what) {
    if (n.IsMap()) return true;
    Error(n.Mark(), Code::kWrongShape, std::string(what) + " must be a map of keys to values");
    return false;
  }
  bool ExpectList(const YAML::Node& n, std::string_view what) {
    if (n.IsSequence()) return true;
    Error(n.Mark(), Code::kWrongShape, std::string(what) + " must be a list");
    return false;
  }
  // Reports keys of map `n` outside `allowed`, and repeated keys.
  void CheckKeys(const YAML::Node& n, const std::vector<std::string_view>& allowed, std::string_view where);
  std::optional<std::string> Text(const YAML::Node& n, std::string_view what);
  std::optional<int64_t> Integer(const YAML::Node& n, std::string_view what, int64_t min, int64_t max);
  std::optional<Duration> PositiveDuration(const YAML::Node& n, std::string_view what);
  std::optional<EventTime> AbsoluteTime(const YAML::Node& n, std::string_view what);
  std::optional<TimeSpec> Time(const YAML::Node& n, std::string_view what);
  // Encodes a YAML value as JSON: plain true/false/null and numbers keep
  // their type, every other scalar is a string.
  bool ToJson(const YAML::Node& n, std::string* out);

  std::vector<std::string> RulePaths(const YAML::Node& n);
  std::optional<EventSpec> ParseEvent(const YAML::Node& n, bool in_fixture);
  std::vector<EventSpec> ParseEvents(const YAML::Node& n, bool in_fixture, std::string_view what);
  void Instantiate(const EventSpec& spec, EventTime start, const std::string& customer, bool fixture, TestCase* out);
  std::optional<Expectation> ParseExpectation(const YAML::Node& n, EventTime start,
                                              const std::string& default_customer);
  std::optional<TestCase> ParseCase(const YAML::Node& n, std::optional<EventTime> file_start);

  std::string path_;
  Diagnostics* problems_;
  std::shared_ptr<const rules::RuleSet> rules_;
  std::map<std::string, std::vector<EventSpec>> fixtures_;
  std::set<std::string> rejected_;  // decoder messages already reported, by where
  EventDecoder decoder_;
};

void Parser::CheckKeys(const YAML::Node& n, const std::vector<std::string_view>& allowed, std::string_view where) {
  std::set<std::string> seen;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) {
      Error(kv.first.Mark(), Code::kWrongShape, "keys must be plain names");
      continue;
    }
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      Error(kv.first.Mark(), Code::kDuplicate, "key `" + key + "` appears twice in " + std::string(where));
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string hint = DidYouMean(key, allowed);
      if (hint.empty()) {
        hint = "allowed keys:";
        for (std::string_view a : allowed) hint += " " + std::string(a);
      }
      Error(kv.first.Mark(), Code::kUnknownKey, "unknown key `" + key + "` in " + std::string(where), hint);
    }
  }
}

std::optional<std::string> Parser::Text(const YAML::Node& n, std::string_view what) {
  if (!n.IsScalar() || n.Scalar().empty()) {
    Error(n.Mark(), Code::kWrongShape, std::string(what) + " must be a non-empty text");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<int64_t> Parser::Integer(const YAML::Node& n, std::string_view what, int64_t min, int64_t max) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && *end == '\0' && errno == 0 && v >= min && v <= max) return v;
  }
  Error(n.Mark(), Code::kBadValue,
        std::string(what) + " must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  return std::nullopt;
}

std::optional<Duration> Parser::PositiveDuration(const YAML::Node& n, std::string_view what) {
  auto d = n.IsScalar() ? ParseDuration(n.Scalar()) : std::nullopt;
  if (!d || d->ms <= 0) {
    Error(n.Mark(), Code::kBadDuration, std::string(what) + " must be a duration longer than zero",
          "durations look like 30d, 12h, 90m, 1h30m");
    return std::nullopt;
  }
  return d;
}

std::optional<EventTime> Parser::AbsoluteTime(const YAML::Node& n, std::string_view what) {
  auto t = n.IsScalar() ? ParseRfc3339(n.Scalar()) : std::nullopt;
  if (!t) {
    Error(n.Mark(), Code::kBadValue, std::string(what) + " must be an RFC 3339 time with a zone",
          "like 2026-01-05T10:00:00Z");
  }
  return t;
}

std::optional<TimeSpec> Parser::Time(const YAML::Node& n, std::string_view what) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    TimeSpec spec;
    if (s == "0" || s == "+0" || s == "-0") return spec;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
      if (auto d = ParseDuration(std::string_view(s).substr(1))) {
        spec.offset = s[0] == '-' ? Duration{-d->ms} : *d;
        return spec;
      }
    } else if (auto t = ParseRfc3339(s)) {
      spec.absolute = true;
      spec.time = *t;
      return spec;
    }
  }
  Error(n.Mark(), Code::kBadValue,
        std::string(what) + (n.IsScalar() ? " `" + n.Scalar() + "` is not a time" : " must be a time"),
        "write an offset from the test's start, like +0, +2d, +1h30m or -10d, or an RFC 3339 time");
  return std::nullopt;
}

bool Parser::ToJson(const YAML::Node& n, std::string* out) {
  if (n.IsMap()) {
    out->push_back('{');
    bool first = true;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        Error(kv.first.Mark(), Code::kWrongShape, "keys must be plain names");
        return false;
      }
      if (!first) out->push_back(',');
      first = false;
      JsonWriter(out).String(kv.first.Scalar());
      out->push_back(':');
      if (!ToJson(kv.second, out)) return false;
    }
    out->push_back('}');
    return true;
  }
  if (n.IsSequence()) {
    out->push_back('[');
    bool first = true;
    for (const auto& item : n) {
      if (!first) out->push_back(',');
      first = false;
      if (!ToJson(item, out)) return false;
    }
    out->push_back(']');
    return true;
  }
  if (n.IsNull()) {
    out->append("null");
    return true;
  }
  const std::string& s = n.Scalar();
  // yaml-cpp tags plain scalars "?": only those can be booleans or numbers.
  const bool plain = n.Tag() == "?";
  if (plain && (s == "true" || s == "false" || rules::IsJsonNumber(s))) {
    out->append(s);
  } else {
    JsonWriter(out).String(s);
  }
  return true;
}

std::vector<std::string> Parser::RulePaths(const YAML::Node& n) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(path_).parent_path();
  auto add = [&](const YAML::Node& item) {
    if (auto p = Text(item, "a rule path")) {
      fs::path rule(*p);
      out.push_back((rule.is_absolute() ? rule : (dir / rule).lexically_normal()).string());
    }
  };
  if (n.IsSequence()) {
    for (const auto& item : n) add(item);
    if (n.size() == 0) Error(n.Mark(), Code::kBadValue, "`rules` lists no rule file");
  } else {
    add(n);
  }
  return out;
}

std::optional<EventSpec> Parser::ParseEvent(const YAML::Node& n, bool in_fixture) {
  if (!ExpectMap(n, "an event")) return std::nullopt;
  std::vector<std::string_view> allowed = {"at", "type", "amount", "event_id", "fields", "every", "times"};
  if (!in_fixture) allowed.push_back("customer");
  CheckKeys(n, allowed, "an event");
  if (in_fixture && n["customer"]) {
    Error(n["customer"].Mark(), Code::kUnknownKey, "a fixture's events have no `customer`",
          "they belong to the customer the test gives the fixture to, under `given:`");
  }
  EventSpec e;
  e.mark = n.Mark();
  e.where = Where(e.mark);
  bool ok = true;
  if (!n["at"]) {
    Error(n.Mark(), Code::kMissingKey, "the event has no `at`", "when it happens, like at: +2d");
    ok = false;
  } else if (auto t = Time(n["at"], "`at`")) {
    e.at = *t;
  } else {
    ok = false;
  }
  if (!n["type"]) {
    Error(n.Mark(), Code::kMissingKey, "the event has no `type`", "like type: purchase");
    ok = false;
  } else if (auto t = Text(n["type"], "`type`")) {
    e.type = *t;
  } else {
    ok = false;
  }
  if (!in_fixture && n["customer"]) {
    if (auto c = Text(n["customer"], "`customer`")) {
      e.customer = *c;
    } else {
      ok = false;
    }
  }
  if (const YAML::Node a = n["amount"]) {
    if (a.IsScalar() && a.Tag() == "?" && rules::IsJsonNumber(a.Scalar())) {
      e.amount_json = a.Scalar();
    } else {
      Error(a.Mark(), Code::kBadValue, "`amount` must be a number", "like amount: 42.50");
      ok = false;
    }
  } else if (e.type == "purchase") {
    Error(n.Mark(), Code::kMissingKey, "a purchase needs an `amount`", "like amount: 42.50");
    ok = false;
  }
  if (const YAML::Node id = n["event_id"]) {
    if (auto s = Text(id, "`event_id`")) {
      e.event_id = *s;
    } else {
      ok = false;
    }
  }
  if (const YAML::Node fields = n["fields"]) {
    if (!ExpectMap(fields, "`fields`")) {
      ok = false;
    } else {
      for (const auto& kv : fields) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        static const std::set<std::string> kOwn = {"type", "customer_id", "ts", "amount", "event_id"};
        if (kOwn.count(key) > 0) {
          Error(kv.first.Mark(), Code::kBadValue, "`" + key + "` cannot be set under `fields`",
                key == "customer_id" ? "write `customer:` beside `type:`"
                : key == "ts"        ? "write `at:` beside `type:`"
                                     : "write `" + key + ":` beside `type:`");
          ok = false;
          continue;
        }
        std::string json;
        if (!ToJson(kv.second, &json)) {
          ok = false;
          continue;
        }
        e.fields.emplace_back(key, std::move(json));
      }
    }
  }
  const YAML::Node every = n["every"], times = n["times"];
  if (bool(every) != bool(times)) {
    Error((every ? every : times).Mark(), Code::kMissingKey, "a repeated event needs both `every` and `times`",
          "like every: 1d, times: 5 for five events a day apart");
    ok = false;
  } else if (every) {
    auto d = PositiveDuration(every, "`every`");
    auto t = Integer(times, "`times`", 1, kMaxRepeat);
    if (d && t) {
      e.every = *d;
      e.times = *t;
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return e;
}

std::vector<EventSpec> Parser::ParseEvents(const YAML::Node& n, bool in_fixture, std::string_view what) {
  std::vector<EventSpec> out;
  if (!ExpectList(n, what)) return out;
  for (const auto& item : n) {
    if (auto e = ParseEvent(item, in_fixture)) out.push_back(std::move(*e));
  }
  return out;
}

void Parser::Instantiate(const EventSpec& spec, EventTime start, const std::string& customer, bool fixture,
                         TestCase* out) {
  for (int64_t i = 0; i < spec.times; ++i) {
    TestEvent e;
    e.ts = spec.at.At(start) + Duration{spec.every.ms * i};
    e.fixture = fixture;
    e.order = out->events.size();
    e.mark = spec.mark;
    e.where = spec.where;
    JsonWriter w(&e.json);
    w.BeginObject();
    w.Key("type");
    w.String(spec.type);
    w.Key("customer_id");
    w.String(customer);
    w.Key("ts");
    w.String(FormatRfc3339(e.ts));
    if (!spec.amount_json.empty()) {
      w.Key("amount");
      w.Raw(spec.amount_json);
    }
    if (!spec.event_id.empty()) {
      w.Key("event_id");
      w.String(spec.event_id);
    }
    for (const auto& [key, json] : spec.fields) {
      w.Key(key);
      w.Raw(json);
    }
    w.EndObject();
    // What the decoder of a real stream would refuse is a mistake in the test.
    std::string padded = e.json;
    padded.append(kEventPadding, ' ');
    Event decoded;
    Rejection rejection;
    if (!decoder_.Decode(std::string_view(padded.data(), e.json.size()), &decoded, &rejection)) {
      if (rejected_.insert(spec.where).second) {
        Error(spec.mark, Code::kBadValue,
              "a stream would reject this event (" + std::string(RejectReasonName(rejection.reason)) +
                  "): " + rejection.message);
      }
      continue;
    }
    out->events.push_back(std::move(e));
  }
}

std::optional<Expectation> Parser::ParseExpectation(const YAML::Node& n, EventTime start,
                                                    const std::string& default_customer) {
  if (!ExpectMap(n, "an expectation")) return std::nullopt;
  Expectation x;
  x.mark = n.Mark();
  x.where = Where(x.mark);
  std::vector<std::string_view> kinds;
  for (std::string_view k : {"fired", "never", "suppressed"}) {
    if (n[std::string(k)]) kinds.push_back(k);
  }
  if (kinds.size() != 1) {
    Error(n.Mark(), kinds.empty() ? Code::kMissingKey : Code::kWrongShape,
          kinds.empty() ? "an expectation needs one of `fired`, `never` or `suppressed`"
                        : "an expectation has only one of `fired`, `never` or `suppressed`",
          "like fired: post-purchase-thank-you; write each expectation as its own list item");
    if (kinds.empty()) {
      CheckKeys(n,
                {"fired", "never", "suppressed", "customer", "at", "from", "until", "payload", "payload_matches",
                 "channel", "template", "reason", "count"},
                "an expectation");
    }
    return std::nullopt;
  }
  const std::string_view kind = kinds.front();
  if (kind == "fired") {
    x.kind = ExpectKind::kFired;
    CheckKeys(
        n, {"fired", "customer", "at", "from", "until", "payload", "payload_matches", "channel", "template", "count"},
        "a `fired` expectation");
  } else if (kind == "never") {
    x.kind = ExpectKind::kNever;
    CheckKeys(n, {"never", "customer", "from", "until"}, "a `never` expectation");
  } else {
    x.kind = ExpectKind::kSuppressed;
    CheckKeys(n, {"suppressed", "customer", "reason", "at", "from", "until", "count"}, "a `suppressed` expectation");
  }
  bool ok = true;
  const YAML::Node campaign = n[std::string(kind)];
  if (auto c = Text(campaign, "the campaign")) {
    x.campaign = *c;
    if (rules_ && !rules_->FindCampaign(*c)) {
      std::vector<std::string> ids;
      for (const auto& rc : rules_->campaigns) ids.push_back(rc.id);
      std::string hint = DidYouMean(*c, ids);
      if (hint.empty()) {
        hint = "the rules under test define:";
        for (const auto& id : ids) hint += " " + id;
      }
      Error(campaign.Mark(), Code::kBadValue, "no campaign `" + *c + "` in the rules under test", hint);
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const YAML::Node c = n["customer"]) {
    if (auto s = Text(c, "`customer`")) {
      x.customer = *s;
    } else {
      ok = false;
    }
  } else if (!default_customer.empty()) {
    x.customer = default_customer;
  } else {
    Error(n.Mark(), Code::kMissingKey, "the expectation has no `customer`",
          "name it here, or give the test a `customer:` for all its events and expectations");
    ok = false;
  }
  auto time = [&](const char* key, std::optional<EventTime>* out) {
    if (const YAML::Node t = n[key]) {
      if (auto spec = Time(t, std::string("`") + key + "`")) {
        *out = spec->At(start);
      } else {
        ok = false;
      }
    }
  };
  time("at", &x.at);
  time("from", &x.from);
  time("until", &x.until);
  if (x.at && (x.from || x.until)) {
    Error(n["at"].Mark(), Code::kWrongShape, "`at` cannot go with `from` or `until`",
          "`at` is one moment; `from` and `until` are a window");
    ok = false;
  }
  if (x.from && x.until && *x.until < *x.from) {
    Error(n["until"].Mark(), Code::kBadValue, "`until` is before `from`");
    ok = false;
  }
  if (const YAML::Node p = n["payload"]) {
    if (!ExpectMap(p, "`payload`") || !ToJson(p, &x.payload_json)) ok = false;
  }
  if (const YAML::Node m = n["payload_matches"]) {
    if (!ExpectMap(m, "`payload_matches`")) {
      ok = false;
    } else {
      for (const auto& kv : m) {
        auto key = Text(kv.first, "a payload field");
        auto pattern = Text(kv.second, "a pattern");
        if (!key || !pattern) {
          ok = false;
          continue;
        }
        PayloadPattern pp;
        std::stringstream parts(*key);
        for (std::string part; std::getline(parts, part, '.');) pp.path.push_back(part);
        pp.text = *pattern;
        try {
          pp.pattern = std::regex(*pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          Error(kv.second.Mark(), Code::kBadValue, "`" + *pattern + "` is not a regular expression: " + e.what(),
                "ECMAScript syntax, like ^THANKS-[0-9A-Z]{10}$");
          ok = false;
          continue;
        }
        x.matches.push_back(std::move(pp));
      }
    }
  }
  if (const YAML::Node c = n["channel"]) {
    if (auto s = Text(c, "`channel`")) {
      x.channel = *s;
    } else {
      ok = false;
    }
  }
  if (const YAML::Node t = n["template"]) {
    if (auto s = Text(t, "`template`")) {
      x.template_name = *s;
    } else {
      ok = false;
    }
  }
  if (x.kind == ExpectKind::kSuppressed) {
    std::vector<std::string> reasons = {std::string(kHeldOut)};
    for (size_t k = 0; k < kSuppressionCount; ++k) reasons.emplace_back(SuppressionName(static_cast<Suppression>(k)));
    if (const YAML::Node r = n["reason"]; !r) {
      Error(n.Mark(), Code::kMissingKey, "a `suppressed` expectation needs a `reason`",
            "one of: held_out, once_per_customer, cooldown, at_most, group_priority, recheck_failed, "
            "delay_already_pending");
      ok = false;
    } else if (auto s = Text(r, "`reason`")) {
      if (std::find(reasons.begin(), reasons.end(), *s) == reasons.end()) {
        std::string hint = DidYouMean(*s, reasons);
        if (hint.empty()) {
          hint = "one of:";
          for (const auto& reason : reasons) hint += " " + reason;
        }
        Error(r.Mark(), Code::kBadValue, "unknown reason `" + *s + "`", hint);
        ok = false;
      }
      x.reason = *s;
    } else {
      ok = false;
    }
  }
  if (const YAML::Node c = n["count"]) {
    if (auto v = Integer(c, "`count`", 0, kMaxRepeat)) {
      x.count = *v;
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return x;
}

std::optional<TestCase> Parser::ParseCase(const YAML::Node& n, std::optional<EventTime> file_start) {
  if (!ExpectMap(n, "a test")) return std::nullopt;
  CheckKeys(n, {"name", "start", "customer", "given", "events", "until", "expect"}, "a test");
  const size_t problems_before = problems_->size();
  TestCase tc;
  tc.where = Where(n.Mark());
  if (const YAML::Node name = n["name"]) {
    if (auto s = Text(name, "`name`")) tc.name = *s;
  } else {
    Error(n.Mark(), Code::kMissingKey, "the test has no `name`",
          "say what it checks, like name: a second purchase gets nothing");
  }
  std::optional<EventTime> start = file_start;
  if (const YAML::Node s = n["start"]) start = AbsoluteTime(s, "`start`");
  if (!start) {
    if (!n["start"]) {
      Error(n.Mark(), Code::kMissingKey, "the test has no `start`",
            "give it (or the whole file) a start time, like start: 2026-01-05T10:00:00Z");
    }
    return std::nullopt;
  }
  tc.start = *start;
  std::string customer;
  if (const YAML::Node c = n["customer"]) {
    if (auto s = Text(c, "`customer`")) customer = *s;
  }
  if (const YAML::Node given = n["given"]; given && ExpectMap(given, "`given`")) {
    for (const auto& kv : given) {
      auto who = Text(kv.first, "a customer");
      if (!who) continue;
      std::vector<YAML::Node> names;
      if (kv.second.IsSequence()) {
        for (const auto& item : kv.second) names.push_back(item);
      } else {
        names.push_back(kv.second);
      }
      for (const YAML::Node& name : names) {
        auto fixture = Text(name, "a fixture name");
        if (!fixture) continue;
        auto it = fixtures_.find(*fixture);
        if (it == fixtures_.end()) {
          std::vector<std::string> known;
          for (const auto& [k, v] : fixtures_) known.push_back(k);
          std::string hint = DidYouMean(*fixture, known);
          Error(name.Mark(), Code::kBadValue, "no fixture `" + *fixture + "`",
                hint.empty() ? "fixtures are defined under `fixtures:` at the top of the file" : hint);
          continue;
        }
        for (const EventSpec& spec : it->second) Instantiate(spec, tc.start, *who, true, &tc);
      }
    }
  }
  if (const YAML::Node events = n["events"]) {
    for (const EventSpec& spec : ParseEvents(events, false, "`events`")) {
      if (spec.customer.empty() && customer.empty()) {
        Error(spec.mark, Code::kMissingKey, "the event has no `customer`",
              "name it here, or give the test a `customer:` for all its events and expectations");
        continue;
      }
      Instantiate(spec, tc.start, spec.customer.empty() ? customer : spec.customer, false, &tc);
    }
  }
  std::optional<EventTime> until;
  if (const YAML::Node u = n["until"]) {
    if (auto spec = Time(u, "`until`")) until = spec->At(tc.start);
  }
  if (const YAML::Node expect = n["expect"]) {
    if (ExpectList(expect, "`expect`")) {
      if (expect.size() == 0) Error(expect.Mark(), Code::kBadValue, "`expect` lists nothing to check");
      for (const auto& item : expect) {
        if (auto x = ParseExpectation(item, tc.start, customer)) tc.expectations.push_back(std::move(*x));
      }
    }
  } else {
    Error(n.Mark(), Code::kMissingKey, "the test has no `expect`",
          "list what must happen, like expect: [{fired: post-purchase-thank-you, at: +0}]");
  }
  // The end: `until`, or else the latest time the test names.
  EventTime end = tc.start;
  for (const TestEvent& e : tc.events) end = std::max(end, e.ts);
  for (const Expectation& x : tc.expectations) {
    for (const auto& t : {x.at, x.from, x.until}) {
      if (!t) continue;
      if (until && *t > *until) {
        Error(x.mark, Code::kBadValue,
              "the expectation looks at " + FormatOffset(*t - tc.start) +
                  ", after the end of the test (`until: " + FormatOffset(*until - tc.start) + "`)");
      }
      end = std::max(end, *t);
    }
  }
  if (until) {
    std::set<std::string> reported;  // a repeated event once
    for (const TestEvent& e : tc.events) {
      if (e.ts > *until && reported.insert(e.where).second) {
        Error(e.mark, Code::kBadValue,
              "the event at " + FormatOffset(e.ts - tc.start) +
                  " is after the end of the test (`until: " + FormatOffset(*until - tc.start) + "`)",
              "move `until` later, or the event earlier");
      }
    }
  }
  tc.end = until ? *until : end;
  std::stable_sort(tc.events.begin(), tc.events.end(), [](const TestEvent& a, const TestEvent& b) {
    return std::tie(a.ts, b.fixture, a.order) < std::tie(b.ts, a.fixture, b.order);
  });
  if (problems_->size() != problems_before) return std::nullopt;
  return tc;
}

TestFile Parser::Parse(const std::string& text) {
  TestFile file;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Error(e.mark, Code::kYamlSyntax, e.msg);
    return file;
  }
  try {
    if (!root.IsMap()) {
      Error(root.Mark(), Code::kWrongShape,
            "a test file is a map with `rules`, `tests` and optionally `start` and `fixtures`");
      return file;
    }
    CheckKeys(root, {"rules", "start", "fixtures", "tests"}, "the test file");
    if (const YAML::Node r = root["rules"]) {
      std::vector<std::string> paths = RulePaths(r);
      if (!paths.empty()) {
        rules::LoadResult loaded = rules::LoadRules(paths);
        for (const Diagnostic& d : loaded.diagnostics) {
          if (d.severity == rules::Severity::kError) problems_->push_back(d);
        }
        if (!loaded.rules) {
          Error(r.Mark(), Code::kBadValue, "the rules under test do not load", "run `rapport validate` on them");
        }
        rules_ = loaded.rules;
      }
    } else {
      Error(root.Mark(), Code::kMissingKey, "the test file has no `rules`",
            "name the campaign files under test, relative to this file, like rules: ../my-campaign.yaml");
    }
    std::optional<EventTime> start;
    if (const YAML::Node s = root["start"]) start = AbsoluteTime(s, "`start`");
    if (const YAML::Node f = root["fixtures"]; f && ExpectMap(f, "`fixtures`")) {
      for (const auto& kv : f) {
        auto name = Text(kv.first, "a fixture name");
        if (name) fixtures_[*name] = ParseEvents(kv.second, true, "a fixture");
      }
    }
    if (const YAML::Node tests = root["tests"]) {
      if (ExpectList(tests, "`tests`")) {
        std::set<std::string> names;
        for (const auto& t : tests) {
          if (const YAML::Node name = t.IsMap() ? t["name"] : YAML::Node();
              name && name.IsScalar() && !names.insert(name.Scalar()).second) {
            Error(name.Mark(), Code::kDuplicate, "two tests are named `" + name.Scalar() + "`",
                  "names tell failures apart");
          }
          if (auto tc = ParseCase(t, start)) file.cases.push_back(std::move(*tc));
        }
        if (tests.size() == 0) Error(tests.Mark(), Code::kBadValue, "`tests` lists no test");
      }
    } else {
      Error(root.Mark(), Code::kMissingKey, "the test file has no `tests`");
    }
  } catch (const YAML::Exception& e) {
    Error(e.mark, Code::kWrongShape, e.msg);
  }
  file.rules = rules_;
  return file;
}

// ------------------------------------------------------------- running ---

class NullSink : public ActionSink {
 public:
  void Deliver(const FiredAction&) override {}
};

// One firing: the actions a campaign fired together for a customer.
struct Firing {
  const ExplainStep* step;
  std::string_view campaign;
  bool held_out = false;
  std::vector<const ExplainDecision*> actions;
  EventTime ts() const { return step->time; }
};

struct Suppressed {
  const ExplainStep* step;
  std::string_view campaign;
  std::string_view reason;
  EventTime ts() const { return step->time; }
};

class CaseRun {
 public:
  CaseRun(const TestCase& tc, std::vector<ExplainStep> steps) : tc_(tc), steps_(std::move(steps)) {
    for (const ExplainStep& s : steps_) {
      for (const ExplainDecision& d : s.decisions) {
        if (d.kind == DecisionKind::kFired) {
          // A campaign's actions fire one after the other: one firing.
          if (firings_.empty() || firings_.back().step != &s || firings_.back().campaign != d.campaign) {
            firings_.push_back(Firing{&s, d.campaign, d.held_out, {}});
            if (d.held_out) suppressed_.push_back(Suppressed{&s, d.campaign, kHeldOut});
          }
          firings_.back().actions.push_back(&d);
        } else if (d.kind == DecisionKind::kSuppressed) {
          suppressed_.push_back(Suppressed{&s, d.campaign, d.reason});
        }
      }
    }
  }

  // Empty when the expectation holds; else what happened instead.
  std::string Check(const Expectation& x) const;
  std::string Describe(const Expectation& x) const;
  std::string ActionsOf(const std::string& customer) const;
  const std::vector<ExplainStep>& steps() const { return steps_; }

 private:
  std::string At(EventTime t) const { return FormatOffset(t - tc_.start) + " (" + FormatRfc3339(t) + ")"; }
  bool InWindow(const Expectation& x, EventTime t) const {
    if (x.at) return t == *x.at;
    return t >= x.from.value_or(tc_.start) && t <= x.until.value_or(tc_.end);
  }
  std::string Window(const Expectation& x) const {
    if (x.at) return "at " + At(*x.at);
    return "from " + FormatOffset(x.from.value_or(tc_.start) - tc_.start) + " to " +
           FormatOffset(x.until.value_or(tc_.end) - tc_.start);
  }
  // Empty when the action has the expected channel, template and payload.
  std::string Mismatch(const Expectation& x, const ExplainDecision& action) const;
  std::string Times(const std::vector<const Firing*>& fs) const {
    std::string out;
    for (const Firing* f : fs) out += (out.empty() ? "" : ", ") + FormatOffset(f->ts() - tc_.start);
    return out;
  }

  const TestCase& tc_;
  std::vector<ExplainStep> steps_;
  std::vector<Firing> firings_;
  std::vector<Suppressed> suppressed_;
};

// Whether `actual` holds all of `expected`: objects by subset, recursively;
// arrays element by element; numbers by value. *why says where it differs.
bool Contains(simdjson::dom::element expected, simdjson::dom::element actual, const std::string& path,
              std::string* why) {
  using simdjson::dom::element_type;
  auto numeric = [](element_type t) {
    return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
  };
  auto differ = [&] {
    *why = path + " is " + simdjson::minify(actual) + ", expected " + simdjson::minify(expected);
    return false;
  };
  const element_type et = expected.type(), at = actual.type();
  if (numeric(et) && numeric(at)) {
    double e = 0, a = 0;
    if (expected.get_double().get(e) != simdjson::SUCCESS || actual.get_double().get(a) != simdjson::SUCCESS) {
      return differ();
    }
    return e == a ? true : differ();
  }
  if (et != at) return differ();
  switch (et) {
    case element_type::OBJECT:
      for (auto [key, value] : simdjson::dom::object(expected)) {
        simdjson::dom::element got;
        const std::string sub = path + "." + std::string(key);
        if (simdjson::dom::object(actual).at_key(key).get(got) != simdjson::SUCCESS) {
          *why = sub + " is missing, expected " + simdjson::minify(value);
          return false;
        }
        if (!Contains(value, got, sub, why)) return false;
      }
      return true;
    case element_type::ARRAY: {
      simdjson::dom::array ea = expected, aa = actual;
      if (ea.size() != aa.size()) return differ();
      for (size_t i = 0; i < ea.size(); ++i) {
        if (!Contains(ea.at(i).value_unsafe(), aa.at(i).value_unsafe(), path + "[" + std::to_string(i) + "]", why)) {
          return false;
        }
      }
      return true;
    }
    default: return simdjson::minify(expected) == simdjson::minify(actual) ? true : differ();
  }
}

std::string CaseRun::Mismatch(const Expectation& x, const ExplainDecision& action) const {
  if (!x.channel.empty() && action.channel != x.channel)
    return "channel is " + action.channel + ", expected " + x.channel;
  if (!x.template_name.empty() && action.template_name != x.template_name) {
    return "template is " + action.template_name + ", expected " + x.template_name;
  }
  if (x.payload_json.empty() && x.matches.empty()) return {};
  simdjson::dom::parser actual_parser, expected_parser;
  simdjson::padded_string actual_text(action.payload_json);
  simdjson::dom::element payload;
  if (actual_parser.parse(actual_text).get(payload) != simdjson::SUCCESS) return "the payload is not JSON";
  if (!x.payload_json.empty()) {
    simdjson::padded_string expected_text(x.payload_json);
    simdjson::dom::element expected;
    if (expected_parser.parse(expected_text).get(expected) != simdjson::SUCCESS)
      return "the expected payload is not JSON";
    std::string why;
    if (!Contains(expected, payload, "payload", &why)) return why;
  }
  for (const PayloadPattern& m : x.matches) {
    simdjson::dom::element cur = payload;
    std::string path = "payload";
    bool found = true;
    for (const std::string& key : m.path) {
      path += "." + key;
      if (cur.type() != simdjson::dom::element_type::OBJECT ||
          simdjson::dom::object(cur).at_key(key).get(cur) != simdjson::SUCCESS) {
        found = false;
        break;
      }
    }
    if (!found) return path + " is missing, expected to match " + m.text;
    std::string_view s;
    std::string value = cur.get(s) == simdjson::SUCCESS ? std::string(s) : simdjson::minify(cur);
    if (!std::regex_search(value, m.pattern))
      return path + " is " + simdjson::minify(cur) + ", which does not match " + m.text;
  }
  return {};
}

std::string CaseRun::Describe(const Expectation& x) const {
  std::string out = "expected " + x.campaign;
  switch (x.kind) {
    case ExpectKind::kFired:
      out += " to fire for " + x.customer + " " + Window(x);
      if (x.count) out += ", " + std::to_string(*x.count) + (*x.count == 1 ? " time" : " times");
      if (!x.channel.empty()) out += ", on " + x.channel;
      if (!x.template_name.empty()) out += ", with template " + x.template_name;
      if (!x.payload_json.empty()) out += ", with payload " + x.payload_json;
      for (const PayloadPattern& m : x.matches) {
        std::string path;
        for (const auto& k : m.path) path += (path.empty() ? "" : ".") + k;
        out += ", " + path + " matching " + m.text;
      }
      break;
    case ExpectKind::kNever: out += " never to fire for " + x.customer + " " + Window(x); break;
    case ExpectKind::kSuppressed:
      out += " to be suppressed for " + x.customer + " by " + x.reason + " " + Window(x);
      if (x.count) out += ", " + std::to_string(*x.count) + (*x.count == 1 ? " time" : " times");
      break;
  }
  return out;
}

std::string CaseRun::Check(const Expectation& x) const {
  std::vector<const Firing*> all, in_window;
  for (const Firing& f : firings_) {
    if (f.campaign != x.campaign || f.step->customer != x.customer) continue;
    all.push_back(&f);
    if (InWindow(x, f.ts())) in_window.push_back(&f);
  }
  switch (x.kind) {
    case ExpectKind::kNever: {
      if (in_window.empty()) return {};
      std::string out = "but it fired at ";
      for (size_t i = 0; i < in_window.size(); ++i) {
        out += (i > 0 ? ", " : "") + At(in_window[i]->ts()) + (in_window[i]->held_out ? " (held out)" : "");
      }
      return out;
    }
    case ExpectKind::kFired: {
      std::vector<const Firing*> matched, delivered;
      std::string first_mismatch;
      for (const Firing* f : in_window) {
        if (f->held_out) continue;
        delivered.push_back(f);
        bool any = false;
        for (const ExplainDecision* a : f->actions) {
          std::string why = Mismatch(x, *a);
          if (why.empty()) {
            any = true;
            break;
          }
          if (first_mismatch.empty()) first_mismatch = "at " + FormatOffset(f->ts() - tc_.start) + " " + why;
        }
        if (any) matched.push_back(f);
      }
      if (x.count ? int64_t(matched.size()) == *x.count : !matched.empty()) return {};
      if (x.count && !matched.empty()) {
        return "but it fired " + std::to_string(matched.size()) + (matched.size() == 1 ? " time" : " times") +
               " so: " + Times(matched);
      }
      if (!first_mismatch.empty()) return "but " + first_mismatch;
      if (in_window.size() > delivered.size()) {
        return "but it was held out (the customer is in its control group) at " + Times(in_window);
      }
      std::string out = "but it did not fire " + Window(x);
      if (!all.empty()) out += "; it fired at " + Times(all);
      for (const Suppressed& s : suppressed_) {
        if (s.campaign == x.campaign && s.step->customer == x.customer && InWindow(x, s.ts())) {
          out += "; it was suppressed (" + std::string(s.reason) + ") at " + FormatOffset(s.ts() - tc_.start);
        }
      }
      return out;
    }
    case ExpectKind::kSuppressed: {
      int64_t n = 0;
      std::string others;
      for (const Suppressed& s : suppressed_) {
        if (s.campaign != x.campaign || s.step->customer != x.customer) continue;
        if (InWindow(x, s.ts()) && s.reason == x.reason) {
          ++n;
        } else {
          others += (others.empty() ? "" : ", ") + std::string(s.reason) + " at " + FormatOffset(s.ts() - tc_.start);
        }
      }
      if (x.count ? n == *x.count : n > 0) return {};
      std::string out =
          x.count && n > 0 ? "but it was, " + std::to_string(n) + (n == 1 ? " time" : " times") : "but it was not";
      if (!others.empty()) out += "; suppressions seen: " + others;
      std::vector<const Firing*> delivered;
      for (const Firing* f : in_window) {
        if (!f->held_out) delivered.push_back(f);
      }
      if (!delivered.empty()) out += "; it fired at " + Times(delivered);
      return out;
    }
  }
  return {};
}

std::string CaseRun::ActionsOf(const std::string& customer) const {
  std::string out;
  for (const Firing& f : firings_) {
    if (f.step->customer != customer) continue;
    for (const ExplainDecision* a : f.actions) {
      out += "  " + At(f.ts()) + "  " + (f.held_out ? "held out " : "fired ") + std::string(f.campaign) + ": " +
             a->channel + " " + a->template_name + " " + a->payload_json + "\n";
    }
  }
  return out.empty() ? "  (none)\n" : out;
}

// Runs one case in its own partition of `store`, which keeps cases apart
// as well as a store of their own would, without the cost of opening one.
Result<CampaignTestCase> RunCase(const TestCase& tc, const std::shared_ptr<const rules::RuleSet>& rules,
                                 StateStore& store, uint32_t partition) {
  const auto began = std::chrono::steady_clock::now();
  CampaignTestCase result;
  result.name = tc.name;
  result.location = tc.where;
  std::vector<ExplainStep> steps;
  {
    ExplainRecorder recorder(*rules, {});
    NullSink sink;
    ProcessorOptions options;
    options.partition = partition;
    options.coupon_secret = kCouponSecret;
    options.tracer = &recorder;
    auto processor = Processor::Open(store, rules, sink, options);
    if (!processor.ok()) return processor.status();
    EventDecoder decoder;
    std::string padded;
    for (const TestEvent& e : tc.events) {
      padded = e.json;
      padded.append(kEventPadding, ' ');
      Event event;
      Rejection rejection;
      if (!decoder.Decode(std::string_view(padded.data(), e.json.size()), &event, &rejection)) {
        return Status::InvalidArgument(e.where + ": event rejected: " + rejection.message);  // checked at load
      }
      if (Status s = (*processor)->Apply(event); !s.ok()) return s;
    }
    if (Status s = (*processor)->AdvanceTo(tc.end); !s.ok()) return s;
    steps = recorder.steps();
  }
  CaseRun run(tc, std::move(steps));
  std::vector<std::pair<std::string, std::string>> concerned;  // customer, campaign
  for (const Expectation& x : tc.expectations) {
    std::string why = run.Check(x);
    if (why.empty()) continue;
    result.failures.push_back(x.where + ": " + run.Describe(x) + "\n  " + why);
    if (std::find(concerned.begin(), concerned.end(), std::pair(x.customer, x.campaign)) == concerned.end()) {
      concerned.emplace_back(x.customer, x.campaign);
    }
  }
  result.passed = result.failures.empty();
  if (!result.passed) {
    for (const std::string& f : result.failures) result.report += f + "\n";
    std::set<std::string> shown;
    for (const auto& [customer, campaign] : concerned) {
      if (shown.insert(customer).second)
        result.report += "actual actions of " + customer + ":\n" + run.ActionsOf(customer);
    }
    for (const auto& [customer, campaign] : concerned) {
      ExplainFormat format;
      format.customer = customer;
      format.campaign = campaign;
      format.origin = tc.start;
      format.indent = "  ";
      std::string text = FormatExplanation(run.steps(), format);
      result.report += "explanation of " + campaign + " for " + customer + " (rapport explain):\n" +
                       (text.empty() ? "  (it was never offered, armed or suppressed for this customer)\n" : text);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return result;
}

// Escapes text for XML; in an attribute, line breaks and tabs too, which
// attribute normalization would otherwise turn into spaces.
void AppendXml(std::string* out, std::string_view s, bool attribute = false) {
  for (unsigned char c : s) {
    switch (c) {
      case '&': *out += "&amp;"; break;
      case '<': *out += "&lt;"; break;
      case '>': *out += "&gt;"; break;
      case '"': *out += "&quot;"; break;
      case '\'': *out += "&apos;"; break;
      case '\n': *out += attribute ? "&#10;" : "\n"; break;
      case '\t': *out += attribute ? "&#9;" : "\t"; break;
      case '\r': *out += "&#13;"; break;
      default:
        // XML 1.0 has no other control characters, even escaped.
        if (c < 0x20) {
          *out += "?";
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
}

std::string Attr(std::string_view name, std::string_view value) {
  std::string out = " ";
  out += name;
  out += "=\"";
  AppendXml(&out, value, true);
  out += "\"";
  return out;
}

}  // namespace

std::vector<std::string> FindCampaignTests(const std::vector<std::string>& paths, Diagnostics* problems) {
  std::vector<std::string> found;
  auto problem = [problems](const std::string& path, const std::string& message) {
    Diagnostic d;
    d.code = Code::kIo;
    d.file = path;
    d.message = message;
    problems->push_back(std::move(d));
  };
  auto is_test = [](const fs::path& p) {
    const std::string name = p.filename().string();
    auto ends = [&name](std::string_view s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    return ends(".test.yaml") || ends(".test.yml");
  };
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      size_t before = found.size();
      for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file() && is_test(it->path())) found.push_back(it->path().string());
      }
      if (ec) problem(path, "cannot read directory: " + ec.message());
      if (!ec && found.size() == before) problem(path, "no test files (*.test.yaml, *.test.yml) in this directory");
    } else if (fs::exists(path, ec)) {
      found.push_back(path);
    } else {
      problem(path, "no such file or directory");
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

Result<CampaignTestFile> RunCampaignTestFile(const std::string& path) {
  CampaignTestFile out;
  out.path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Diagnostic d;
    d.code = Code::kIo;
    d.file = path;
    d.message = "cannot open file";
    out.problems.push_back(std::move(d));
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  Parser parser(path, &out.problems);
  TestFile file = parser.Parse(text.str());
  if (!out.problems.empty()) return out;
  auto scratch = ScratchDirectory::Create("rapport-test");
  if (!scratch.ok()) return scratch.status();
  auto store = StateStore::Open((*scratch)->path(), StateStoreOptions{});
  if (!store.ok()) return store.status();
  for (size_t i = 0; i < file.cases.size(); ++i) {
    auto result = RunCase(file.cases[i], file.rules, **store, static_cast<uint32_t>(i));
    if (!result.ok()) return result.status();
    out.cases.push_back(std::move(*result));
  }
  return out;
}

std::string FormatJunit(std::span<const CampaignTestFile> files) {
  size_t tests = 0, failures = 0, errors = 0;
  for (const CampaignTestFile& f : files) {
    if (!f.problems.empty()) ++errors, ++tests;
    for (const CampaignTestCase& c : f.cases) ++tests, failures += c.passed ? 0 : 1;
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites" + Attr("name", "rapport test") + Attr("tests", std::to_string(tests)) +
         Attr("failures", std::to_string(failures)) + Attr("errors", std::to_string(errors)) + ">\n";
  char seconds[32];
  for (const CampaignTestFile& f : files) {
    size_t file_failures = 0;
    double file_seconds = 0;
    for (const CampaignTestCase& c : f.cases) {
      file_failures += c.passed ? 0 : 1;
      file_seconds += c.seconds;
    }
    const bool bad = !f.problems.empty();
    std::snprintf(seconds, sizeof seconds, "%.3f", file_seconds);
    out += "  <testsuite" + Attr("name", f.path) + Attr("tests", std::to_string(bad ? 1 : f.cases.size())) +
           Attr("failures", std::to_string(file_failures)) + Attr("errors", bad ? "1" : "0") + Attr("time", seconds) +
           ">\n";
    if (bad) {
      std::string body;
      for (const Diagnostic& d : f.problems) body += d.ToString() + "\n";
      out += "    <testcase" + Attr("name", "load " + f.path) + Attr("classname", f.path) + ">\n";
      out += "      <error" + Attr("message", f.problems.front().ToString()) + Attr("type", "bad test file") + ">";
      AppendXml(&out, body);
      out += "</error>\n    </testcase>\n";
    }
    for (const CampaignTestCase& c : f.cases) {
      std::snprintf(seconds, sizeof seconds, "%.3f", c.seconds);
      out += "    <testcase" + Attr("name", c.name) + Attr("classname", f.path) + Attr("time", seconds);
      if (c.passed) {
        out += "/>\n";
        continue;
      }
      out += ">\n      <failure" + Attr("message", c.failures.front()) + Attr("type", "expectation") + ">";
      AppendXml(&out, c.report);
      out += "</failure>\n    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  out += "</testsuites>\n";
  return out;
}

}  // namespace rapport::connectors
