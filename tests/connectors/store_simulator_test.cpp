#include "rapport/connectors/store_simulator.h"

#include <simdjson.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "rapport/engine/time.h"
#include "temp_dir.h"

using rapport::EventTime;
using rapport::ParseRfc3339;
using rapport::StatusCode;
using namespace rapport::connectors;

namespace {

constexpr int64_t kDay = rapport::kMsPerDay;
const int64_t kJan1 = ParseRfc3339("2026-01-01T00:00:00Z")->ms;

StoreSimulatorOptions Options(uint64_t customers, int64_t days, uint64_t seed) {
  StoreSimulatorOptions o;
  o.customers = customers;
  o.days = days;
  o.seed = seed;
  return o;
}

// All output of WriteStoreEvents, through a real FILE*.
std::string WriteToString(const StoreSimulatorOptions& o, GenerateStats* stats = nullptr) {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  rapport::Status s = WriteStoreEvents(o, f, stats);
  REQUIRE(s.ok());
  std::string text;
  std::rewind(f);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    REQUIRE(nl != std::string::npos);  // every line ends in "\n"
    lines.emplace_back(text, pos, nl - pos);
    pos = nl + 1;
  }
  return lines;
}

struct Parsed {
  std::vector<std::string> keys;  // in order
  uint64_t event_number = 0;
  std::string type, customer_id, page, sku, order_id, currency, referred;
  int64_t ts = 0;
  std::string ts_text;
  double amount = 0;
  std::string amount_text;  // as written
};

// Parses one event line and checks its shape; fails the test when it is not
// a well-formed event.
Parsed ParseEvent(simdjson::dom::parser& parser, const std::string& line, bool epoch_ms = false) {
  INFO(line);
  Parsed p;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(line).get_object().get(obj) == simdjson::SUCCESS);
  for (auto field : obj) {
    const std::string key(field.key);
    p.keys.push_back(key);
    simdjson::dom::element v = field.value;
    if (key == "ts" && epoch_ms) {
      REQUIRE(v.is_int64());
      p.ts = v.get_int64().value();
      continue;
    }
    if (key == "amount") {
      REQUIRE(v.is_double());  // always written with a decimal point
      p.amount = v.get_double().value();
      continue;
    }
    REQUIRE(v.is_string());
    std::string s(v.get_string().value());
    if (key == "event_id") {
      REQUIRE(s.rfind("e-", 0) == 0);
      p.event_number = std::stoull(s.substr(2));
      REQUIRE(s == "e-" + std::to_string(p.event_number));
    } else if (key == "type") {
      p.type = s;
    } else if (key == "customer_id") {
      p.customer_id = s;
    } else if (key == "ts") {
      p.ts_text = s;
      REQUIRE(s.size() == rapport::kRfc3339Length);
      REQUIRE(s.back() == 'Z');
      auto t = ParseRfc3339(s);
      REQUIRE(t);
      p.ts = t->ms;
      REQUIRE(rapport::FormatRfc3339(*t) == s);
    } else if (key == "page") {
      p.page = s;
    } else if (key == "sku") {
      p.sku = s;
    } else if (key == "order_id") {
      p.order_id = s;
    } else if (key == "currency") {
      p.currency = s;
    } else if (key == "referred_customer_id") {
      p.referred = s;
    } else {
      FAIL("unexpected key " << key);
    }
  }
  std::vector<std::string> expected = {"event_id", "type", "customer_id", "ts"};
  if (p.type == "visit") {
    expected.push_back("page");
  } else if (p.type == "cart") {
    expected.push_back("sku");
  } else if (p.type == "purchase") {
    expected.insert(expected.end(), {"order_id", "amount", "currency"});
    size_t at = line.find("\"amount\":");
    REQUIRE(at != std::string::npos);
    at += 9;
    p.amount_text = line.substr(at, line.find(',', at) - at);
  } else if (p.type == "referral") {
    expected.push_back("referred_customer_id");
  } else {
    FAIL("unexpected type " << p.type);
  }
  REQUIRE(p.keys == expected);
  return p;
}

// Python's repr of round(x, 2): digits, a point, one or two decimals, no
// trailing zero after the first decimal ("120.0", "36.6", "12.05").
bool IsPythonTwoDecimalRepr(const std::string& s) {
  size_t dot = s.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i != dot && (s[i] < '0' || s[i] > '9')) return false;
  }
  if (dot > 1 && s[0] == '0') return false;
  size_t decimals = s.size() - dot - 1;
  if (decimals == 1) return true;
  return decimals == 2 && s.back() != '0';
}

struct CustomerSummary {
  int64_t first_ts = -1;
  int64_t last_ts = 0;
  uint32_t purchases = 0;
  uint32_t referrals = 0;
};

uint64_t CustomerIndex(const std::string& id, const std::string& prefix = "c-") {
  REQUIRE(id.rfind(prefix, 0) == 0);
  std::string digits = id.substr(prefix.size());
  REQUIRE(!digits.empty());
  REQUIRE(digits.find_first_not_of("0123456789") == std::string::npos);
  return std::stoull(digits);
}

const std::set<std::string> kPages = {"/", "/shoes", "/bags", "/sale", "/new", "/account", "/blog/care-guide"};

// Checks every property of a clean (bad_rate 0) output and summarizes it.
std::map<uint64_t, CustomerSummary> CheckEvents(const StoreSimulatorOptions& o, const std::string& text,
                                                std::map<std::string, uint64_t>* type_counts = nullptr,
                                                std::vector<double>* amounts = nullptr) {
  simdjson::dom::parser parser;
  std::map<uint64_t, CustomerSummary> customers;
  const int64_t start = o.start.ms;
  const int64_t end = start + o.days * kDay;
  int64_t prev_ts = INT64_MIN;
  uint64_t prev_customer = 0;
  uint64_t n = 0;
  for (const std::string& line : SplitLines(text)) {
    INFO(line);
    Parsed e = ParseEvent(parser, line, o.epoch_ms);
    ++n;
    REQUIRE(e.event_number == n);
    const uint64_t c = CustomerIndex(e.customer_id, o.id_prefix);
    REQUIRE(c < o.customers);
    REQUIRE(e.ts >= start);
    REQUIRE(e.ts < end);
    // Sorted by (ts, customer); a customer never has two events at one ms.
    REQUIRE((e.ts > prev_ts || (e.ts == prev_ts && c > prev_customer)));
    prev_ts = e.ts;
    prev_customer = c;
    CustomerSummary& s = customers[c];
    if (s.first_ts < 0) s.first_ts = e.ts;
    REQUIRE(e.ts > s.last_ts);
    s.last_ts = e.ts;
    if (type_counts) ++(*type_counts)[e.type];
    if (e.type == "visit") {
      REQUIRE(kPages.count(e.page) == 1);
    } else if (e.type == "cart") {
      REQUIRE(e.sku.size() == 7);
      REQUIRE(e.sku.rfind("sku-", 0) == 0);
      REQUIRE(std::stoi(e.sku.substr(4)) < 200);
    } else if (e.type == "purchase") {
      ++s.purchases;
      REQUIRE(e.order_id == "o-" + e.customer_id + "-" + std::to_string(s.purchases));
      REQUIRE(e.currency == "EUR");
      REQUIRE(e.amount > 0);
      REQUIRE(e.amount <= 2000);
      REQUIRE(IsPythonTwoDecimalRepr(e.amount_text));
      const double cents = e.amount * 100;
      REQUIRE(std::fabs(cents - std::round(cents)) < 1e-6);
      if (amounts) amounts->push_back(e.amount);
    } else if (e.type == "referral") {
      ++s.referrals;
      REQUIRE(s.purchases >= 3);  // only advocates after their third purchase
      REQUIRE(e.referred == "r-" + e.customer_id + "-" + std::to_string(s.purchases));
    }
  }
  return customers;
}

std::vector<std::string> NextAll(const StoreSimulatorOptions& o, std::vector<SimulatedLine>* meta = nullptr) {
  auto sim = StoreSimulator::Create(o);
  REQUIRE(sim.ok());
  std::vector<std::string> lines;
  SimulatedLine line;
  while ((*sim)->Next(&line)) {
    lines.emplace_back(line.text);
    if (meta) meta->push_back(line);
  }
  REQUIRE((*sim)->status().ok());
  return lines;
}

// rapport generate --customers 200 --days 30 --seed 7
constexpr size_t kPinnedLines = 1223;
constexpr char kPinnedFirstLine[] =
    R"({"event_id":"e-1","type":"visit","customer_id":"c-74","ts":"2026-01-01T01:42:34.105Z","page":"/new"})";
constexpr uint64_t kPinnedHash = 0xf469fdebebb519e8ull;  // FNV-1a 64 of the whole output

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

TEST_CASE("store simulator: same options give the same bytes, another seed others", "[store_simulator]") {
  StoreSimulatorOptions o = Options(300, 30, 3);
  GenerateStats stats;
  const std::string a = WriteToString(o, &stats);
  const std::string b = WriteToString(o);
  REQUIRE(!a.empty());
  REQUIRE(a == b);
  REQUIRE(stats.bytes == a.size());
  REQUIRE(stats.events == static_cast<uint64_t>(std::count(a.begin(), a.end(), '\n')));
  REQUIRE(stats.customers == 300);
  REQUIRE(stats.malformed == 0);

  // The line-by-line API gives the same lines.
  std::string joined;
  for (const std::string& line : NextAll(o)) joined += line + "\n";
  REQUIRE(joined == a);

  o.seed = 4;
  REQUIRE(WriteToString(o) != a);
  o.seed = 3;
  o.start = EventTime{kJan1 + kDay};
  REQUIRE(WriteToString(o) != a);
}

TEST_CASE("store simulator: output is pinned across machines and versions", "[store_simulator]") {
  // Own PRNG, own log/exp, integer formatting: these bytes must be the same on
  // every machine. When the generator is changed on purpose, update them.
  const std::string text = WriteToString(Options(200, 30, 7));
  const std::vector<std::string> lines = SplitLines(text);
  REQUIRE(lines.size() == kPinnedLines);
  CHECK(lines[0] == kPinnedFirstLine);
  CHECK(Fnv1a(text) == kPinnedHash);
}

TEST_CASE("store simulator: every line is a well-formed event, sorted, numbered", "[store_simulator]") {
  StoreSimulatorOptions o = Options(500, 45, 11);
  auto customers = CheckEvents(o, WriteToString(o));
  // Every customer visits at least once, first within the first 80% of the period.
  REQUIRE(customers.size() == 500);
  for (const auto& [c, s] : customers) REQUIRE(s.first_ts < o.start.ms + o.days * kDay * 8 / 10);
}

TEST_CASE("store simulator: many customers in a short period stay sorted", "[store_simulator]") {
  // Thousands of events an hour: the windows are sorted by radix sort.
  StoreSimulatorOptions o = Options(100000, 2, 13);
  auto customers = CheckEvents(o, WriteToString(o));
  REQUIRE(customers.size() == 100000);
}

TEST_CASE("store simulator: customer profiles in plausible proportions", "[store_simulator]") {
  const uint64_t n = 20000;
  StoreSimulatorOptions o = Options(n, 120, 5);
  std::map<std::string, uint64_t> types;
  std::vector<double> amounts;
  auto customers = CheckEvents(o, WriteToString(o), &types, &amounts);
  REQUIRE(customers.size() == n);

  uint64_t buyers = 0, one_purchase = 0, five_or_more = 0, referrers = 0, stopped_early = 0;
  const int64_t end = o.start.ms + o.days * kDay;
  for (const auto& [c, s] : customers) {
    buyers += s.purchases > 0;
    one_purchase += s.purchases == 1;
    five_or_more += s.purchases >= 5;
    referrers += s.referrals > 0;
    stopped_early += s.last_ts < end - 30 * kDay;
  }
  auto frac = [n](uint64_t k) { return static_cast<double>(k) / static_cast<double>(n); };
  // Browsers (45%) never buy, so at most 55% buy; with lapses and 120 days
  // about 37% do (the Python reference gives 36.6%). Binomial sd ~0.35%.
  CHECK(frac(buyers) > 0.30);
  CHECK(frac(buyers) < 0.45);
  CHECK(frac(one_purchase) > 0.09);
  CHECK(frac(one_purchase) < 0.15);
  CHECK(frac(five_or_more) > 0.07);
  CHECK(frac(five_or_more) < 0.14);
  // Only advocates (8%) refer, and only from their third purchase on.
  CHECK(frac(referrers) > 0.03);
  CHECK(frac(referrers) < 0.085);
  // Lapses: a third of the customers are gone a month before the end.
  CHECK(frac(stopped_early) > 0.25);
  CHECK(frac(stopped_early) < 0.45);

  // A cart follows 20% of visits.
  const double carts_per_visit = static_cast<double>(types["cart"]) / static_cast<double>(types["visit"]);
  CHECK(carts_per_visit > 0.19);
  CHECK(carts_per_visit < 0.21);

  // Amounts: lognormal(3.6, 0.7): median e^3.6 = 36.6, mean e^3.845 = 46.8.
  REQUIRE(amounts.size() > 10000);
  std::sort(amounts.begin(), amounts.end());
  const double median = amounts[amounts.size() / 2];
  double sum = 0;
  for (double a : amounts) sum += a;
  const double mean = sum / static_cast<double>(amounts.size());
  CHECK(median > 34.5);
  CHECK(median < 38.5);
  CHECK(mean > 44);
  CHECK(mean < 50);
}

TEST_CASE("store simulator: malformed lines at the requested rate, from the list", "[store_simulator]") {
  const auto& bad = MalformedStoreLines();
  REQUIRE(bad.size() == 12);
  const std::set<std::string> bad_set(bad.begin(), bad.end());
  REQUIRE(bad_set.count("") == 1);
  REQUIRE(bad_set.count("{not json") == 1);
  REQUIRE(bad_set.count("[1,2,3]") == 1);
  REQUIRE(bad_set.count(std::string("\x00\x01\x02garbage", 10)) == 1);
  REQUIRE(std::any_of(bad.begin(), bad.end(), [](const std::string& s) {
    return s.size() > 70000 && s.find(std::string(70000, 'x')) != std::string::npos;
  }));
  for (const std::string& s : bad) REQUIRE(s.find('\n') == std::string::npos);

  StoreSimulatorOptions clean = Options(3000, 60, 9);
  const std::vector<std::string> clean_lines = SplitLines(WriteToString(clean));
  StoreSimulatorOptions dirty = clean;
  dirty.bad_rate = 0.05;
  GenerateStats stats;
  const std::string dirty_text = WriteToString(dirty, &stats);
  REQUIRE(stats.bytes == dirty_text.size());
  const std::vector<std::string> lines = SplitLines(dirty_text);

  std::vector<std::string> events;
  std::set<std::string> kinds_seen;
  uint64_t malformed = 0;
  for (const std::string& line : lines) {
    if (line.rfind("{\"event_id\":", 0) == 0) {
      events.push_back(line);
    } else {
      REQUIRE(bad_set.count(line) == 1);
      kinds_seen.insert(line);
      ++malformed;
    }
  }
  // The events are exactly those of the clean run: own random stream.
  REQUIRE(events == clean_lines);
  REQUIRE(stats.malformed == malformed);
  REQUIRE(stats.events == events.size());
  const double rate = static_cast<double>(malformed) / static_cast<double>(events.size());
  REQUIRE(events.size() > 20000);
  CHECK(rate > 0.04);  // sd ~0.15%
  CHECK(rate < 0.06);
  CHECK(kinds_seen.size() == bad.size());  // ~1000 draws over 12 kinds

  // A malformed line never directly follows another one; with rate 1 each
  // event is preceded by exactly one.
  dirty.bad_rate = 1.0;
  std::vector<SimulatedLine> meta;
  const std::vector<std::string> all = NextAll(dirty, &meta);
  REQUIRE(all.size() == 2 * clean_lines.size());
  for (size_t i = 0; i < all.size(); ++i) {
    REQUIRE(meta[i].malformed == (i % 2 == 0));
    if (i % 2 == 1) REQUIRE(all[i] == clean_lines[i / 2]);
    if (i % 2 == 0) REQUIRE(meta[i].ts == meta[i + 1].ts);
  }
}

TEST_CASE("store simulator: the line API carries ts and customer id", "[store_simulator]") {
  StoreSimulatorOptions o = Options(200, 20, 2);
  o.bad_rate = 0.1;
  std::vector<SimulatedLine> meta;
  const std::vector<std::string> lines = NextAll(o, &meta);
  simdjson::dom::parser parser;
  size_t events = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (meta[i].malformed) {
      REQUIRE(meta[i].customer_id.empty());
      continue;
    }
    ++events;
    // customer_id views are only valid until the next Next(): re-derive.
    Parsed e = ParseEvent(parser, lines[i]);
    REQUIRE(meta[i].ts.ms == e.ts);
  }
  REQUIRE(events > 0);

  // The customer id, checked while it is valid.
  auto sim = StoreSimulator::Create(o);
  REQUIRE(sim.ok());
  SimulatedLine line;
  while ((*sim)->Next(&line)) {
    if (line.malformed) continue;
    Parsed e = ParseEvent(parser, std::string(line.text));
    REQUIRE(line.customer_id == e.customer_id);
  }
}

TEST_CASE("store simulator: --epoch-ms writes integer ts, otherwise the same", "[store_simulator]") {
  StoreSimulatorOptions o = Options(300, 30, 8);
  const std::vector<std::string> rfc = SplitLines(WriteToString(o));
  o.epoch_ms = true;
  const std::string epoch_text = WriteToString(o);
  CheckEvents(o, epoch_text);
  const std::vector<std::string> epoch = SplitLines(epoch_text);
  REQUIRE(epoch.size() == rfc.size());
  simdjson::dom::parser parser;
  for (size_t i = 0; i < rfc.size(); ++i) {
    Parsed a = ParseEvent(parser, rfc[i]);
    Parsed b = ParseEvent(parser, epoch[i], true);
    REQUIRE(a.ts == b.ts);
    std::string expected = rfc[i];
    const std::string quoted = "\"" + a.ts_text + "\"";
    expected.replace(expected.find(quoted), quoted.size(), std::to_string(a.ts));
    REQUIRE(epoch[i] == expected);
  }
}

TEST_CASE("store simulator: id prefix, start date and short periods", "[store_simulator]") {
  StoreSimulatorOptions o = Options(100, 10, 1);
  o.id_prefix = "shop-";
  o.start = *ParseRfc3339("2028-02-28T00:00:00Z");  // across a leap day
  CheckEvents(o, WriteToString(o));

  // A prefix that needs escaping still gives valid JSON, and the right id.
  o.id_prefix = "a\"b\\";
  simdjson::dom::parser parser;
  for (const std::string& line : SplitLines(WriteToString(o))) {
    Parsed e = ParseEvent(parser, line);
    CustomerIndex(e.customer_id, o.id_prefix);
  }

  StoreSimulatorOptions tiny = Options(1, 1, 1);
  const std::string text = WriteToString(tiny);
  CheckEvents(tiny, text);
  REQUIRE(!text.empty());  // the one customer visits at least once
}

TEST_CASE("store simulator: invalid options and write errors", "[store_simulator]") {
  auto invalid = [](const StoreSimulatorOptions& o) {
    auto sim = StoreSimulator::Create(o);
    REQUIRE(!sim.ok());
    REQUIRE(sim.status().code() == StatusCode::kInvalidArgument);
    REQUIRE(WriteStoreEvents(o, stdout, nullptr).code() == StatusCode::kInvalidArgument);
  };
  StoreSimulatorOptions o;
  REQUIRE(ValidateStoreSimulatorOptions(o).ok());
  o.customers = 0;
  invalid(o);
  o = {};
  o.customers = kMaxSimulatedCustomers + 1;
  invalid(o);
  o = {};
  o.days = 0;
  invalid(o);
  o.days = -3;
  invalid(o);
  o.days = 3'000'000;  // past 9999
  invalid(o);
  o = {};
  o.bad_rate = -0.1;
  invalid(o);
  o.bad_rate = 1.5;
  invalid(o);
  o.bad_rate = std::nan("");
  invalid(o);
  o = {};
  o.id_prefix = std::string(kMaxIdPrefixBytes + 1, 'p');
  invalid(o);

  std::FILE* full = std::fopen("/dev/full", "w");
  if (full != nullptr) {
    rapport::Status s = WriteStoreEvents(Options(100, 10, 1), full, nullptr);
    std::fclose(full);
    REQUIRE(s.code() == StatusCode::kIoError);
  }
}
